// The log viewer (src/web/logs.rs): follows an instance's output over
// Server-Sent Events and filters, searches, pauses and scrolls it in the page.
// Without this script the page still shows the last lines, filtered by its
// GET form, with a Refresh link.
//
// No line is lost or shown twice across reconnects: every event's id is its
// cursor in the container's output. The browser's own reconnects send it back
// as Last-Event-ID; this script's reconnects send it as ?after=. Lines at or
// before the last one shown are dropped here too, whatever the server sends.
(function () {
  "use strict";

  var MAX_LINES = 5000;
  var root = document.querySelector("[data-log]");
  var form = document.querySelector("[data-log-controls]");
  if (!root || !form || !window.EventSource) return;

  var list = root.querySelector("[data-log-lines]");
  var status = document.querySelector("[data-log-status]");
  var pauseButton = form.querySelector("[data-log-pause]");
  var autoScroll = form.querySelector("[data-log-autoscroll]");
  var download = document.querySelector("[data-log-download]");
  var streamUrl = root.dataset.streamUrl;
  var lastId = root.dataset.after || null;
  var seen = new Set();
  var source = null;
  var paused = false;
  var buffered = [];
  var pending = [];
  var unseen = 0;
  var lastTop = 0;
  var repeats = 0;
  var view = settings();

  // "nanos-seq" as a comparable pair (nanoseconds exceed a double's precision).
  function cursor(id) {
    var dash = id.indexOf("-");
    if (dash < 1) return null;
    try {
      return [BigInt(id.slice(0, dash)), Number(id.slice(dash + 1))];
    } catch (e) {
      return null;
    }
  }

  function isAfter(a, b) {
    var x = cursor(a), y = cursor(b);
    if (!x || !y) return true;
    return x[0] > y[0] || (x[0] === y[0] && x[1] > y[1]);
  }

  function settings() {
    var checked = form.querySelector("input[name=stream]:checked");
    return {
      stream: checked ? checked.value : "all",
      q: form.elements.q.value.trim(),
      only: form.elements.only.checked,
      timestamps: form.elements.timestamps.checked
    };
  }

  // The line's text with each match marked; hidden when the filters say so.
  function render(li) {
    var q = view.q;
    var matched = q !== "" && li.logText.indexOf(q) !== -1;
    if (li.logQ !== q) {
      li.logQ = q;
      var span = li.querySelector(".log-text");
      span.textContent = "";
      if (!matched) {
        span.textContent = li.logText;
      } else {
        var rest = li.logText, at;
        while ((at = rest.indexOf(q)) !== -1) {
          if (at > 0) span.appendChild(document.createTextNode(rest.slice(0, at)));
          var mark = document.createElement("mark");
          mark.textContent = q;
          span.appendChild(mark);
          rest = rest.slice(at + q.length);
        }
        if (rest) span.appendChild(document.createTextNode(rest));
      }
    }
    li.classList.toggle("match", matched);
    li.hidden = !((view.stream === "all" || view.stream === li.dataset.stream) &&
      (!view.only || q === "" || matched));
  }

  function clock(timestamp) {
    var m = /T(\d\d:\d\d:\d\d)(?:\.(\d+))?/.exec(timestamp || "");
    if (!m) return "";
    return m[1] + "." + ((m[2] || "") + "000").slice(0, 3);
  }

  function build(id, line) {
    var li = document.createElement("li");
    li.className = line.stream === "stderr" ? "stderr" : "stdout";
    li.dataset.id = id;
    li.dataset.stream = li.className;
    var time = document.createElement("time");
    time.dateTime = line.timestamp;
    time.textContent = clock(line.timestamp);
    li.appendChild(time);
    if (line.stream === "stderr") {
      var tag = document.createElement("span");
      tag.className = "log-tag";
      tag.textContent = "err";
      li.appendChild(tag);
    }
    var text = document.createElement("span");
    text.className = "log-text";
    li.appendChild(text);
    li.logText = String(line.text);
    render(li);
    return li;
  }

  // The status line is polite and updated at most every 1.5 s, so a flood of
  // lines never floods a screen reader (the log itself is aria-live=off).
  var said = "", sayTimer = null, lastSaid = 0;
  function say(text, now) {
    said = text;
    if (now) {
      // The reader's own action: answer at once.
      clearTimeout(sayTimer);
      sayTimer = null;
      lastSaid = Date.now();
      status.textContent = said;
      return;
    }
    if (sayTimer) return;
    var wait = Math.max(0, lastSaid + 1500 - Date.now());
    sayTimer = setTimeout(function () {
      sayTimer = null;
      lastSaid = Date.now();
      if (status.textContent !== said) status.textContent = said;
    }, wait);
  }

  function describe() {
    if (paused) return "Paused: " + buffered.length + " new " + plural(buffered.length) + " waiting.";
    if (!autoScroll.checked && unseen > 0) return unseen + " new " + plural(unseen) + " below.";
    return "Following new lines live.";
  }

  function plural(n) { return n === 1 ? "line" : "lines"; }

  function toEnd() {
    root.scrollTop = root.scrollHeight;
    lastTop = root.scrollTop;
  }

  function flush() {
    var items = pending;
    pending = [];
    if (!items.length) return;
    var empty = root.querySelector("[data-log-empty]");
    if (empty) empty.remove();
    var fragment = document.createDocumentFragment();
    items.forEach(function (li) { fragment.appendChild(li); });
    list.appendChild(fragment);
    while (list.children.length > MAX_LINES) {
      var first = list.firstElementChild;
      if (first.dataset.id) seen.delete(first.dataset.id);
      first.remove();
    }
    if (autoScroll.checked) {
      toEnd();
    } else {
      unseen += items.length;
    }
    say(describe());
  }

  function show(li) {
    pending.push(li);
    if (pending.length === 1) setTimeout(flush, 30);
  }

  function onLine(event) {
    var id = event.lastEventId;
    if (!id || seen.has(id) || (lastId && !isAfter(id, lastId))) {
      repeats += 1;
      return;
    }
    var line;
    try { line = JSON.parse(event.data); } catch (e) { return; }
    seen.add(id);
    lastId = id;
    var li = build(id, line);
    if (paused) {
      buffered.push(li);
      say(describe());
    } else {
      show(li);
    }
  }

  function note(text) {
    var li = document.createElement("li");
    li.className = "log-note";
    li.textContent = "— " + text + " —";
    show(li);
  }

  function message(event, fallback) {
    try { return JSON.parse(event.data).message || fallback; } catch (e) { return fallback; }
  }

  function finish(text) {
    if (source) source.close();
    source = null;
    document.querySelectorAll("[data-log-refresh]").forEach(function (a) { a.hidden = false; });
    say(text);
  }

  function connect() {
    var url = streamUrl + (lastId ? "?after=" + encodeURIComponent(lastId) : "");
    var es = new EventSource(url);
    source = es;
    es.addEventListener("open", function () { say(describe()); });
    es.addEventListener("line", onLine);
    es.addEventListener("restart", function (e) { note(message(e, "the container restarted")); });
    es.addEventListener("end", function (e) {
      var text = message(e, "The stream ended.");
      note(text);
      finish("The live stream ended (" + text + "). Refresh the page to read again.");
    });
    es.addEventListener("error", function (e) {
      if (es !== source) return;
      if (e.data) {
        // The server's own error event; the browser reconnects and resumes.
        say("The stream broke; resuming…");
      } else if (es.readyState === EventSource.CLOSED) {
        finish("The live stream stopped. Refresh the page to try again.");
      } else {
        say("Connection lost; reconnecting…");
      }
    });
  }

  function reconnect() {
    if (source) source.close();
    connect();
  }

  function applyView() {
    view = settings();
    root.classList.toggle("no-timestamps", !view.timestamps);
    Array.prototype.forEach.call(list.children, function (li) {
      if (li.logText !== undefined) render(li);
    });
    var url = new URL(download.getAttribute("href"), window.location.href);
    var params = new URLSearchParams({ format: "text", tail: "100000", timestamps: String(view.timestamps) });
    if (view.stream !== "all") params.set("stream", view.stream);
    if (view.only && view.q) params.set("q", view.q);
    download.setAttribute("href", url.pathname + "?" + params.toString());
    var state = new URLSearchParams(new FormData(form));
    window.history.replaceState(null, "", window.location.pathname + "?" + state.toString());
    if (autoScroll.checked) toEnd();
  }

  // Lines the server rendered.
  Array.prototype.forEach.call(list.children, function (li) {
    var text = li.querySelector(".log-text");
    if (!li.dataset.id || !text) return;
    seen.add(li.dataset.id);
    li.logText = text.textContent;
    li.logQ = view.q;
  });

  // Live controls replace Apply and Refresh.
  form.querySelectorAll("[data-log-apply]").forEach(function (b) { b.hidden = true; });
  document.querySelectorAll("[data-log-refresh]").forEach(function (a) { a.hidden = true; });
  pauseButton.hidden = false;
  form.querySelector("[data-log-follow]").hidden = false;

  var typing = null;
  form.addEventListener("submit", function (e) { e.preventDefault(); applyView(); });
  form.addEventListener("change", function (e) {
    if (e.target === autoScroll) return;
    applyView();
  });
  form.elements.q.addEventListener("input", function () {
    clearTimeout(typing);
    typing = setTimeout(applyView, 200);
  });

  pauseButton.addEventListener("click", function () {
    paused = !paused;
    pauseButton.setAttribute("aria-pressed", String(paused));
    pauseButton.textContent = paused ? "Resume" : "Pause";
    if (!paused) {
      buffered.forEach(show);
      buffered = [];
    }
    say(describe(), true);
  });

  autoScroll.addEventListener("change", function () {
    if (autoScroll.checked) {
      unseen = 0;
      toEnd();
    }
    say(describe(), true);
  });

  // Scrolling up stops following the end; scrolling back down resumes it.
  root.addEventListener("scroll", function () {
    var top = root.scrollTop;
    var atEnd = root.scrollHeight - top - root.clientHeight < 8;
    if (top < lastTop && !atEnd && autoScroll.checked) {
      autoScroll.checked = false;
      say(describe());
    } else if (atEnd && !autoScroll.checked) {
      autoScroll.checked = true;
      unseen = 0;
      say(describe());
    }
    lastTop = top;
  });

  window.FrescoLogs = {
    // Closes the stream and opens a new one after the last line shown (the
    // tests force a reconnect with it).
    reconnect: reconnect,
    lastId: function () { return lastId; },
    // Lines the server sent again and this script dropped (none, if the
    // server resumed where it should).
    repeats: function () { return repeats; }
  };

  toEnd();
  connect();
})();
