import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { SseSocket, SwitchboardClient, sseUrl, type SocketCloseEvent } from "../../src/index.js";
import { FakeSocket, ManualTimers, fakeWebSocket, settle, welcome } from "../support/fake.js";
import { type FakeEventSource, fakeEventSource, fakeFetch } from "../support/fake-sse.js";

const HANDSHAKE = "ws://switchboard.test/ws?token=t0&resume=1%3A5";

function socket() {
  const { EventSource, sources } = fakeEventSource();
  const { fetch, posts } = fakeFetch();
  const sse = new SseSocket(HANDSHAKE, { EventSource, fetch });
  const seen: string[] = [];
  const closes: SocketCloseEvent[] = [];
  sse.addEventListener("open", () => seen.push("open"));
  sse.addEventListener("message", (e) => seen.push(`message:${String(e.data)}`));
  sse.addEventListener("error", () => seen.push("error"));
  sse.addEventListener("close", (e) => closes.push(e));
  const source = sources[0] as FakeEventSource;
  return { sse, source, sources, posts, seen, closes };
}

describe("the event-stream socket", () => {
  test("maps the WebSocket handshake URL to /sse with the same query", () => {
    assert.equal(sseUrl("ws://h:8080/ws?token=a&resume=1%3A2").toString(), "http://h:8080/sse?token=a&resume=1%3A2");
    assert.equal(sseUrl("wss://h/app/ws?token=a&thread=t").toString(), "https://h/app/sse?token=a&thread=t");
  });

  test("opens an EventSource on /sse and hands its events over as WebSocket events", () => {
    const { source, seen } = socket();
    assert.equal(source.url, "http://switchboard.test/sse?token=t0&resume=1%3A5");
    source.open();
    source.receive({ type: "welcome", conn: "0.1.1" });
    assert.deepEqual(seen, ["open", 'message:{"type":"welcome","conn":"0.1.1"}']);
  });

  test("the close event closes with its code and reason and stops the EventSource reconnecting", () => {
    const { source, closes } = socket();
    source.open();
    source.serverClose(4008, "slow_consumer");
    assert.deepEqual(closes, [{ code: 4008, reason: "slow_consumer" }]);
    assert.equal(source.closed, true);
    source.fail(); // the response ends after the close event: nothing more
    assert.equal(closes.length, 1);
  });

  test("a close event whose data cannot be read still closes, as 1006", () => {
    const { source, closes } = socket();
    source.receiveClose("not json");
    assert.deepEqual(closes, [{ code: 1006, reason: "" }]);
    assert.equal(source.closed, true);
  });

  test("a stream that fails without a close event closes with 1006, and the EventSource is closed", () => {
    const { source, closes, seen } = socket();
    source.fail();
    assert.deepEqual(closes, [{ code: 1006, reason: "" }]);
    assert.deepEqual(seen, ["error"]);
    assert.equal(source.closed, true);
  });

  test("frames sent before welcome wait for its conn; frames of one tick go in one NDJSON post with the token", async () => {
    const { sse, source, posts } = socket();
    sse.send(JSON.stringify({ type: "ping", ref: 1 }));
    await settle();
    assert.equal(posts.length, 0, "no conn yet");
    source.receive({ type: "welcome", conn: "0.1.1" });
    sse.send(JSON.stringify({ type: "ping", ref: 2 }));
    await settle();
    assert.equal(posts.length, 1);
    const post = posts[0]!;
    assert.equal(post.url, "http://switchboard.test/sse/0.1.1");
    assert.equal(post.headers.authorization, "Bearer t0");
    assert.deepEqual(post.frames.map((f) => f.ref), [1, 2]);
  });

  test("one post in flight at a time, in order, at most 64 frames each", async () => {
    const { sse, source, posts, closes } = socket();
    source.receive({ type: "welcome", conn: "0.1.1" });
    for (let ref = 1; ref <= 70; ref++) sse.send(JSON.stringify({ type: "ping", ref }));
    await settle();
    assert.equal(posts.length, 1, "the second waits for the first");
    assert.equal(posts[0]!.frames.length, 64);
    sse.send(JSON.stringify({ type: "ping", ref: 71 }));
    posts[0]!.answer(202);
    await settle();
    assert.equal(posts.length, 2);
    assert.deepEqual(posts[1]!.frames.map((f) => f.ref), [65, 66, 67, 68, 69, 70, 71]);
    posts[1]!.answer(202);
    await settle();
    assert.equal(posts.length, 2);
    assert.deepEqual(closes, []);
  });

  for (const [what, outcome] of [
    ["refused with 404", (p: { answer(s: number): void }) => p.answer(404)],
    ["refused with 413", (p: { answer(s: number): void }) => p.answer(413)],
    ["failing on the network", (p: { fail(): void }) => p.fail()],
  ] as const) {
    test(`a post ${what} closes the socket with 1006 and drops what was queued`, async () => {
      const { sse, source, posts, closes, seen } = socket();
      source.receive({ type: "welcome", conn: "0.1.1" });
      sse.send(JSON.stringify({ type: "ping", ref: 1 }));
      await settle();
      sse.send(JSON.stringify({ type: "ping", ref: 2 }));
      outcome(posts[0]! as never);
      await settle();
      assert.equal(closes.length, 1);
      assert.equal(closes[0]!.code, 1006);
      assert.ok(seen.includes("error"));
      assert.equal(source.closed, true);
      assert.equal(posts.length, 1, "nothing posted after the failure");
      assert.throws(() => sse.send("{}"), /closed/);
    });
  }
});

describe("the client over Server-Sent Events", () => {
  function client(transport: "sse" | "auto") {
    const timers = new ManualTimers();
    const { WebSocket, sockets } = fakeWebSocket();
    const { EventSource, sources } = fakeEventSource();
    const { fetch, posts } = fakeFetch();
    const c = new SwitchboardClient({
      url: "ws://switchboard.test/ws",
      token: "t0",
      transport,
      WebSocket,
      EventSource,
      fetch,
      timers,
      random: () => 0.5,
      heartbeat: false,
      requestTimeoutMs: 3_600_000,
      connectTimeoutMs: 3_600_000,
    });
    const transports: string[] = [];
    c.on("transport", (t) => transports.push(t));
    return { client: c, timers, sockets, sources, posts, transports };
  }

  test("transport sse: requests are posted and settled by their ref from the stream", async () => {
    const { client: c, sockets, sources, posts } = client("sse");
    assert.equal(c.transport, "sse");
    const connected = c.connect();
    await settle();
    assert.equal(sockets.length, 0, "no WebSocket");
    const source = sources[0]!;
    source.open();
    source.receive(welcome());
    await connected;
    const joined = c.join("lobby");
    await settle();
    for (const post of posts) post.answer(202);
    await settle();
    for (const post of posts) post.answer(202);
    const join = posts.flatMap((p) => p.frames).find((f) => f.type === "join");
    assert.ok(join !== undefined, "the join was posted");
    assert.equal(posts.at(-1)?.url, "http://switchboard.test/sse/0.1.1");
    source.receive({ type: "joined", room: "lobby", epoch: 1, seq: 0, ref: join.ref });
    assert.equal((await joined).room, "lobby");
  });

  test("transport auto: a WebSocket that fails before it opened switches to SSE for the next attempts, with resume", async () => {
    const { client: c, timers, sockets, sources, transports } = client("auto");
    assert.equal(c.transport, "websocket");
    void c.connect();
    await settle();
    (sockets[0] as FakeSocket).serverClose(1006);
    assert.deepEqual(transports, ["sse"]);
    assert.equal(c.transport, "sse");
    timers.advance(30_000);
    await settle();
    assert.equal(sockets.length, 1, "no second WebSocket");
    const source = sources[0]!;
    source.open();
    source.receive(welcome("alice", { seq: 3 }));
    source.receive({ type: "message", stream: "user:alice", epoch: 1, seq: 4, event: "e", data: 1 });
    source.fail();
    timers.advance(30_000);
    await settle();
    assert.equal(sources.length, 2);
    assert.equal(new URL(sources[1]!.url).searchParams.get("resume"), "1:4", "resumes from its own position");
    assert.deepEqual(transports, ["sse"], "said once");
  });

  test("transport auto: a WebSocket that opened once is not given up when a later one fails", async () => {
    const { client: c, timers, sockets, sources, transports } = client("auto");
    void c.connect();
    await settle();
    const first = sockets[0] as FakeSocket;
    first.open();
    first.receive(welcome());
    await settle();
    first.serverClose(1006);
    timers.advance(30_000);
    await settle();
    (sockets[1] as FakeSocket).serverClose(1006);
    timers.advance(30_000);
    await settle();
    assert.equal(sockets.length, 3);
    assert.equal(sources.length, 0);
    assert.deepEqual(transports, []);
    assert.equal(c.transport, "websocket");
  });

  test("transport sse without an EventSource in the environment is refused at construction", () => {
    assert.throws(
      () => new SwitchboardClient({ url: "ws://h/ws", token: "t", transport: "sse" }),
      /no EventSource in this environment/,
    );
  });
});
