// Live status without reloads: polls the task's JSON status document, honouring
// Retry-After, and updates the page in place. The page works without this file
// (it refreshes itself); with it, nothing flickers and the result opens by itself.
(function () {
  "use strict";
  var task = document.getElementById("task");
  if (!task || !window.fetch) { return; }
  var statusUrl = task.getAttribute("data-status-url");
  var terminal = { done: true, failed: true, cancelled: true };
  var states = {
    ready: "Waiting for a worker…",
    started: "Running",
    error: "An attempt failed, trying again soon",
    done: "Done",
    failed: "Failed",
    cancelled: "Cancelled"
  };

  // The same wording as the server's pages (pages.py: humanize_seconds, time_left).
  function duration(s) {
    var whole = Math.round(Math.max(s, 0));
    if (whole < 60) { return whole + " s"; }
    var minutes = Math.round(whole / 60);
    if (minutes < 60) { return "about " + minutes + " min"; }
    var h = Math.floor(minutes / 60), m = minutes % 60;
    return "about " + h + " h" + (m ? " " + m + " min" : "");
  }
  function timeLeft(s) {
    if (s < 5) { return "almost done"; }
    var fives = Math.round(s / 5) * 5;
    if (fives < 60) { return "about " + fives + " s left"; }
    return duration(Math.max(s, 60)) + " left";
  }

  // The same lines as the server's pages (pages.py: status_message).
  function statusMessage(doc) {
    var message = doc.progress.message;
    if (doc.status === "ready") { return "Queued: it starts as soon as a worker is free."; }
    if (doc.status === "done") {
      return doc.elapsed_seconds === null ? "Finished."
                                          : "Finished in " + duration(doc.elapsed_seconds) + ".";
    }
    if (doc.status === "cancelled" && !message) { return "Cancelled before it started."; }
    return message || (doc.status === "started" ? "Starting…" : "");
  }

  function el(id) { return document.getElementById(id); }
  function show(id, visible) { el(id).hidden = !visible; }
  function text(id, value) { el(id).textContent = value; }

  function render(doc) {
    var p = doc.progress;
    task.className = "task status-" + doc.status;
    task.setAttribute("data-status", doc.status);
    text("state", doc.status === "error" ? "Attempt " + doc.attempts + " failed, trying again soon"
                                         : states[doc.status]);
    show("bar-box", !doc.done);
    var bar = el("bar");
    if (p.percent === null) { bar.removeAttribute("value"); } else { bar.value = p.percent; }
    bar.textContent = p.percent === null ? "working" : Math.round(p.percent) + " %";
    var message = statusMessage(doc);
    if (el("message").textContent !== message) { text("message", message); }
    show("steps-box", !!p.total_steps && !doc.done);
    if (p.total_steps) {
      text("steps", (p.step || 0) + " of " + p.total_steps +
           (p.percent === null ? "" : " (" + Math.round(p.percent) + " %)"));
    }
    show("elapsed-box", doc.elapsed_seconds !== null);
    if (doc.elapsed_seconds !== null) { text("elapsed", duration(doc.elapsed_seconds)); }
    show("eta-box", doc.eta_seconds !== null);
    if (doc.eta_seconds !== null) { text("eta", timeLeft(doc.eta_seconds)); }
    show("attempts-box", doc.attempts > 1);
    text("attempts", String(doc.attempts));
    show("error", !!doc.error);
    if (doc.error) {
      text("error-type", doc.error.type);
      text("error-message", doc.error.message);
    }
    show("gave-up", doc.status === "failed");
    text("gave-up-attempts", String(doc.attempts));
    show("cancel", !!doc.links.cancel);
    show("share", doc.status !== "failed" && doc.status !== "cancelled");
    show("result", !!doc.links.result);
    if (doc.links.result) { el("result-link").href = doc.links.result; }
    document.title = document.title.replace(/: \w+ ·/, ": " + doc.status + " ·");
  }

  var wasRunning = !terminal[task.getAttribute("data-status")];

  function poll() {
    fetch(statusUrl, { headers: { Accept: "application/json" }, cache: "no-store",
                       credentials: "same-origin" })
      .then(function (response) {
        var wait = parseFloat(response.headers.get("Retry-After")) || 1;
        return response.json().then(function (doc) { return [doc, wait]; });
      })
      .then(function (pair) {
        var doc = pair[0], wait = pair[1];
        render(doc);
        if (doc.done) {
          if (doc.status === "done" && wasRunning) { window.location.assign(doc.links.result); }
          return;
        }
        setTimeout(poll, Math.min(Math.max(wait, 1), 5) * 1000);
      })
      .catch(function () { setTimeout(poll, 5000); });
  }

  var copy = el("copy-link");
  if (copy && navigator.clipboard) {
    copy.hidden = false;
    el("share-url").value = window.location.href.split("?")[0];
    copy.addEventListener("click", function () {
      navigator.clipboard.writeText(el("share-url").value).then(function () {
        copy.textContent = "Copied";
        setTimeout(function () { copy.textContent = "Copy link"; }, 2000);
      });
    });
  }

  if (wasRunning) { setTimeout(poll, 1000); }
}());
