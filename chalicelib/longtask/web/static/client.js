// longtask's client for the host app's own pages: start a task, follow it with callbacks,
// cancel it. A page includes this file (tasks.static_url("client.js") names it) and then:
//
//   var run = longtask.follow(statusUrl, {
//     onProgress: function (doc) { bar.value = doc.progress.percent || 0; },
//     onDone: function (doc) { ... },         // status "done"
//     onFailure: function (doc) { ... },      // "failed" or "cancelled"
//     onResult: function (url, doc) { ... },  // done: where the download is
//     onError: function (error) { ... }       // the network or the server, for now
//   });
//   run.stop(); run.cancel();
//
// longtask.start(startUrl, params, {idempotencyKey: ...}) posts JSON and resolves to the
// status document; it retries a 503 after its Retry-After with the same key, so a retry
// never starts a second task. Polls follow the server's Retry-After (a 503 too), and a
// lost connection is tried again until it is back; onError says so each time.
(function (global) {
  "use strict";

  var JSON_HEADERS = { "Accept": "application/json" };
  var SECOND = 1000;
  var LEAST_WAIT = 0.5, MOST_WAIT = 10, WAIT_WITHOUT_ANSWER = 2;

  function waitOf(response, fallback) {
    var seconds = parseFloat(response && response.headers.get("Retry-After"));
    if (isNaN(seconds)) { seconds = fallback; }
    return Math.min(Math.max(seconds, LEAST_WAIT), MOST_WAIT);
  }

  function later(seconds) {
    return new Promise(function (resolve) { setTimeout(resolve, seconds * SECOND); });
  }

  function failure(response, body) {
    var error = new Error((body && body.error && body.error.message) || ("HTTP " + response.status));
    error.status = response.status;
    error.code = body && body.error ? body.error.code : null;
    error.fields = body && body.error ? body.error.fields : null;
    return error;
  }

  function randomKey() {
    var bytes = new Uint8Array(16);
    global.crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) {
      return ("0" + b.toString(16)).slice(-2);
    }).join("");
  }

  function start(url, params, options) {
    var key = (options && options.idempotencyKey) || randomKey();
    var headers = { "Accept": "application/json", "Content-Type": "application/json",
                    "Idempotency-Key": key };
    function attempt() {
      return fetch(url, { method: "POST", headers: headers, credentials: "same-origin",
                          body: JSON.stringify(params || {}) })
        .then(function (response) {
          return response.json().catch(function () { return null; }).then(function (body) {
            if (response.status === 503) {
              return later(waitOf(response, WAIT_WITHOUT_ANSWER)).then(attempt);
            }
            if (!response.ok) { throw failure(response, body); }
            return body;
          });
        });
    }
    return attempt();
  }

  function cancel(doc) {
    var url = doc && doc.links && doc.links.cancel;
    if (!url) { return Promise.resolve(doc); }
    return fetch(url, { method: "DELETE", headers: JSON_HEADERS, credentials: "same-origin" })
      .then(function (response) {
        return response.json().then(function (body) {
          if (!response.ok && response.status !== 409) { throw failure(response, body); }
          return body.error ? doc : body;
        });
      });
  }

  function follow(url, handlers) {
    handlers = handlers || {};
    var stopped = false, timer = null, last = null;

    function call(name, a, b) {
      if (typeof handlers[name] === "function") { handlers[name](a, b); }
    }
    function again(seconds) {
      if (!stopped) { timer = setTimeout(poll, seconds * SECOND); }
    }
    function ended(doc) {
      stopped = true;
      if (doc.status === "done") {
        call("onDone", doc);
        if (doc.links.result) { call("onResult", doc.links.result, doc); }
      } else {
        call("onFailure", doc);
      }
    }
    function poll() {
      timer = null;
      fetch(url, { headers: JSON_HEADERS, credentials: "same-origin", cache: "no-store" })
        .then(function (response) {
          return response.json().catch(function () { return null; }).then(function (body) {
            if (stopped) { return; }
            if (response.ok && body && body.id) {
              last = body;
              call("onProgress", body);
              if (body.done) { ended(body); } else { again(waitOf(response, 1)); }
              return;
            }
            call("onError", failure(response, body));
            // Busy (503) or over a quota (429): the server says when; a task that is not
            // there (404, 410) will not come back.
            if (response.status === 404 || response.status === 410) { stopped = true; return; }
            again(waitOf(response, WAIT_WITHOUT_ANSWER));
          });
        })
        .catch(function (error) {
          if (stopped) { return; }
          call("onError", error);  // offline, or the connection dropped: try again soon
          again(WAIT_WITHOUT_ANSWER);
        });
    }
    poll();
    return {
      stop: function () { stopped = true; if (timer) { clearTimeout(timer); } },
      cancel: function () { return last ? cancel(last) : Promise.resolve(null); },
      last: function () { return last; }
    };
  }

  global.longtask = { start: start, follow: follow, cancel: cancel };
})(window);
