// The operations dashboard's page. It signs in with the API key once (POST /dashboard/session:
// the server answers with an HttpOnly session cookie, and a CSRF token kept here in memory),
// then reads the feed's WebSocket, which sends the node's (and the cluster's) figures once a
// second. Every value is written with textContent: user ids and reasons are never HTML.
// Each figure also sits in a data-value attribute, exactly as the feed gave it.
"use strict";

const $ = (id) => document.getElementById(id);
let csrf = null;
let socket = null;

// ----- formatting -------------------------------------------------------------------------

const integer = (n) => Math.round(n).toLocaleString("en-US");
const rate = (n) => (n < 10 ? n.toFixed(1) : integer(n));
function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i += 1;
  }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
}

/** Show `value` in the element `id`, formatted by `format`; keep the raw value in data-value. */
function show(id, value, format = integer) {
  const element = $(id);
  element.dataset.value = String(value);
  element.textContent = format(value);
}

/** A bar's fill `share` (0 to 1) wide: set through the CSSOM, which the page's content security
 * policy allows (it refuses style attributes). */
function fill(share, extra = "") {
  const node = element("div", { class: `fill${extra}` });
  node.style.width = `${100 * share}%`;
  return node;
}

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

/** Bars of `counts` labelled by `labels`, widths relative to the largest. */
function bars(container, labels, counts) {
  const max = Math.max(1, ...counts);
  container.replaceChildren(
    ...counts.map((count, i) =>
      element(
        "div",
        { class: "bar", "data-label": labels[i], "data-value": count },
        element("span", {}, labels[i]),
        element("div", { class: "track" }, fill(count / max)),
        element("span", { class: "value" }, integer(count)),
      ),
    ),
  );
}

/** A meter of `used` against `budget`. */
function meter(name, used, budget, format) {
  const share = budget > 0 ? Math.min(1, used / budget) : 0;
  const level = share >= 0.9 ? " full" : share >= 0.6 ? " high" : "";
  return element(
    "div",
    { class: "meter", "data-name": name, "data-value": used, "data-budget": budget },
    element("div", { class: "label" }, element("span", {}, name), element("span", {}, `${format(used)} of ${format(budget)}`)),
    element("div", { class: "track" }, fill(share, level)),
  );
}

function reasons(table, counts) {
  const rows = Object.entries(counts).sort((a, b) => b[1] - a[1]);
  table.tBodies[0].replaceChildren(
    ...(rows.length === 0
      ? [element("tr", {}, element("td", { colspan: 2 }, "none"))]
      : rows.map(([reason, n]) => element("tr", { "data-reason": reason, "data-value": n }, element("td", {}, reason), element("td", {}, integer(n))))),
  );
}

// ----- the feed ---------------------------------------------------------------------------

function render(feed) {
  const me = feed.nodes[0];
  const s = me.stats;
  const t = feed.totals;
  const board = $("board");
  board.dataset.seq = String(feed.seq);
  board.dataset.at = String(me.at);
  board.dataset.nodes = String(feed.nodes.length);
  show("connections", t.connections);
  $("connections-max").textContent = `of ${integer(feed.nodes.reduce((sum, n) => sum + n.budgets.max_connections, 0))}`;
  show("users", t.users);
  show("rooms", t.rooms);
  show("threads", t.threads);
  show("runs-active", t.runs_active);

  for (const name of ["messages_in", "messages_out", "bytes_in", "bytes_out", "publishes"]) {
    const id = name.replace("_", "-");
    show(`rate-${id}`, me.rates[name], name.startsWith("bytes") ? (n) => `${bytes(n)}/s` : rate);
    show(id, s.counters[name], name.startsWith("bytes") ? bytes : integer);
  }

  bars($("health"), ["0–19", "20–39", "40–59", "60–79", "80–100"], s.health);
  const rttLabels = me.rtt.le_ms.map((ms) => `≤ ${ms} ms`).concat([`> ${me.rtt.le_ms[me.rtt.le_ms.length - 1]} ms`]);
  bars($("rtt"), rttLabels, me.rtt.buckets);
  show("rtt-count", me.rtt.count);

  const b = me.budgets;
  $("budgets").replaceChildren(
    meter("connections", s.connections, b.max_connections, integer),
    meter("queued bytes", s.queued_bytes, s.connections * b.queue_bytes, bytes),
    meter("bytes in flight", me.inflight_bytes, s.connections * b.inflight_bytes, bytes),
    meter("history bytes", s.history_bytes, b.history_bytes, bytes),
  );
  reasons($("closes"), s.counters.closes);
  reasons($("drops"), s.counters.drops);

  const row = (cells, attributes = {}) => element("tr", attributes, ...cells.map((c) => element("td", {}, c)));
  $("nodes").tBodies[0].replaceChildren(
    ...feed.nodes.map((n) =>
      row(
        [
          n.node === feed.this_node ? `${n.node} (this node)` : n.node,
          integer(n.stats.connections),
          integer(n.stats.users),
          integer(n.stats.rooms),
          integer(n.stats.runs_active),
          rate(n.rates.messages_in),
          rate(n.rates.messages_out),
          bytes(n.stats.queued_bytes),
          bytes(n.stats.history_bytes),
          new Date(n.at).toLocaleTimeString(),
        ],
        { "data-node": n.node, "data-connections": n.stats.connections },
      ),
    ),
  );
  $("nodes").tFoot.replaceChildren(
    row(["total", integer(t.connections), integer(t.users), integer(t.rooms), integer(t.runs_active), rate(t.rates.messages_in), rate(t.rates.messages_out), bytes(t.queued_bytes), bytes(t.history_bytes), ""], {
      "data-connections": t.connections,
    }),
  );
  $("cluster-error").textContent = feed.cluster_error ?? "";
  $("updated").textContent = `updated ${new Date(me.at).toLocaleTimeString()}`;
  setStatus("live", "live");
}

function setStatus(state, text) {
  $("status").dataset.state = state;
  $("status").textContent = text;
}

function openFeed() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${scheme}://${location.host}/dashboard/feed`);
  socket.onmessage = (event) => render(JSON.parse(event.data));
  socket.onclose = async () => {
    socket = null;
    if (csrf === null) return;
    setStatus("reconnecting", "reconnecting");
    // Still signed in? (A session that ended closes the feed, or refuses its handshake.)
    if (await resume()) setTimeout(() => csrf !== null && socket === null && openFeed(), 1000);
  };
}

// ----- signing in and out -----------------------------------------------------------------

function signedIn(session) {
  csrf = session.csrf;
  $("login").hidden = true;
  $("board").hidden = false;
  $("sign-out").hidden = false;
  if (socket === null) openFeed();
}

function signedOut(message) {
  csrf = null;
  if (socket !== null) socket.close();
  $("board").hidden = true;
  $("sign-out").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message;
  setStatus("signed-out", "signed out");
}

/** The cookie's session, if it is still live: true if signed in. */
async function resume() {
  const answer = await fetch("/dashboard/session", { credentials: "same-origin" });
  if (answer.ok) {
    signedIn(await answer.json());
    return true;
  }
  signedOut(csrf === null ? "" : "The session ended: sign in again.");
  return false;
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const key = $("api-key");
  const answer = await fetch("/dashboard/session", {
    method: "POST",
    credentials: "same-origin",
    headers: { authorization: `Bearer ${key.value}` },
  });
  key.value = "";
  if (answer.ok) {
    $("login-error").textContent = "";
    signedIn(await answer.json());
  } else {
    const body = await answer.json().catch(() => ({}));
    signedOut(`Refused (${answer.status} ${body.reason ?? body.error ?? ""}): check the API key.`);
  }
});

$("sign-out").addEventListener("click", async () => {
  await fetch("/dashboard/session", { method: "DELETE", credentials: "same-origin", headers: { "x-csrf-token": csrf ?? "" } });
  signedOut("");
});

// ----- looking a user up ------------------------------------------------------------------

async function lookUp(user) {
  const result = $("lookup-result");
  const answer = await fetch(`/dashboard/users/${encodeURIComponent(user)}`, { credentials: "same-origin" });
  if (!answer.ok) {
    result.replaceChildren(element("p", { id: "lookup-error" }, `Refused (${answer.status}).`));
    return;
  }
  const presence = await answer.json();
  const summary =
    `${presence.user}: ${presence.connected ? `${presence.connections.length} connection(s) on this node` : "not connected to this node"}` +
    (presence.cluster_connections == null ? "" : `, ${presence.cluster_connections} in the cluster`);
  const header = element("tr", {}, ...["connection", "thread", "rooms", "health", "rtt", "in", "out", "queued"].map((h) => element("th", {}, h)));
  const rows = presence.connections.map((c) =>
    element(
      "tr",
      { "data-conn": c.id },
      ...[c.id, c.thread ?? "", c.rooms.join(", "), c.health, c.rtt_ms == null ? "" : `${c.rtt_ms.toFixed(1)} ms`, integer(c.messages_in), integer(c.messages_out), integer(c.queued_messages)].map((v) =>
        element("td", {}, v),
      ),
    ),
  );
  const disconnect = element("button", { id: "disconnect", type: "button", class: "danger" }, `Disconnect ${presence.user}`);
  disconnect.disabled = !presence.connected && !presence.cluster_connections;
  disconnect.addEventListener("click", async () => {
    const done = await fetch(`/dashboard/users/${encodeURIComponent(presence.user)}/disconnect`, {
      method: "POST",
      credentials: "same-origin",
      headers: { "x-csrf-token": csrf ?? "" },
    });
    const body = await done.json().catch(() => ({}));
    const text = done.ok ? `Closed ${body.closed} connection(s) on this node.` : `Refused (${done.status} ${body.reason ?? ""}).`;
    await lookUp(presence.user);
    $("lookup-result").prepend(element("p", { id: "disconnect-result", "data-closed": body.closed ?? "" }, text));
  });
  result.replaceChildren(
    element("p", { id: "lookup-summary", "data-user": presence.user, "data-connections": presence.connections.length }, summary),
    element("table", { id: "lookup-connections" }, element("thead", {}, header), element("tbody", {}, ...rows)),
    disconnect,
  );
}

$("lookup-form").addEventListener("submit", (event) => {
  event.preventDefault();
  lookUp($("lookup-user").value.trim());
});

resume();
