// Hangar dashboard: progressive enhancement only. Every page and form
// works without this script; it adds confirmations, the apps list's
// live filter and the live log tail.
(function () {
  "use strict";

  // Forms with data-confirm ask first.
  document.addEventListener("submit", function (ev) {
    var f = ev.target;
    var msg = f.getAttribute && f.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) {
      ev.preventDefault();
    }
  });

  // The apps list filters as you type.
  function appFilter() {
    var input = document.querySelector("input[data-filter]");
    if (!input) return;
    var table = document.getElementById(input.getAttribute("data-filter"));
    if (!table) return;
    input.addEventListener("input", function () {
      var q = input.value.trim().toLowerCase();
      table.querySelectorAll("tbody tr").forEach(function (tr) {
        tr.hidden = q !== "" && tr.getAttribute("data-name").toLowerCase().indexOf(q) < 0;
      });
    });
  }

  // The logs page follows the app's log stream (NDJSON) with fetch.
  function logTail() {
    var table = document.getElementById("log-table");
    if (!table || !window.fetch || !window.TextDecoder) return;
    var body = document.getElementById("log-lines");
    var tools = document.getElementById("logtools");
    var pause = document.getElementById("log-pause");
    var search = document.getElementById("log-search");
    var stream = document.getElementById("log-stream");
    var region = document.getElementById("log-region");
    var status = document.getElementById("log-status");
    var paused = false, held = [], maxRows = 2000;
    tools.hidden = false;

    function visible(tr) {
      var q = search.value.trim().toLowerCase();
      var s = stream.value, rg = region.value.trim();
      if (s && tr.getAttribute("data-stream") !== s) return false;
      if (rg && tr.getAttribute("data-region") !== rg) return false;
      if (q && tr.textContent.toLowerCase().indexOf(q) < 0) return false;
      return true;
    }
    function refilter() {
      body.querySelectorAll("tr").forEach(function (tr) { tr.hidden = !visible(tr); });
    }
    [search, stream, region].forEach(function (el) { el.addEventListener("input", refilter); });

    function row(l) {
      var tr = document.createElement("tr");
      tr.setAttribute("data-stream", l.stream || "");
      tr.setAttribute("data-region", l.region || "");
      [l.timestamp, l.machine_id, l.region, l.stream].forEach(function (v) {
        var td = document.createElement("td");
        td.textContent = v || "";
        tr.appendChild(td);
      });
      var td = document.createElement("td"), pre = document.createElement("pre");
      pre.textContent = l.message || "";
      td.appendChild(pre);
      tr.appendChild(td);
      tr.hidden = !visible(tr);
      return tr;
    }
    function add(l) {
      if (paused) { held.push(l); return; }
      body.appendChild(row(l));
      while (body.rows.length > maxRows) body.deleteRow(0);
    }
    pause.addEventListener("click", function () {
      paused = !paused;
      pause.setAttribute("aria-pressed", String(paused));
      pause.textContent = paused ? "Resume" : "Pause";
      if (!paused) { var h = held; held = []; h.forEach(add); }
      status.textContent = paused ? "Paused" : "Live";
    });

    function follow() {
      status.textContent = "Connecting…";
      fetch(table.getAttribute("data-stream"), { credentials: "same-origin" }).then(function (resp) {
        if (!resp.ok || !resp.body) { status.textContent = "Live tail unavailable (" + resp.status + "); reload for new lines."; return; }
        status.textContent = "Live";
        var reader = resp.body.getReader(), dec = new TextDecoder(), buf = "";
        function pump() {
          return reader.read().then(function (r) {
            if (r.done) { status.textContent = "Stream ended; reconnecting…"; setTimeout(follow, 2000); return; }
            buf += dec.decode(r.value, { stream: true });
            var i;
            while ((i = buf.indexOf("\n")) >= 0) {
              var line = buf.slice(0, i); buf = buf.slice(i + 1);
              if (line.trim() === "") continue;
              try { add(JSON.parse(line)); } catch (e) { /* not a log line */ }
            }
            return pump();
          });
        }
        return pump();
      }).catch(function () { status.textContent = "Disconnected; retrying…"; setTimeout(follow, 3000); });
    }
    follow();
  }

  document.addEventListener("DOMContentLoaded", function () { appFilter(); logTail(); });
})();
