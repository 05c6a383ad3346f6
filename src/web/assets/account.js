// Account pages. Emailed links carry their token in the fragment
// (`/reset-password#token=…`, `/verify-email#token=…`), which browsers never
// send to a server, so it stays out of access logs. This script moves it into
// the page's form (`[data-token-form]`, its `token` input), hides the code
// field it fills (`[data-token-field]`) and the parts meant for pasting a code
// (`[data-token-hide]`), shows `[data-token-show]`, and takes the fragment out
// of the address bar. A form marked `data-token-submit` is then sent at once.
//
// `[data-replace-url]`: the page answering a form post names the address a
// reload should fetch instead of posting again (the new API key page).
(function () {
  "use strict";

  function fragmentToken() {
    var match = /(?:^#|&)token=([^&]+)/.exec(window.location.hash);
    if (!match) return null;
    try { return decodeURIComponent(match[1]); } catch (e) { return null; }
  }

  function useToken(token) {
    var form = document.querySelector("[data-token-form]");
    var input = form && form.querySelector("input[name='token']");
    if (!input) return;
    input.value = token;
    form.querySelectorAll("[data-token-field]").forEach(function (el) { el.hidden = true; });
    document.querySelectorAll("[data-token-hide]").forEach(function (el) { el.hidden = true; });
    document.querySelectorAll("[data-token-show]").forEach(function (el) { el.hidden = false; });
    if (form.hasAttribute("data-token-submit")) {
      if (form.requestSubmit) form.requestSubmit(); else form.submit();
      return;
    }
    var next = form.querySelector("input:not([type='hidden']):not([name='token'])");
    if (next) next.focus();
  }

  function takeFragment() {
    var token = fragmentToken();
    if (!token) return;
    history.replaceState(null, "", window.location.pathname + window.location.search);
    useToken(token);
  }

  // A link opened while its page is already on screen changes only the fragment.
  window.addEventListener("hashchange", takeFragment);

  document.addEventListener("DOMContentLoaded", function () {
    takeFragment();
    var replace = document.querySelector("[data-replace-url]");
    if (replace) history.replaceState(null, "", replace.getAttribute("data-replace-url"));
  });
})();
