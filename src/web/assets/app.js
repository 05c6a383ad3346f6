// Fresco Platform's own script: small enhancements on pages that work without
// it. Loaded with `defer` from the platform's origin (the CSP allows nothing
// else); no inline handlers anywhere. Each enhancement finds its elements by a
// data- attribute, so a page without them pays nothing.
(function () {
  "use strict";

  // Copy buttons: <button data-copy="#element-id">.
  function enhanceCopy(root) {
    root.querySelectorAll("[data-copy]").forEach(function (button) {
      if (button.dataset.enhanced) return;
      button.dataset.enhanced = "1";
      button.hidden = false;
      button.addEventListener("click", function () {
        var source = document.querySelector(button.dataset.copy);
        if (!source) return;
        var text = source.value !== undefined ? source.value : source.textContent;
        var done = function () {
          var status = button.querySelector("[data-copy-status]") || button;
          var before = status.textContent;
          status.textContent = "Copied";
          setTimeout(function () { status.textContent = before; }, 2000);
        };
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(text).then(done, function () {});
        } else {
          var range = document.createRange();
          range.selectNodeContents(source);
          var sel = window.getSelection();
          sel.removeAllRanges();
          sel.addRange(range);
          try { document.execCommand("copy"); done(); } catch (e) { /* selected for a manual copy */ }
        }
      });
    });
  }

  window.FrescoPlatform = { enhance: function (root) { enhanceCopy(root); } };

  document.addEventListener("DOMContentLoaded", function () { window.FrescoPlatform.enhance(document); });
  document.addEventListener("htmx:load", function (e) { window.FrescoPlatform.enhance(e.target); });
})();
