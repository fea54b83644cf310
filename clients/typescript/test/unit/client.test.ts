import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { MemoryStore, SwitchboardClient, SwitchboardError, type ClientOptions } from "../../src/index.js";
import { FakeSocket, ManualTimers, fakeWebSocket, settle, welcome } from "../support/fake.js";

const URL_ = "ws://switchboard.test/ws";

function setup(options: Partial<ClientOptions> = {}) {
  const timers = new ManualTimers();
  const { WebSocket, sockets } = fakeWebSocket();
  const client = new SwitchboardClient({
    url: URL_,
    token: "t0",
    WebSocket,
    timers,
    random: () => 0.5,
    heartbeat: false,
    // Longer than any test advances the clock, unless a test is about timeouts.
    requestTimeoutMs: 3_600_000,
    connectTimeoutMs: 3_600_000,
    ...options,
  });
  const events: string[] = [];
  client.on("state", (s) => events.push(`state:${s}`));
  client.on("disconnected", (d) => events.push(`disconnected:${d.code}:${d.label}:${d.reconnect}:${d.delayMs}`));
  const socket = (i = sockets.length - 1): FakeSocket => {
    const s = sockets[i];
    if (s === undefined) throw new Error(`no socket ${i}`);
    return s;
  };
  return { client, timers, sockets, socket, events };
}

async function connected(options: Partial<ClientOptions> = {}, user = "alice") {
  const env = setup(options);
  const done = env.client.connect();
  await settle();
  env.socket().receive(welcome(user));
  await done;
  return env;
}

/** A message on `stream` at `seq` (epoch 1). */
function message(stream: string, seq: number, extra: object = {}): object {
  const room = stream.startsWith("room:") ? { room: stream.slice(5) } : {};
  return { type: "message", stream, epoch: 1, seq, ...room, event: "chat", data: seq, ...extra };
}

describe("connecting", () => {
  test("the token provider is called at every attempt and its token goes in the handshake", async () => {
    let calls = 0;
    const { client, sockets, socket, timers } = setup({ token: async () => `token-${++calls}`, thread: "t-1" });
    void client.connect();
    await settle();
    assert.equal(socket().query.get("token"), "token-1");
    assert.equal(socket().query.get("thread"), "t-1");
    assert.equal(socket().query.get("resume"), null, "no position yet");
    socket().serverClose(1006);
    timers.advance(30_000);
    await settle();
    assert.equal(sockets.length, 2);
    assert.equal(socket().query.get("token"), "token-2");
  });

  test("connect resolves with welcome and the state goes connecting, then connected", async () => {
    const { client, events } = await connected();
    assert.equal(client.state, "connected");
    assert.equal(client.welcome?.user, "alice");
    assert.deepEqual(events, ["state:connecting", "state:connected"]);
  });

  test("a failing token provider is reported and retried with backoff", async () => {
    let fail = true;
    const { client, sockets, timers } = setup({ token: async () => (fail ? Promise.reject(new Error("no")) : "ok") });
    const errors: string[] = [];
    client.on("error", (e) => errors.push(e.code));
    void client.connect();
    await settle();
    assert.deepEqual(errors, ["token"]);
    assert.equal(sockets.length, 0);
    assert.equal(client.state, "disconnected");
    fail = false;
    timers.advance(30_000);
    await settle();
    assert.equal(sockets.length, 1);
  });

  test("frames that are not JSON objects with a string type are reported and skipped", async () => {
    const { client, socket } = await connected();
    const errors: string[] = [];
    client.on("error", (e) => errors.push(e.code));
    socket().receiveText("not json");
    socket().receiveText("42");
    socket().receiveText(new Uint8Array([1]));
    socket().receive({ type: "message", event: "still", data: 1 });
    assert.deepEqual(errors, ["bad_frame", "bad_frame", "bad_frame"]);
    assert.equal(client.state, "connected");
  });
});

describe("reconnecting by close code (PROTOCOL.md §5)", () => {
  for (const [code, label] of [
    [1000, "normal"],
    [1003, "binary_frame"],
    [1007, "invalid_utf8"],
    [4001, "evicted"],
    [4002, "disconnected"],
  ] as const) {
    test(`after ${code} (${label}) the client does not reconnect`, async () => {
      const { client, sockets, socket, timers, events } = await connected();
      const joining = assert.rejects(client.join("lobby"), (e: SwitchboardError) => e.code === "closed");
      socket().serverClose(code, label);
      timers.advance(10 * 60_000);
      await settle();
      assert.equal(sockets.length, 1);
      assert.equal(client.state, "closed");
      assert.ok(events.includes(`disconnected:${code}:${label}:false:null`), events.join());
      await joining;
    });
  }

  for (const code of [1009, 1012, 4000, 4005, 4008]) {
    test(`after ${code} the client reconnects at once`, async () => {
      const { sockets, socket, timers, events } = await connected();
      socket().serverClose(code);
      timers.advance(0);
      await settle();
      assert.equal(sockets.length, 2);
      assert.ok(events.some((e) => e.startsWith(`disconnected:${code}:`) && e.endsWith(":true:0")), events.join());
    });
  }

  for (const code of [1001, 1008, 4003, 4004, 4029, 1006, 1011]) {
    test(`after ${code} the client backs off with jitter before reconnecting`, async () => {
      const { sockets, socket, timers } = await connected({ backoff: { initialMs: 1000 } });
      socket().serverClose(code);
      timers.advance(0);
      await settle();
      assert.equal(sockets.length, 1, "no attempt at once");
      // random() = 0.5 and a ceiling of 1000 ms: 500 ms.
      timers.advance(499);
      await settle();
      assert.equal(sockets.length, 1);
      timers.advance(1);
      await settle();
      assert.equal(sockets.length, 2);
    });
  }

  test("the backoff ceiling doubles with every failed attempt, up to the maximum, and resets at welcome", async () => {
    const { socket, timers, events } = await connected({ backoff: { initialMs: 100, maxMs: 1000 }, random: () => 0.999 });
    const delays = (): number[] =>
      events.filter((e) => e.startsWith("disconnected")).map((e) => Number(e.split(":").pop()));
    for (let i = 0; i < 6; i++) {
      socket().serverClose(1006);
      timers.advance(10_000);
      await settle();
    }
    assert.deepEqual(delays(), [99, 199, 399, 799, 999, 999]);
    socket().receive(welcome());
    socket().serverClose(1006);
    assert.equal(delays().pop(), 99);
  });

  test("an at-once code after failed attempts still backs off", async () => {
    const { sockets, socket, timers } = await connected({ backoff: { initialMs: 1000 } });
    socket().serverClose(4008);
    timers.advance(0);
    await settle();
    assert.equal(sockets.length, 2);
    socket().serverClose(4008); // before welcome: a failed attempt
    timers.advance(0);
    await settle();
    assert.equal(sockets.length, 2, "the second attempt waits");
    timers.advance(2000);
    await settle();
    assert.equal(sockets.length, 3);
  });

  test("close() closes with 1000, stops reconnecting, and rejects what waits", async () => {
    const { client, socket, sockets, timers } = await connected();
    const publishing = client.publish("lobby", "chat");
    client.close();
    assert.deepEqual(socket().closedWith, { code: 1000, reason: "normal" });
    assert.equal(client.state, "closed");
    await assert.rejects(publishing, (e: SwitchboardError) => e.code === "disconnected");
    timers.advance(60_000);
    await settle();
    assert.equal(sockets.length, 1);
  });

  test("a silent connection is probed with ping, then replaced (4000) and the client reconnects at once", async () => {
    const { socket, sockets, timers, events } = await connected({ heartbeat: true });
    const pings = (): number => socket().sentOf("ping").filter((p) => p.ref === undefined).length;
    timers.advance(15_000); // something was heard at welcome
    assert.equal(pings(), 0);
    timers.advance(15_000);
    assert.equal(pings(), 1, "probe");
    timers.advance(15_000);
    await settle();
    assert.deepEqual(sockets[0]?.closedWith, { code: 4000, reason: "heartbeat_timeout" });
    assert.equal(sockets.length, 2);
    assert.ok(events.includes("disconnected:4000:heartbeat_timeout:true:0"));
  });

  test("a connection that answers the probe stays", async () => {
    const { socket, sockets, timers } = await connected({ heartbeat: true });
    timers.advance(30_000);
    socket().receive({ type: "pong" });
    timers.advance(30_000);
    socket().receive({ type: "pong" });
    timers.advance(15_000);
    assert.equal(sockets.length, 1);
    assert.equal(socket().closedWith, null);
  });
});

describe("resume (PROTOCOL.md §7)", () => {
  test("the user-stream position goes in the handshake and rooms are joined again with since", async () => {
    const { client, socket, timers } = await connected();
    const joined = client.join("lobby");
    const join = socket().last();
    assert.deepEqual(join, { type: "join", room: "lobby", ref: join.ref });
    socket().receive({ type: "joined", room: "lobby", stream: "room:lobby", epoch: 1, seq: 3, ref: join.ref });
    await joined;
    socket().receive(message("user:alice", 7));
    socket().receive(message("room:lobby", 4));
    socket().receive(message("user:alice", 5)); // older: the position never moves back
    socket().serverClose(1006);
    timers.advance(60_000);
    await settle();
    assert.equal(socket().query.get("resume"), "1:7");
    socket().receive(welcome());
    const rejoin = socket().last();
    assert.deepEqual(rejoin, { type: "join", room: "lobby", since: { epoch: 1, seq: 4 }, ref: rejoin.ref });
  });

  test("a room joined without since starts from the joined head, so what is published while away is replayed", async () => {
    const { client, socket, timers } = await connected();
    const joined = client.join("quiet");
    socket().receive({ type: "joined", room: "quiet", stream: "room:quiet", epoch: 2, seq: 9, ref: socket().last().ref });
    await joined;
    socket().serverClose(4008);
    timers.advance(0);
    await settle();
    socket().receive(welcome());
    assert.deepEqual(socket().last().since, { epoch: 2, seq: 9 });
  });

  test("without a position at connect, the welcome head becomes the position once a ping after welcome is answered", async () => {
    const { client, socket } = await connected();
    const [fence] = socket().sentOf("ping");
    assert.equal(client.position("user:alice"), undefined);
    socket().receive({ type: "pong", ref: fence?.ref });
    assert.deepEqual(client.position("user:alice"), { epoch: 1, seq: 0 });
    const later = await connected();
    later.socket().receive(message("user:alice", 12)); // newer than the head: kept
    later.socket().receive({ type: "pong", ref: later.socket().sentOf("ping")[0]?.ref });
    assert.deepEqual(later.client.position("user:alice"), { epoch: 1, seq: 12 });
  });

  test("positions are not taken from welcome, joined-with-since or resumed", async () => {
    const { client, socket } = await connected();
    socket().receive({ type: "welcome", conn: "x", user: "alice", heartbeat_ms: 1, stream: "user:alice", epoch: 1, seq: 99 });
    assert.equal(client.position("user:alice"), undefined);
    socket().receive({ type: "resumed", stream: "room:a", epoch: 1, seq: 50 });
    assert.equal(client.position("room:a"), undefined);
  });

  test("a gap is an event with the stream and range, and the position moves past it", async () => {
    const { client, socket } = await connected();
    const gaps: unknown[] = [];
    client.on("gap", (g) => gaps.push(g));
    const gap = { type: "gap", stream: "room:lobby", epoch: 3, from: 5, to: 10, reason: "history" };
    socket().receive(gap);
    assert.deepEqual(gaps, [gap]);
    assert.deepEqual(client.position("room:lobby"), { epoch: 3, seq: 10 });
  });

  test("a frame of another epoch replaces the position even with a smaller seq", async () => {
    const { client, socket } = await connected();
    socket().receive(message("user:alice", 40));
    socket().receive({ ...message("user:alice", 2), epoch: 9 });
    assert.deepEqual(client.position("user:alice"), { epoch: 9, seq: 2 });
  });

  test("already_live for a room: the client leaves it and joins it again with since", async () => {
    const { client, socket, timers } = await connected();
    const joined = client.join("lobby");
    socket().receive({ type: "joined", room: "lobby", stream: "room:lobby", epoch: 1, seq: 0, ref: socket().last().ref });
    await joined;
    socket().receive(message("room:lobby", 1));
    socket().serverClose(1012);
    timers.advance(0);
    await settle();
    socket().receive(welcome());
    const join = socket().last();
    socket().receive({ type: "error", code: "already_live", message: "live", ref: join.ref });
    const leave = socket().last();
    assert.deepEqual(leave, { type: "leave", room: "lobby", ref: leave.ref });
    socket().receive({ type: "left", room: "lobby", ref: leave.ref });
    const again = socket().last();
    assert.deepEqual(again, { type: "join", room: "lobby", since: { epoch: 1, seq: 1 }, ref: again.ref });
  });

  test("welcome for another user than the stored positions' owner: forget them and reconnect without them", async () => {
    const store = new MemoryStore();
    store.save({ user: "alice", streams: { "user:alice": { epoch: 1, seq: 30 }, "room:a": { epoch: 1, seq: 2 } } });
    const { client, socket, sockets, timers } = setup({ store });
    void client.connect();
    await settle();
    assert.equal(socket().query.get("resume"), "1:30");
    socket().receive(welcome("bob"));
    timers.advance(0);
    await settle();
    assert.equal(sockets.length, 2);
    assert.deepEqual(sockets[0]?.closedWith, { code: 1000, reason: "normal" });
    assert.equal(socket().query.get("resume"), null);
    socket().receive(welcome("bob"));
    assert.equal(client.state, "connected");
    assert.deepEqual(store.load()?.user, "bob");
    assert.deepEqual(store.load()?.streams, {});
  });

  test("positions are saved to the store at most every persistIntervalMs and at every disconnect; a new client resumes from them", async () => {
    const store = new MemoryStore();
    const { socket, timers } = await connected({ store, persistIntervalMs: 1000 });
    socket().receive(message("user:alice", 1));
    socket().receive(message("user:alice", 2));
    assert.equal(store.load()?.streams["user:alice"]?.seq, undefined, "not yet");
    timers.advance(1000);
    assert.deepEqual(store.load()?.streams["user:alice"], { epoch: 1, seq: 2 });
    socket().receive(message("user:alice", 3));
    socket().serverClose(1006);
    assert.deepEqual(store.load()?.streams["user:alice"], { epoch: 1, seq: 3 });

    const reload = setup({ store });
    void reload.client.connect();
    await settle();
    assert.equal(reload.socket().query.get("resume"), "1:3");
  });
});

describe("page lifecycle", () => {
  test("with a store, positions are saved when the page is hidden (a reload), not only on the timer", async () => {
    const page = new EventTarget();
    const global = globalThis as { addEventListener?: unknown; removeEventListener?: unknown };
    global.addEventListener = page.addEventListener.bind(page);
    global.removeEventListener = page.removeEventListener.bind(page);
    try {
      const store = new MemoryStore();
      const { client, socket } = await connected({ store, persistIntervalMs: 60_000 });
      socket().receive(message("room:lobby", 4));
      assert.equal(store.load()?.streams["room:lobby"], undefined);
      page.dispatchEvent(new Event("pagehide"));
      assert.deepEqual(store.load()?.streams["room:lobby"], { epoch: 1, seq: 4 });
      client.close();
    } finally {
      delete global.addEventListener;
      delete global.removeEventListener;
    }
  });
});

describe("requests", () => {
  test("join resolves with the ref-matched joined; errors reject with their code and the room is not joined again", async () => {
    const { client, socket, timers } = await connected();
    const forbidden = client.join("secret");
    const ok = client.join("lobby");
    const [j1, j2] = socket().sentOf("join");
    socket().receive({ type: "joined", room: "lobby", stream: "room:lobby", epoch: 1, seq: 0, ref: j2?.ref });
    socket().receive({ type: "error", code: "forbidden", message: "no", ref: j1?.ref });
    assert.equal((await ok).room, "lobby");
    await assert.rejects(forbidden, (e: SwitchboardError) => e.code === "forbidden");
    socket().serverClose(4000);
    timers.advance(0);
    await settle();
    socket().receive(welcome());
    assert.deepEqual(
      socket().sentOf("join").map((f) => f.room),
      ["lobby"],
    );
  });

  test("a join pending at a disconnect is sent again on the next connection and resolved by it", async () => {
    const { client, socket, timers } = await connected();
    const joining = client.join("lobby");
    socket().serverClose(1006);
    timers.advance(60_000);
    await settle();
    socket().receive(welcome());
    const join = socket().last();
    assert.equal(join.type, "join");
    socket().receive({ type: "joined", room: "lobby", stream: "room:lobby", epoch: 1, seq: 0, ref: join.ref });
    assert.equal((await joining).room, "lobby");
  });

  test("join and bind called while disconnected are made at the next connection", async () => {
    const { client, socket } = setup({});
    const joining = client.join("lobby");
    const binding = client.bind("t-9");
    void client.connect();
    await settle();
    assert.equal(socket().query.get("thread"), "t-9");
    socket().receive(welcome("alice", { thread: "t-9" }));
    await binding;
    socket().receive({ type: "joined", room: "lobby", stream: "room:lobby", epoch: 1, seq: 0, ref: socket().last().ref });
    await joining;
  });

  test("leave resolves at left, rejects with not_member, and resolves when the connection closes first", async () => {
    const { client, socket } = await connected();
    const leaving = client.leave("lobby");
    socket().receive({ type: "left", room: "lobby", ref: socket().last().ref });
    await leaving;
    const notMember = client.leave("elsewhere");
    socket().receive({ type: "error", code: "not_member", message: "no", ref: socket().last().ref });
    await assert.rejects(notMember, (e: SwitchboardError) => e.code === "not_member");
    const cut = client.leave("lobby");
    socket().serverClose(1006);
    await cut;
  });

  test("publishes in one turn share one ping fence; the pong resolves those without an error", async () => {
    const { client, socket } = await connected();
    const a = client.publish("lobby", "chat", { n: 1 });
    const b = client.publish("other", "chat", { n: 2 });
    await settle();
    const [p1, p2] = socket().sentOf("publish");
    const fences = socket().sentOf("ping").filter((p) => (p.ref as number) > (p2?.ref as number));
    assert.equal(fences.length, 1);
    assert.deepEqual(p1, { type: "publish", room: "lobby", event: "chat", data: { n: 1 }, ref: p1?.ref });
    socket().receive({ type: "error", code: "not_member", message: "no", ref: p2?.ref });
    socket().receive({ type: "pong", ref: fences[0]?.ref });
    await a;
    await assert.rejects(b, (e: SwitchboardError) => e.code === "not_member");
  });

  test("a rate_limited error without ref rejects the publishes still waiting for their fence", async () => {
    const { client, socket } = await connected();
    const errors: string[] = [];
    client.on("error", (e) => errors.push(e.code));
    const publishing = client.publish("lobby", "chat");
    socket().receive({ type: "error", code: "rate_limited", message: "slow down" });
    await assert.rejects(publishing, (e: SwitchboardError) => e.code === "rate_limited");
    assert.deepEqual(errors, ["rate_limited"]);
  });

  test("publish and send need a connection; a publish cut by a disconnect rejects with disconnected", async () => {
    const { client, socket } = setup({});
    await assert.rejects(client.publish("lobby", "chat"), (e: SwitchboardError) => e.code === "not_connected");
    void client.connect();
    await settle();
    socket().receive(welcome());
    const publishing = client.publish("lobby", "chat");
    socket().serverClose(1006);
    await assert.rejects(publishing, (e: SwitchboardError) => e.code === "disconnected");
  });

  test("send waits for a reply frame by ref, or with awaitReply false goes without ref and waits for a ping", async () => {
    const { client, socket } = await connected();
    const asking = client.send("user_message", { text: "hi" });
    const frame = socket().last();
    assert.deepEqual(frame, { type: "user_message", data: { text: "hi" }, ref: frame.ref });
    socket().receive({ type: "reply", data: { answer: 42 }, ref: frame.ref });
    assert.deepEqual(await asking, { answer: 42 });

    const sentBefore = socket().sent.length;
    const fireAndForget = client.send("user_message", null, { awaitReply: false });
    await settle();
    const [forgotten, fence] = socket().sent.slice(sentBefore);
    assert.deepEqual(forgotten, { type: "user_message", data: null }, "no ref: the server sends no answer back");
    assert.equal(fence?.type, "ping");
    socket().receive({ type: "pong", ref: fence?.ref });
    assert.equal(await fireAndForget, undefined);

    const unknown = client.send("dance");
    socket().receive({ type: "error", code: "unknown_type", message: "?", ref: socket().last().ref });
    await assert.rejects(unknown, (e: SwitchboardError) => e.code === "unknown_type");
    await assert.rejects(client.send("join"), (e: SwitchboardError) => e.code === "invalid_frame");
  });

  test("send rejects with the application's own code, and backend_unavailable, carrying the message", async () => {
    const { client, socket } = await connected();
    const declined = client.send("user_message", { text: "again" });
    socket().receive({ type: "error", code: "quota_exceeded", message: "later", ref: socket().last().ref });
    await assert.rejects(declined, (e: unknown) => e instanceof SwitchboardError && e.code === "quota_exceeded" && e.message === "later");
    const unavailable = client.send("user_message", { text: "anyone?" });
    socket().receive({ type: "error", code: "backend_unavailable", message: "the backend did not take it", ref: socket().last().ref });
    await assert.rejects(unavailable, (e: SwitchboardError) => e.code === "backend_unavailable");
  });

  test("every request times out after requestTimeoutMs, or its own timeoutMs", async () => {
    const { client, timers } = await connected({ requestTimeoutMs: 500 });
    const join = client.join("lobby");
    const ping = client.ping({ timeoutMs: 100 });
    timers.advance(100);
    await assert.rejects(ping, (e: SwitchboardError) => e.code === "timeout");
    timers.advance(400);
    await assert.rejects(join, (e: SwitchboardError) => e.code === "timeout");
  });

  test("a bind pending at a disconnect resolves at the next welcome, which carries the thread", async () => {
    const { client, socket, timers } = await connected();
    const binding = client.bind("t-2");
    socket().serverClose(1006);
    timers.advance(60_000);
    await settle();
    assert.equal(socket().query.get("thread"), "t-2");
    socket().receive(welcome("alice", { thread: "t-2" }));
    await binding;
  });

  test("rooms the application joined the connection to are joined again after a reconnect", async () => {
    const { socket, timers } = await connected();
    socket().receive({ type: "joined", room: "team", stream: "room:team", epoch: 1, seq: 0 });
    socket().serverClose(4008);
    timers.advance(0);
    await settle();
    socket().receive(welcome());
    assert.equal(socket().last().room, "team");
  });

  test("a refresh frame calls the token provider, sends the fresh token and emits its refreshed answer", async () => {
    let n = 0;
    const { client, socket } = await connected({ token: async () => `token-${++n}` });
    const refreshed: unknown[] = [];
    client.on("refreshed", (r) => refreshed.push(r.expires_in));
    socket().receive({ type: "refresh", expires_in: 60 });
    await settle();
    const sent = socket().last();
    assert.equal(sent.type, "refresh");
    assert.equal(sent.token, "token-2");
    assert.equal(typeof sent.ref, "number");
    socket().receive({ type: "refreshed", expires_in: 3600, ref: sent.ref });
    assert.deepEqual(refreshed, [3600]);
  });

  test("a refused fresh token is an error event naming the reason, and the connection stays", async () => {
    const { client, socket } = await connected({ token: async () => "stale" });
    const errors: string[] = [];
    client.on("error", (e) => errors.push(`${e.code}:${e.message}`));
    socket().receive({ type: "refresh", expires_in: 10 });
    await settle();
    const ref = socket().last().ref;
    socket().receive({ type: "error", code: "invalid_token", reason: "expired", message: "the fresh token was refused", ref });
    assert.deepEqual(errors, ["invalid_token:the fresh token was refused (expired)"]);
    assert.equal(client.state, "connected");
  });

  test("a room left because a fresh token no longer allows it is not joined again after a reconnect", async () => {
    const { client, socket, timers } = await connected();
    const joining = client.join("lobby");
    await settle();
    socket().receive({ type: "joined", room: "lobby", stream: "room:lobby", epoch: 1, seq: 0, ref: socket().last().ref });
    await joining;
    socket().receive({ type: "left", room: "lobby", reason: "forbidden" });
    socket().serverClose(4005);
    timers.advance(0);
    await settle();
    socket().receive(welcome());
    await settle();
    const rejoins = socket().sent.filter((f) => JSON.stringify(f).includes("lobby"));
    assert.deepEqual(rejoins, []);
  });
});

describe("events", () => {
  test("messages, agent frames and assembled runs are emitted, typed per event", async () => {
    const { client, socket } = await connected();
    const seen: string[] = [];
    client.on("message", (m) => seen.push(`message:${m.event}`));
    client.on("agent", (a) => seen.push(`agent:${a.type}`));
    client.on("run", (r) => seen.push(`run:${r.status}`));
    socket().receive(message("user:alice", 1));
    const base = { run: "r1", agent: "helper", stream: "user:alice", epoch: 1 };
    socket().receive({ ...base, type: "agent_started", event: "agent_started", seq: 2, data: null });
    socket().receive({ ...base, type: "agent_completed", event: "agent_completed", seq: 3, result: "ok" });
    socket().receive({ ...base, type: "agent_completed", event: "agent_completed", seq: 3, result: "ok" });
    assert.deepEqual(seen, ["message:chat", "agent:agent_started", "run:running", "agent:agent_completed", "run:completed", "agent:agent_completed"]);
    assert.deepEqual(client.position("user:alice"), { epoch: 1, seq: 3 });
  });
});
