// Hangar dashboard: progressive enhancement only. Every page and form
// works without this script; it adds confirmations, the apps list's
// live filter and the live log tail.
(function () {
  "use strict";

  // Forms with data-confirm ask first. Forms with data-progress (actions
  // that make a release) show the steps as the daemon reports them, then
  // go to the page with the outcome.
  document.addEventListener("submit", function (ev) {
    var f = ev.target;
    if (!f.getAttribute) return;
    var msg = f.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) {
      ev.preventDefault();
      return;
    }
    if (f.hasAttribute("data-progress") && window.fetch && window.TextDecoder && window.URLSearchParams) {
      ev.preventDefault();
      progress(f);
    }
  });

  function progress(f) {
    var box = document.createElement("div");
    box.className = "flash progress";
    box.setAttribute("role", "status");
    var title = document.createElement("p");
    title.textContent = "Working…";
    var list = document.createElement("ol");
    list.className = "events";
    box.appendChild(title);
    box.appendChild(list);
    f.parentNode.insertBefore(box, f.nextSibling);
    f.querySelectorAll("button").forEach(function (b) { b.disabled = true; });
    var body = new URLSearchParams(new FormData(f));
    fetch(f.action, { method: "POST", body: body, credentials: "same-origin", headers: { "Accept": "application/x-ndjson" } }).then(function (resp) {
      var type = resp.headers.get("Content-Type") || "";
      if (!resp.body || type.indexOf("application/x-ndjson") !== 0) {
        // Refused before it started (an error page): post it plainly
        // to show that page.
        f.submit();
        return;
      }
      var reader = resp.body.getReader(), dec = new TextDecoder(), buf = "";
      function line(l) {
        var v;
        try { v = JSON.parse(l); } catch (e) { return; }
        if (v.event) {
          var li = document.createElement("li");
          li.textContent = (v.event.machine_id ? v.event.machine_id + ": " : "") + v.event.message;
          list.appendChild(li);
        }
        if (v.error) title.textContent = "Failed: " + v.error;
        if (v.done) {
          title.textContent = v.done.message || "Done";
          window.location.assign(v.done.next);
        }
      }
      function pump() {
        return reader.read().then(function (r) {
          if (r.done) return;
          buf += dec.decode(r.value, { stream: true });
          var i;
          while ((i = buf.indexOf("\n")) >= 0) {
            var l = buf.slice(0, i); buf = buf.slice(i + 1);
            if (l.trim() !== "") line(l);
          }
          return pump();
        });
      }
      return pump();
    }).catch(function () { title.textContent = "Lost the connection; reload the page to see the outcome."; });
  }

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
