// The live status page. Without this file the page refreshes itself (noscript); with it:
// - the bar, elapsed time and time left move smoothly between polls at the task's own
//   reported pace, never backwards, and stop when the task stops reporting;
// - polls are few in the middle of a task and close together around its predicted end,
//   never further apart than the server's Retry-After;
// - a lost connection is said at once and polling resumes as soon as it is back;
// - the tab's title and icon carry the progress; the end may raise a notification;
// - when the task ends, the page becomes the server's result page in place, and starts
//   the download only if it watched the task finish.
(function () {
  "use strict";
  if (!window.fetch || !window.DOMParser || !document.getElementById("task")) { return; }

  var SECOND = 1000;
  // How far the bar may run ahead of the task's last report: beyond this (or four step
  // times, if longer) a task that has gone quiet must not look alive.
  var HORIZON_SECONDS = 15;
  // Polls in the middle of a task: at most this far apart, so that the bar never reaches
  // the horizon while the task is fine.
  var MID_POLL_SECONDS = 12;
  var NEAR_END_SECONDS = 8;
  var ANNOUNCE_EVERY_SECONDS = 15;

  var task = document.getElementById("task");
  var statusUrl = task.getAttribute("data-status-url");
  var title = task.getAttribute("data-title");
  var maxAttempts = parseInt(task.getAttribute("data-max-attempts"), 10);

  var doc = null;          // the last status document
  var receivedAt = 0;      // when it arrived (client clock, ms)
  var skew = 0;            // client clock minus server clock (ms)
  var shown = 0;           // the percent the bar shows: it never goes back
  var timer = null, ticker = null;
  var failures = 0, overdue = 0;
  var watched = false;     // this page saw the task before it ended
  var finished = false;
  var notifyWanted = false;
  var spoken = { status: task.getAttribute("data-status"), tenth: -1, at: 0 };

  function el(id) { return document.getElementById(id); }
  function show(id, visible) { var e = el(id); if (e) { e.hidden = !visible; } }
  function text(id, value) { var e = el(id); if (e && e.textContent !== value) { e.textContent = value; } }
  function parseTime(iso) { var t = Date.parse(iso || ""); return isNaN(t) ? null : t; }

  // The same words as the server's pages (pages.py).
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
    if (fives < 60) { return "about " + fives + " s"; }
    return duration(Math.max(s, 60));
  }
  function starting(d) {
    return d.status === "started" && d.progress.step === null && !d.progress.message;
  }
  function headline(d) {
    if (d.status === "ready") { return "Waiting for a worker"; }
    if (d.status === "started") { return starting(d) ? "Starting" : "Running"; }
    if (d.status === "error") {
      return "Retrying: attempt " + (d.attempts + 1) + " of " + maxAttempts + " soon";
    }
    return { done: "Done", failed: "Failed", cancelled: "Cancelled" }[d.status];
  }
  function message(d) {
    if (d.status === "ready") { return "Queued: it starts as soon as a worker is free."; }
    if (d.status === "started") { return d.progress.message || "A worker has picked it up."; }
    if (d.status === "error") {
      return "Attempt " + d.attempts + " failed. It will be tried again automatically.";
    }
    return "";
  }
  function sentence(s) {
    s = (s || "").trim();
    if (!s) { return ""; }
    s = s.charAt(0).toUpperCase() + s.slice(1);
    return /[.!?…]$/.test(s) ? s : s + ".";
  }

  function announce(words) {
    var live = el("announce");
    if (!live) { return; }
    // Emptied first, so that the same words twice are still spoken.
    live.textContent = "";
    setTimeout(function () { live.textContent = words; }, 50);
  }

  function setFavicon(status, percent) {
    var colour = { done: "#14532b", failed: "#8a1a13", error: "#8a1a13",
                   cancelled: "#4a525c" }[status] || "#1d4296";
    var share = status === "started" ? (percent || 0) / 100 : (status === "ready" ? 0 : 1);
    var svg = "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 32 32'>" +
      "<circle cx='16' cy='16' r='14' fill='none' stroke='#d5dae1' stroke-width='4'/>" +
      "<circle cx='16' cy='16' r='14' fill='none' stroke='" + colour + "' stroke-width='4' " +
      "stroke-dasharray='" + (share * 87.96).toFixed(2) + " 88' transform='rotate(-90 16 16)'/></svg>";
    var icon = el("favicon");
    var href = "data:image/svg+xml," + encodeURIComponent(svg);
    if (icon && icon.getAttribute("href") !== href) { icon.setAttribute("href", href); }
  }

  // What the page shows now: the last document carried forward at its reported pace.
  function estimate(now) {
    var p = doc.progress, since = (now - receivedAt) / SECOND;
    var out = {
      percent: p.percent, eta: doc.eta_seconds, stalled: false,
      elapsed: doc.elapsed_seconds === null ? null : doc.elapsed_seconds + since
    };
    if (doc.status !== "started" || p.percent === null || !p.total_steps) { return out; }
    if (out.eta !== null) { out.eta = Math.max(out.eta - since, 0); }
    var reported = parseTime(p.reported_at);
    reported = reported === null ? receivedAt : reported + skew;
    var quiet = Math.max((now - reported) / SECOND, 0);
    var horizon = Math.max(HORIZON_SECONDS, p.rate ? 4 / p.rate : 0);
    if (quiet > horizon) { out.stalled = quiet; out.eta = null; }
    if (p.rate) {
      var step = p.step + p.rate * Math.min(quiet, horizon);
      // Never "done" before the task says so.
      out.percent = Math.min(step / p.total_steps * 100, 99.5);
    }
    return out;
  }

  function paint() {
    if (!doc || finished) { return; }
    var now = Date.now(), e = estimate(now), bar = el("bar");
    if (e.percent !== null && doc.status === "started") {
      shown = Math.max(shown, e.percent);
      if (bar) {
        bar.value = shown;
        bar.textContent = Math.floor(shown) + " %";
        bar.setAttribute("aria-valuetext", Math.floor(shown) + " %" +
          (e.eta === null ? "" : ", " + timeLeft(e.eta) + (e.eta < 5 ? "" : " left")));
      }
    } else if (bar) {
      bar.removeAttribute("value");
      bar.setAttribute("aria-valuetext", doc.status === "ready" ? "Waiting" : "Working");
    }
    var running = doc.status === "started";
    show("elapsed-box", running && e.elapsed !== null);
    if (e.elapsed !== null) { text("elapsed", duration(e.elapsed)); }
    show("eta-box", running && e.eta !== null);
    if (e.eta !== null) { text("eta", timeLeft(e.eta)); }
    show("waiting-box", doc.status === "ready");
    var created = parseTime(doc.created_at);
    if (created !== null) { text("waiting", duration((now - created - skew) / SECOND)); }
    show("retry-box", doc.status === "error");
    var retryAt = parseTime(doc.retry_at);
    if (retryAt !== null) {
      var left = (retryAt + skew - now) / SECOND;
      text("retry-in", left > 0.5 ? "in " + duration(left) : "any moment now");
    }
    show("stalled", !!e.stalled);
    if (e.stalled) {
      text("stalled", "No progress reported for " + duration(e.stalled) +
           ". If its worker stopped, another one takes it over.");
    }
    var percentWords = running && e.percent !== null ? Math.floor(shown) + " %" : null;
    document.title = (percentWords || { ready: "Queued", error: "Retrying" }[doc.status] ||
                      headline(doc)) + " · " + title;
    setFavicon(doc.status, shown);
    show("connection", failures > 0 || navigator.onLine === false);
    // Progress is spoken at each tenth or every 15 s, never every second.
    if (running && e.percent !== null) {
      var tenth = Math.floor(shown / 10);
      var due = now - spoken.at > ANNOUNCE_EVERY_SECONDS * SECOND;
      if (spoken.tenth < 0) { spoken.tenth = tenth; spoken.at = now; }
      if (tenth > spoken.tenth || (due && tenth === spoken.tenth && e.eta !== null)) {
        spoken.tenth = tenth;
        spoken.at = now;
        announce(Math.floor(shown) + " %" + (e.eta === null ? "" : ", " + timeLeft(e.eta) +
                 (e.eta < 5 ? "" : " left")));
      }
    }
  }

  function render(d) {
    var changed = spoken.status !== d.status;
    task.className = "task status-" + d.status;
    task.setAttribute("data-status", d.status);
    text("state", headline(d));
    text("message", message(d));
    var p = d.progress;
    show("steps-box", d.status === "started" && !!p.total_steps);
    if (p.total_steps) { text("steps", (p.step || 0) + " of " + p.total_steps); }
    show("error", !!d.error && d.status === "error");
    if (d.error) {
      text("error-type", d.error.type);
      text("error-message", sentence(d.error.message));
    }
    show("cancel", !!d.links.cancel);
    if (changed) {
      spoken.status = d.status;
      spoken.tenth = -1;
      if (d.status === "error") { shown = 0; }
      announce(headline(d) + (d.status === "error" && d.error ? ". " + sentence(d.error.message) : ""));
    }
    paint();
  }

  // -- when to ask again

  function nextDelay(d, retryAfter) {
    var bound = retryAfter > 0 ? retryAfter : 5, wait = 1;
    if (d.status === "error") {
      var retryAt = parseTime(d.retry_at);
      wait = retryAt === null ? 1 : (retryAt + skew - Date.now()) / SECOND + 1;
    } else if (d.status === "started") {
      var e = estimate(Date.now());
      if (d.eta_seconds === null) {
        // No estimate during the first two seconds: ask again when there will be one;
        // later, a task that cannot say when it ends is asked as the server says.
        wait = d.elapsed_seconds !== null && d.elapsed_seconds < 2 ? 2.5 - d.elapsed_seconds
                                                                   : bound;
      } else if (e.eta > NEAR_END_SECONDS) {
        wait = Math.min(e.eta / 2, MID_POLL_SECONDS);
        overdue = 0;
      } else if (e.eta > 0.3 && overdue === 0) {
        wait = e.eta + 0.3;  // just after the predicted end
        overdue = 1;
      } else {
        // Late: every 0.7 s at first, then backing off towards Retry-After.
        wait = Math.min(0.7 * Math.pow(1.5, Math.max(overdue - 1, 0)), 5);
        overdue += 1;
      }
    }
    return Math.max(Math.min(wait, bound), 0.5);
  }

  function schedule(seconds) {
    clearTimeout(timer);
    timer = setTimeout(poll, seconds * SECOND);
  }

  function poll() {
    clearTimeout(timer);
    if (finished) { return; }
    fetch(statusUrl, { headers: { Accept: "application/json" }, cache: "no-store",
                       credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) { throw new Error("status " + response.status); }
        var retryAfter = parseFloat(response.headers.get("Retry-After"));
        var date = response.headers.get("Date");
        return response.json().then(function (d) { return [d, retryAfter, date]; });
      })
      .then(function (answer) {
        var d = answer[0], now = Date.now();
        failures = 0;
        var serverNow = d.status === "started" && d.elapsed_seconds !== null && d.started_at
          ? parseTime(d.started_at) + d.elapsed_seconds * SECOND : parseTime(answer[2]);
        skew = serverNow === null ? 0 : now - serverNow;
        doc = d;
        receivedAt = now;
        if (d.done) { finish(d); return; }
        watched = true;
        render(d);
        schedule(nextDelay(d, answer[1]));
      })
      .catch(function () {
        // Offline or the server is away: say so, and ask less often until it answers.
        failures += 1;
        show("connection", true);
        schedule(Math.min(Math.pow(2, failures), 30));
      });
  }

  // -- the end: the server's page for the final state, in place

  function finish(d) {
    finished = true;
    clearTimeout(timer);
    clearInterval(ticker);
    text("state", headline(d));
    document.title = headline(d) + " · " + title;
    setFavicon(d.status, 100);
    fetch(statusUrl, { headers: { Accept: "text/html" }, cache: "no-store",
                       credentials: "same-origin" })
      .then(function (response) { return response.text(); })
      .then(function (html) {
        var page = new DOMParser().parseFromString(html, "text/html");
        var main = page.querySelector("main");
        if (!main || !main.querySelector("#task")) { throw new Error("not a status page"); }
        document.querySelector("main").replaceWith(document.adoptNode(main));
        document.title = page.title;
        var icon = page.getElementById("favicon");
        if (icon) { el("favicon").setAttribute("href", icon.getAttribute("href")); }
        ended(d);
      })
      .catch(function () { window.location.replace(statusUrl); });
  }

  function ended(d) {
    var state = el("state");
    if (state) { state.focus(); }
    wirePage();
    var result = el("result");
    if (d.status === "done" && watched && result) {
      var url = result.getAttribute("data-download-url") || el("result-link").href;
      show("download-started", true);
      window.location.assign(url);
    }
    if (notifyWanted && document.hidden && window.Notification &&
        Notification.permission === "granted") {
      var headlineText = el("result-headline");
      new Notification(headline(d) + " · " + title,
                       { body: headlineText ? headlineText.textContent : headline(d), tag: statusUrl });
    }
  }

  // -- what the page's controls do

  function wirePage() {
    var copy = el("copy-link");
    var share = el("share-url");
    if (share) { share.value = window.location.href.split(/[?#]/)[0]; }
    if (copy && navigator.clipboard) {
      copy.hidden = false;
      copy.addEventListener("click", function () {
        navigator.clipboard.writeText(share.value).then(function () {
          copy.textContent = "Copied";
          setTimeout(function () { copy.textContent = "Copy link"; }, 2000);
        });
      });
    }
    var cancel = el("cancel");
    if (cancel) {
      cancel.addEventListener("toggle", function () {
        if (cancel.open) { cancel.querySelector("button").focus(); }
      });
      // Cancelled in place: the page then turns into the cancelled page like any end,
      // with the focus on its headline. Without this script the form posts as usual.
      var form = cancel.querySelector("form");
      form.addEventListener("submit", function (event) {
        event.preventDefault();
        form.querySelector("button").disabled = true;
        fetch(form.action, { method: "POST", credentials: "same-origin",
                             headers: { Accept: "application/json" } })
          .then(function () { poll(); }, function () { form.submit(); });
      });
      cancel.addEventListener("keydown", function (event) {
        if (event.key === "Escape" && cancel.open) {
          cancel.open = false;
          cancel.querySelector("summary").focus();
        }
      });
    }
    var notify = el("notify");
    if (notify && window.Notification && Notification.permission !== "denied") {
      show("notify-box", true);
      notify.addEventListener("click", function () {
        // Asked only now, after the user's click: never on load.
        Notification.requestPermission().then(function (permission) {
          notifyWanted = permission === "granted";
          notify.textContent = notifyWanted ? "You will be notified" : "Notifications are off";
          notify.disabled = true;
        });
      });
    }
  }

  wirePage();
  var initial = task.getAttribute("data-status");
  if (initial === "done" || initial === "failed" || initial === "cancelled") { return; }
  var embedded = el("status-document");
  try { doc = JSON.parse(embedded.textContent); } catch (error) { doc = null; }

  window.addEventListener("offline", function () { show("connection", true); });
  window.addEventListener("online", function () { if (!finished) { poll(); } });
  window.addEventListener("pageshow", function (event) {
    if (event.persisted && !finished) { poll(); }  // back from the bfcache: ask at once
  });
  ticker = setInterval(paint, 250);
  if (doc) {
    receivedAt = Date.now();
    var made = parseInt(embedded.getAttribute("data-server-now"), 10);
    skew = made ? receivedAt - made : 0;
    watched = true;
    render(doc);
    schedule(nextDelay(doc, parseFloat(embedded.getAttribute("data-retry-after")) || 0));
  } else {
    poll();
  }
}());
