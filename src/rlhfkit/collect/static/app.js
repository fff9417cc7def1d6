// rlhfkit collect: progressive enhancement of the annotate page. The page works without this file (plain form
// POSTs); this adds keyboard shortcuts with no modifier keys, the time spent on the page (client_ms), and a guard
// that ignores clicks after the first submit. Loaded from /static (the CSP allows no inline script).
(function () {
  "use strict";

  var form = document.getElementById("judge");
  if (!form) { return; }
  var started = performance.now();
  var sent = false;
  var buttons = Array.prototype.slice.call(form.querySelectorAll("button[type=submit]"));

  form.addEventListener("submit", function (event) {
    if (sent) { event.preventDefault(); return; }
    sent = true;
    var ms = form.querySelector("input[name=client_ms]");
    if (ms) { ms.value = String(Math.round(performance.now() - started)); }
    // disable after the browser has read the clicked button's name/value (a disabled submitter is not sent)
    window.setTimeout(function () { buttons.forEach(function (b) { b.disabled = true; }); }, 0);
  });

  // coming back through the history cache: the page is live again
  window.addEventListener("pageshow", function (event) {
    if (event.persisted) {
      sent = false;
      buttons.forEach(function (b) { b.disabled = false; });
    }
  });

  function typing(target) {
    if (!target || !target.tagName) { return false; }
    var tag = target.tagName.toLowerCase();
    if (tag === "textarea" || tag === "select" || target.isContentEditable) { return true; }
    if (tag === "input") {
      var type = (target.getAttribute("type") || "text").toLowerCase();
      return ["radio", "checkbox", "button", "submit", "hidden"].indexOf(type) < 0;
    }
    return false;
  }

  var keys = { "1": "left", "2": "right", "3": "tie", "4": "both_bad" };
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || event.repeat || typing(event.target)) { return; }
    var choice = keys[event.key];
    if (choice) {
      var button = form.querySelector("button[name=choice][value=" + choice + "]");
      if (button && !button.disabled) { event.preventDefault(); button.click(); }
      return;
    }
    if (event.key === "s" || event.key === "S") {
      var skip = document.getElementById("skip");
      var reason = document.getElementById("skip_reason");
      if (skip) { event.preventDefault(); skip.open = true; if (reason) { reason.focus(); } }
    }
  });
}());
