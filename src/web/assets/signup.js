// The signup wizard's own script (the pages work without it):
// - subdomain suggestions fill the field instead of submitting their form;
// - the setup deadline counts down once a second, with a polite announcement
//   at 30, 10, 5 and 1 minutes left (the ticking text itself is not announced).
(function () {
  "use strict";

  // Suggestions are <button data-suggestion="name"> (submit buttons of a small
  // form of their own); delegated, since htmx swaps them in and out.
  document.addEventListener("click", function (e) {
    var button = e.target.closest ? e.target.closest("[data-suggestion]") : null;
    if (!button) return;
    var field = document.getElementById("subdomain");
    if (!field) return;
    e.preventDefault();
    field.value = button.dataset.suggestion;
    field.dispatchEvent(new Event("input", { bubbles: true }));
    field.focus();
  });

  var ANNOUNCE_AT = [30, 10, 5, 1];

  function left(ms) {
    if (ms <= 0) return "The setup deadline has passed";
    var s = Math.floor(ms / 1000);
    var h = Math.floor(s / 3600);
    var m = Math.floor((s % 3600) / 60);
    var sec = s % 60;
    var two = function (n) { return (n < 10 ? "0" : "") + n; };
    return (h > 0 ? h + " h " + two(m) + " min " : m + " min ") + two(sec) + " s left";
  }

  function countdown(el) {
    var deadline = Date.parse(el.dataset.deadline);
    if (isNaN(deadline)) return;
    var announce = document.querySelector("[data-deadline-announce]");
    var announced = {};
    // Thresholds already behind us when the page opened are not news.
    ANNOUNCE_AT.forEach(function (m) { if (deadline - Date.now() <= m * 60000) announced[m] = true; });
    var tick = function () {
      var ms = deadline - Date.now();
      el.textContent = left(ms);
      ANNOUNCE_AT.forEach(function (m) {
        if (!announced[m] && ms <= m * 60000) {
          announced[m] = true;
          if (announce) announce.textContent = m + (m === 1 ? " minute" : " minutes") + " left to create your Fresco admin account.";
        }
      });
      if (ms <= 0) clearInterval(timer);
    };
    var timer = setInterval(tick, 1000);
    tick();
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-deadline]").forEach(countdown);
  });
})();
