// The board's only script: keeps the open page current without a reload.
// It listens to /board/events (server-sent events) and, when a change concerns this page, fetches the
// page again and swaps in its <main>. The server renders and escapes everything; nothing user-written is
// built into HTML here. EventSource reconnects by itself after a dropped stream; when the browser gives up
// (an HTTP error such as 401 or 503) a new one is opened a little later. Every (re)connect re-reads the
// page, since changes may have been missed meanwhile.
(function () {
  "use strict";
  var RETRY_MS = 2000;
  var live = null;
  var refreshing = false;
  var again = false;

  function main() { return document.getElementById("board-main"); }

  function setLive(state, text) {
    live = live || document.getElementById("live");
    if (live) { live.dataset.state = state; live.textContent = text; }
  }

  function concerns(change) {
    var m = main();
    if (!m) { return false; }
    var watch = m.dataset.watch;
    if (watch === "all") { return true; }
    if (watch === "session") { return change.sessions.indexOf(m.dataset.sessionId) >= 0; }
    if (watch === "task") {
      return change.tasks.indexOf(m.dataset.taskId) >= 0 || change.sessions.indexOf(m.dataset.sessionId) >= 0;
    }
    return false;
  }

  function refresh() {
    if (refreshing) { again = true; return; }
    refreshing = true;
    fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) {
        if (response.redirected && response.url.indexOf("/board/login") >= 0) {
          window.location.assign(response.url);
          return null;
        }
        return response.text();
      })
      .then(function (html) {
        if (html === null) { return; }
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("board-main");
        var current = main();
        if (fresh && current) {
          current.replaceWith(document.importNode(fresh, true));
          document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes || 0) + 1);
          tick();
        }
      })
      .catch(function () { /* the server is away; the next (re)connect re-reads */ })
      .then(function () {
        refreshing = false;
        if (again) { again = false; refresh(); }
      });
  }

  function connect(first) {
    var m = main();
    if (!m || m.dataset.watch === "none" || !window.EventSource) { setLive("off", ""); return; }
    var source = new EventSource("/board/events");
    var opened = first;
    source.addEventListener("open", function () {
      setLive("live", "live");
      if (!opened) { refresh(); }
      opened = false;
    });
    source.addEventListener("change", function (event) {
      var change;
      try { change = JSON.parse(event.data); } catch (e) { return; }
      if (concerns(change)) { refresh(); }
    });
    source.addEventListener("error", function () {
      setLive("down", "reconnecting…");
      if (source.readyState === EventSource.CLOSED) {
        setTimeout(function () { connect(false); }, RETRY_MS);
      } else {
        // EventSource retries by itself; re-read once it is back.
        opened = false;
      }
    });
  }

  // Lease countdowns tick locally between re-reads.
  function tick() {
    var nodes = document.querySelectorAll(".countdown[data-expires]");
    var now = Date.now();
    for (var i = 0; i < nodes.length; i++) {
      var at = Date.parse(nodes[i].dataset.expires);
      if (isNaN(at)) { continue; }
      var left = Math.max(0, Math.floor((at - now) / 1000));
      var h = Math.floor(left / 3600), m = Math.floor((left % 3600) / 60), s = left % 60;
      nodes[i].textContent = h ? h + "h " + String(m).padStart(2, "0") + "m" : m + "m " + String(s).padStart(2, "0") + "s";
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    connect(true);
    setInterval(tick, 1000);
  });
})();
