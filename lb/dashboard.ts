/**
 * The dashboard page that `GET /` of the admin endpoint serves: one self-contained HTML
 * document (CSS and script inline, no CDN, no build step), kept in a string so that
 * `deno compile` and `bun build --compile` ship it inside the executable.
 *
 * It polls `/api/backends` every 2 s (cards, throughput sparklines from the byte counters),
 * follows `/api/events` (SSE read with `fetch`, so the token can go in a header) to add and
 * remove NAT table rows within a second, and refreshes the table's counters every 2 s. With
 * a token, the page asks for it once and keeps it in `sessionStorage`.
 *
 * The script is written without template literals, so this file can hold it in one.
 *
 * @module
 */

/** The dashboard page. */
export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<link rel="icon" href="data:,">
<title>l4chat lb</title>
<style>
:root {
  --bg: #f6f7f9; --panel: #ffffff; --text: #1c2330; --muted: #5d6675; --line: #dde1e7;
  --accent: #2f6fde; --ok: #1f8a4c; --warn: #b7791f; --bad: #c53030; --chip: #eef1f5;
  font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #12151b; --panel: #1b2029; --text: #e3e7ee; --muted: #98a2b3; --line: #2c333f;
    --accent: #6ea0ff; --ok: #4cc38a; --warn: #e0b255; --bad: #f07171; --chip: #262d39;
  }
}
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--text); }
header { display: flex; align-items: center; gap: 16px; padding: 10px 20px;
  border-bottom: 1px solid var(--line); background: var(--panel); }
header h1 { font-size: 17px; margin: 0; }
header .meta { color: var(--muted); }
header .spacer { flex: 1; }
#live { font-size: 12px; padding: 2px 8px; border-radius: 10px; background: var(--chip); }
#live.on { color: var(--ok); } #live.off { color: var(--bad); }
main { padding: 14px 20px; display: grid; gap: 14px;
  grid-template-columns: minmax(0, 1fr) 320px; grid-template-areas: "cards cards" "table events"; }
section { background: var(--panel); border: 1px solid var(--line); border-radius: 8px; padding: 12px; }
section h2 { font-size: 13px; text-transform: uppercase; letter-spacing: .06em; color: var(--muted);
  margin: 0 0 10px; display: flex; align-items: center; gap: 10px; }
#cards-section { grid-area: cards; }
#table-section { grid-area: table; min-height: 300px; }
#events-section { grid-area: events; }
#cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(270px, 1fr)); gap: 10px; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 10px; display: grid; gap: 6px; }
.card .top { display: flex; align-items: center; gap: 6px; }
.card .addr { font-weight: 600; font-family: ui-monospace, monospace; flex: 1; overflow: hidden;
  text-overflow: ellipsis; white-space: nowrap; }
.badge { font-size: 11px; padding: 1px 7px; border-radius: 9px; background: var(--chip); }
.badge.up, .badge.ready { color: var(--ok); }
.badge.down { color: var(--bad); }
.badge.drain, .badge.maint, .badge.removing { color: var(--warn); }
.stats { display: grid; grid-template-columns: repeat(3, 1fr); gap: 2px 8px; font-size: 12px; }
.stats b { display: block; font-size: 15px; font-variant-numeric: tabular-nums; }
.stats span { color: var(--muted); }
canvas.spark { width: 100%; height: 40px; display: block; }
.buttons { display: flex; gap: 6px; }
button { font: inherit; font-size: 12px; padding: 3px 10px; border-radius: 5px; cursor: pointer;
  border: 1px solid var(--line); background: var(--chip); color: var(--text); }
button:hover { border-color: var(--accent); }
button:disabled { opacity: .45; cursor: default; }
#filter { width: 260px; text-transform: none; letter-spacing: normal; }
input[type=search], input[type=password] { font: inherit; padding: 3px 8px; border-radius: 5px;
  border: 1px solid var(--line); background: var(--bg); color: var(--text); }
.table-wrap { overflow: auto; max-height: 52vh; }
table { width: 100%; border-collapse: collapse; font-size: 12.5px; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line); white-space: nowrap; }
th { position: sticky; top: 0; background: var(--panel); cursor: pointer; user-select: none;
  color: var(--muted); font-weight: 600; }
th.sorted::after { content: " \\25B4"; } th.sorted.desc::after { content: " \\25BE"; }
td.mono { font-family: ui-monospace, monospace; }
td.num, th.num { text-align: right; }
#empty { color: var(--muted); padding: 10px 0; }
#events { list-style: none; margin: 0; padding: 0; font-size: 12px; max-height: 58vh; overflow: auto; }
#events li { padding: 3px 0; border-bottom: 1px solid var(--line); display: flex; gap: 6px; }
#events time { color: var(--muted); font-variant-numeric: tabular-nums; white-space: nowrap; }
#events .type { font-weight: 600; min-width: 52px; }
#events .type.health, #events .type.drain-deadline { color: var(--warn); }
#events .type.open { color: var(--ok); } #events .type.close { color: var(--muted); }
#token-dialog { position: fixed; inset: 0; background: rgba(0,0,0,.45); display: none;
  align-items: center; justify-content: center; }
#token-dialog.show { display: flex; }
#token-dialog form { background: var(--panel); padding: 18px; border-radius: 8px; display: grid; gap: 10px;
  min-width: 320px; border: 1px solid var(--line); }
#error { color: var(--bad); font-size: 12px; }
</style>
</head>
<body>
<header>
  <h1>l4chat lb</h1>
  <span class="meta" id="balance"></span>
  <span class="meta" id="summary"></span>
  <span class="spacer"></span>
  <span id="error" role="status"></span>
  <span id="live" class="off">offline</span>
</header>
<main>
  <section id="cards-section"><h2>Backends</h2><div id="cards"></div></section>
  <section id="table-section">
    <h2>Connections <span id="conn-count" class="badge">0</span>
      <input id="filter" type="search" placeholder="filter: client, backend, state" aria-label="filter connections">
    </h2>
    <div class="table-wrap">
      <table id="connections">
        <thead><tr>
          <th data-key="id" class="num">id</th><th data-key="client">client</th>
          <th data-key="backend">backend</th><th data-key="local">lb local</th>
          <th data-key="ageMs" class="num">age</th><th data-key="idleMs" class="num">idle</th>
          <th data-key="bytesUp" class="num">up</th><th data-key="bytesDown" class="num">down</th>
          <th data-key="state">state</th><th></th>
        </tr></thead>
        <tbody></tbody>
      </table>
      <div id="empty">No connections.</div>
    </div>
  </section>
  <section id="events-section"><h2>Events</h2><ul id="events"></ul></section>
</main>
<div id="token-dialog">
  <form id="token-form">
    <strong>Admin token</strong>
    <span class="meta">This load balancer's admin API needs a token.</span>
    <input id="token-input" type="password" autocomplete="current-password" aria-label="token" required>
    <button type="submit">Use token</button>
  </form>
</div>
<script>
"use strict";
(function () {
  var TOKEN_KEY = "l4chat-admin-token";
  var HISTORY = 150; // points per sparkline: 5 minutes at one sample every 2 s
  var token = sessionStorage.getItem(TOKEN_KEY) || "";
  var rows = new Map();
  var backends = [];
  var history = new Map(); // backend id -> { last: {t, bytes}, rates: [] }
  var sortKey = "id", sortDesc = false;
  var dirty = false;
  var stream = null;
  var $ = function (id) { return document.getElementById(id); };

  function headers(extra) {
    var h = Object.assign({}, extra || {});
    if (token) h["Authorization"] = "Bearer " + token;
    return h;
  }
  function showError(text) { $("error").textContent = text || ""; }
  function askToken() { $("token-dialog").classList.add("show"); $("token-input").focus(); }
  $("token-form").addEventListener("submit", function (e) {
    e.preventDefault();
    token = $("token-input").value.trim();
    sessionStorage.setItem(TOKEN_KEY, token);
    $("token-dialog").classList.remove("show");
    start();
  });

  function api(path, options) {
    options = options || {};
    var init = { method: options.method || "GET", headers: headers(options.body ? { "content-type": "application/json" } : {}) };
    if (options.body) init.body = JSON.stringify(options.body);
    return fetch(path, init).then(function (res) {
      if (res.status === 401) { askToken(); throw new Error("token needed"); }
      return res.json().then(function (body) {
        if (!res.ok) throw new Error(body && body.error ? body.error : "HTTP " + res.status);
        showError("");
        return body;
      });
    });
  }

  function fmtBytes(n) {
    if (n < 1024) return n + " B";
    var units = ["KiB", "MiB", "GiB", "TiB"], i = -1;
    do { n /= 1024; i++; } while (n >= 1024 && i < units.length - 1);
    return n.toFixed(n < 10 ? 1 : 0) + " " + units[i];
  }
  function fmtMs(ms) {
    if (ms < 1000) return ms + " ms";
    var s = Math.floor(ms / 1000);
    if (s < 60) return (ms / 1000).toFixed(1) + " s";
    var m = Math.floor(s / 60);
    if (m < 60) return m + "m " + (s % 60) + "s";
    return Math.floor(m / 60) + "h " + (m % 60) + "m";
  }
  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    if (attrs) for (var k in attrs) node.setAttribute(k, attrs[k]);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // --- backends ---
  function loadBackends() {
    return api("/api/backends").then(function (body) {
      $("balance").textContent = body.balance;
      var now = Date.now();
      backends = body.backends;
      var seen = new Set();
      backends.forEach(function (b) {
        seen.add(b.id);
        var h = history.get(b.id) || { last: null, rates: [] };
        var bytes = b.bytesUp + b.bytesDown;
        if (h.last) {
          var dt = (now - h.last.t) / 1000;
          if (dt > 0) h.rates.push(Math.max(0, (bytes - h.last.bytes) / dt));
          if (h.rates.length > HISTORY) h.rates.shift();
        }
        h.last = { t: now, bytes: bytes };
        history.set(b.id, h);
      });
      history.forEach(function (_, id) { if (!seen.has(id)) history.delete(id); });
      renderCards();
    }).catch(function (err) { showError(err.message); });
  }

  function renderCards() {
    var cards = $("cards");
    var existing = new Map();
    Array.prototype.forEach.call(cards.children, function (c) { existing.set(c.dataset.id, c); });
    backends.forEach(function (b, index) {
      var card = existing.get(String(b.id));
      if (!card) card = buildCard(b);
      existing.delete(String(b.id));
      if (cards.children[index] !== card) cards.insertBefore(card, cards.children[index] || null);
      fillCard(card, b);
    });
    existing.forEach(function (c) { c.remove(); });
    var active = backends.reduce(function (s, b) { return s + b.active; }, 0);
    $("summary").textContent = backends.length + " backends, " + active + " active";
  }

  function buildCard(b) {
    var card = el("div", { "class": "card", "data-id": String(b.id), "data-testid": "backend-card" });
    var top = el("div", { "class": "top" });
    top.append(el("span", { "class": "addr" }), el("span", { "class": "badge state" }),
      el("span", { "class": "badge health" }));
    var stats = el("div", { "class": "stats" });
    ["weight", "active", "total", "up", "down", "failures"].forEach(function (k) {
      var cell = el("div");
      cell.append(el("b", { "data-stat": k }), el("span", null, k));
      stats.append(cell);
    });
    var canvas = el("canvas", { "class": "spark", "aria-label": "throughput" });
    var meta = el("div", { "class": "meta check" });
    var buttons = el("div", { "class": "buttons" });
    var drain = el("button", { "data-action": "drain", "data-backend": String(b.id) }, "Drain");
    var ready = el("button", { "data-action": "ready", "data-backend": String(b.id) }, "Ready");
    drain.addEventListener("click", function () { setState(b.id, "drain"); });
    ready.addEventListener("click", function () { setState(b.id, "ready"); });
    buttons.append(drain, ready);
    card.append(top, stats, canvas, meta, buttons);
    return card;
  }

  function fillCard(card, b) {
    card.querySelector(".addr").textContent = b.address + (b.name !== b.address ? " (" + b.name + ")" : "");
    card.querySelector(".addr").title = "backend " + b.id;
    var state = card.querySelector(".state");
    state.textContent = b.removing ? "removing" : b.state;
    state.className = "badge state " + (b.removing ? "removing" : b.state);
    state.dataset.state = b.state;
    var health = card.querySelector(".health");
    health.textContent = b.health;
    health.className = "badge health " + b.health;
    var set = function (k, v) { card.querySelector("[data-stat=" + k + "]").textContent = v; };
    set("weight", b.weight); set("active", b.active); set("total", b.total);
    set("up", fmtBytes(b.bytesUp)); set("down", fmtBytes(b.bytesDown)); set("failures", b.failures);
    var rates = (history.get(b.id) || { rates: [] }).rates;
    var last = rates.length ? rates[rates.length - 1] : 0;
    var check = b.lastCheck ? "check " + (b.lastCheck.ok ? "ok" : "failed") + " " + fmtMs(Math.max(0, Date.now() - b.lastCheck.atMs)) + " ago" : "no check yet";
    card.querySelector(".check").textContent = fmtBytes(Math.round(last)) + "/s now \\u00b7 " + check;
    card.querySelector("[data-action=drain]").disabled = b.state === "drain" || b.removing;
    card.querySelector("[data-action=ready]").disabled = b.state === "ready" || b.removing;
    drawSpark(card.querySelector("canvas"), rates);
  }

  function drawSpark(canvas, rates) {
    var dpr = window.devicePixelRatio || 1;
    var w = canvas.clientWidth, h = canvas.clientHeight;
    if (!w || !h) return;
    if (canvas.width !== Math.round(w * dpr)) { canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr); }
    var ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    var style = getComputedStyle(document.documentElement);
    ctx.strokeStyle = style.getPropertyValue("--line").trim();
    ctx.beginPath(); ctx.moveTo(0, h - 0.5); ctx.lineTo(w, h - 0.5); ctx.stroke();
    if (rates.length === 0) return;
    // One sample is drawn from zero, so a new backend's first traffic shows at once.
    if (rates.length === 1) rates = [0].concat(rates);
    var max = Math.max.apply(null, rates) || 1;
    var step = w / (HISTORY - 1);
    var x0 = w - (rates.length - 1) * step;
    ctx.beginPath();
    rates.forEach(function (r, i) {
      var x = x0 + i * step, y = h - 2 - (r / max) * (h - 6);
      if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
    });
    ctx.strokeStyle = style.getPropertyValue("--accent").trim();
    ctx.lineWidth = 1.5;
    ctx.stroke();
    ctx.lineTo(w, h); ctx.lineTo(x0, h); ctx.closePath();
    ctx.globalAlpha = 0.15; ctx.fillStyle = ctx.strokeStyle; ctx.fill(); ctx.globalAlpha = 1;
  }

  function setState(id, state) {
    api("/api/backends/" + id, { method: "PATCH", body: { state: state } })
      .then(loadBackends).catch(function (err) { showError(err.message); });
  }

  // --- connections ---
  var eventSeq = 0;
  var addedAt = new Map(); // row id -> eventSeq when an open event added it
  var closedIds = new Set(); // rows closed by an event that a poll may still list
  function loadConnections() {
    var asked = eventSeq;
    return api("/api/connections?limit=5000").then(function (body) {
      var next = new Map();
      var listed = new Set();
      body.connections.forEach(function (c) {
        listed.add(c.id);
        if (!closedIds.has(c.id)) next.set(c.id, c);
      });
      // Rows opened by an event after this poll was asked for are newer than its answer.
      rows.forEach(function (c, id) {
        if (!listed.has(id) && (addedAt.get(id) || 0) > asked) next.set(id, c);
      });
      closedIds.forEach(function (id) { if (!listed.has(id)) closedIds.delete(id); });
      addedAt.forEach(function (_, id) { if (!next.has(id)) addedAt.delete(id); });
      rows = next;
      markDirty();
    }).catch(function (err) { showError(err.message); });
  }
  function markDirty() {
    if (dirty) return;
    dirty = true;
    requestAnimationFrame(function () { dirty = false; renderTable(); });
  }
  function renderTable() {
    var filter = $("filter").value.trim().toLowerCase();
    var list = Array.from(rows.values()).filter(function (c) {
      return !filter || [c.client, c.backend, c.local, c.state, String(c.id)].some(function (v) { return v.toLowerCase().indexOf(filter) !== -1; });
    });
    list.sort(function (a, b) {
      var x = a[sortKey], y = b[sortKey];
      var r = typeof x === "number" ? x - y : String(x).localeCompare(String(y), undefined, { numeric: true });
      return sortDesc ? -r : r;
    });
    var body = document.querySelector("#connections tbody");
    var fragment = document.createDocumentFragment();
    list.forEach(function (c) {
      var tr = el("tr", { "data-id": String(c.id), "data-client": c.client });
      tr.append(el("td", { "class": "num" }, String(c.id)), el("td", { "class": "mono" }, c.client),
        el("td", { "class": "mono" }, c.backend), el("td", { "class": "mono" }, c.local),
        el("td", { "class": "num" }, fmtMs(c.ageMs)), el("td", { "class": "num" }, fmtMs(c.idleMs)),
        el("td", { "class": "num" }, fmtBytes(c.bytesUp)), el("td", { "class": "num" }, fmtBytes(c.bytesDown)),
        el("td", null, c.state));
      var cell = el("td");
      var close = el("button", { "data-action": "close", "data-connection": String(c.id) }, "Close");
      close.addEventListener("click", function () {
        close.disabled = true;
        api("/api/connections/" + c.id, { method: "DELETE" }).catch(function (err) { showError(err.message); });
      });
      cell.append(close);
      tr.append(cell);
      fragment.append(tr);
    });
    body.replaceChildren(fragment);
    $("conn-count").textContent = String(rows.size);
    $("empty").style.display = list.length ? "none" : "block";
    document.querySelectorAll("#connections th[data-key]").forEach(function (th) {
      th.classList.toggle("sorted", th.dataset.key === sortKey);
      th.classList.toggle("desc", th.dataset.key === sortKey && sortDesc);
    });
  }
  document.querySelectorAll("#connections th[data-key]").forEach(function (th) {
    th.addEventListener("click", function () {
      if (sortKey === th.dataset.key) sortDesc = !sortDesc; else { sortKey = th.dataset.key; sortDesc = false; }
      renderTable();
    });
  });
  $("filter").addEventListener("input", renderTable);

  // --- events (SSE over fetch, so that the token goes in a header) ---
  function describe(type, d) {
    if (type === "open") return d.client + " \\u2192 " + d.backend + " (#" + d.id + ")";
    if (type === "close") return d.client + " \\u2192 " + d.backend + " closed: " + d.reason + ", " + fmtMs(d.durationMs) + ", \\u2191" + fmtBytes(d.bytesUp) + " \\u2193" + fmtBytes(d.bytesDown);
    if (type === "health") return d.address + " is " + d.health;
    if (type === "backend") return d.address + " " + d.change + ": " + d.state + ", weight " + d.weight;
    if (type === "reload") return "config applied: +" + d.added.length + " -" + d.removed.length;
    if (type === "refused") return d.client + " refused: " + d.reason;
    if (type === "connect-failed") return "cannot connect to " + d.address;
    if (type === "drain-deadline") return d.address + ": deadline, closing " + d.closed;
    return JSON.stringify(d);
  }
  function addEvent(type, d) {
    var list = $("events");
    var li = el("li", { "data-type": type });
    li.append(el("time", null, new Date(d.timeMs || Date.now()).toTimeString().slice(0, 8)),
      el("span", { "class": "type " + type }, type), el("span", null, describe(type, d)));
    list.prepend(li);
    while (list.children.length > 200) list.lastChild.remove();
  }
  function onEvent(type, d) {
    addEvent(type, d);
    if (type === "open") { eventSeq++; addedAt.set(d.id, eventSeq); rows.set(d.id, d); markDirty(); }
    else if (type === "close") { closedIds.add(d.id); rows.delete(d.id); markDirty(); }
    if (type === "health" || type === "backend" || type === "reload" || type === "drain-deadline") loadBackends();
  }
  function live(on) {
    $("live").textContent = on ? "live" : "offline";
    $("live").className = on ? "on" : "off";
  }
  function follow() {
    if (stream) stream.abort();
    var controller = new AbortController();
    stream = controller;
    fetch("/api/events", { headers: headers(), signal: controller.signal }).then(function (res) {
      if (res.status === 401) { askToken(); throw new Error("token needed"); }
      if (!res.ok || !res.body) throw new Error("events: HTTP " + res.status);
      live(true);
      loadConnections();
      var reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      var buffer = "";
      function pump() {
        return reader.read().then(function (chunk) {
          if (chunk.done) throw new Error("events ended");
          buffer += chunk.value;
          var end;
          while ((end = buffer.indexOf("\\n\\n")) !== -1) {
            var message = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            var type = "message", data = "";
            message.split("\\n").forEach(function (line) {
              if (line.indexOf("event: ") === 0) type = line.slice(7);
              else if (line.indexOf("data: ") === 0) data += line.slice(6);
            });
            if (data) { try { onEvent(type, JSON.parse(data)); } catch (e) { showError(String(e)); } }
          }
          return pump();
        });
      }
      return pump();
    }).catch(function (err) {
      if (controller.signal.aborted) return;
      live(false);
      if (err.message !== "token needed") setTimeout(follow, 2000);
    });
  }

  function start() {
    loadBackends();
    loadConnections();
    follow();
    api("/api/events/recent").then(function (body) {
      body.events.slice(-50).forEach(function (e) { addEvent(e.type, Object.assign({ timeMs: e.timeMs }, e.data)); });
    }).catch(function () {});
  }
  setInterval(loadBackends, 2000);
  setInterval(loadConnections, 2000);
  start();
})();
</script>
</body>
</html>
`;
