import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { MemoryStore, SwitchboardClient, sseUrl, type ClientOptions } from "../../src/index.js";
import { ManualTimers, fakeWebSocket, settle, welcome } from "../support/fake.js";

/** A client on a scripted socket, connected as `alice` unless told otherwise. */
async function start(options: Partial<ClientOptions> = {}) {
  const timers = new ManualTimers();
  const { WebSocket, sockets } = fakeWebSocket();
  const client = new SwitchboardClient({ url: "ws://switchboard.test/ws", token: "t0", WebSocket, timers, heartbeat: false, ...options });
  const socket = () => {
    const s = sockets[sockets.length - 1];
    if (s === undefined) throw new Error("no socket");
    return s;
  };
  void client.connect();
  await settle();
  return { client, sockets, socket, timers };
}

/** A message on alice's user stream at `seq`. */
function message(seq: number): object {
  return { type: "message", stream: "user:alice", epoch: 1, seq, event: `m${seq}`, data: seq };
}

describe("several frames per WebSocket message (batch=1)", () => {
  test("the WebSocket handshake asks for batching unless turned off", async () => {
    assert.equal((await start()).socket().query.get("batch"), "1");
    assert.equal((await start({ batch: false })).socket().query.get("batch"), null);
  });

  test("the Server-Sent Events URL leaves batch out: its events carry one frame each", () => {
    const url = sseUrl("ws://switchboard.test/ws?token=t&batch=1&resume=1:2");
    assert.equal(url.toString(), "http://switchboard.test/sse?token=t&resume=1%3A2");
  });

  test("an array's frames are handled in order exactly as if each had come alone", async () => {
    const { client, socket } = await start();
    const seen: string[] = [];
    client.on("connected", ({ welcome }) => seen.push(`connected:${welcome.user}`));
    client.on("message", (m) => seen.push(`message:${m.event}`));
    socket().receive([welcome("alice"), message(1), message(2)]);
    socket().receive(message(3));
    socket().receive([message(4), message(5)]);
    assert.deepEqual(seen, ["connected:alice", "message:m1", "message:m2", "message:m3", "message:m4", "message:m5"]);
    assert.deepEqual(client.position("user:alice"), { epoch: 1, seq: 5 });
    // A request answered inside a batch resolves as well.
    const joined = client.join("lobby");
    const join = socket().sent.at(-1) as { ref: number };
    socket().receive([message(6), { type: "joined", room: "lobby", ref: join.ref, stream: "room:lobby", epoch: 1, seq: 0 }]);
    await joined;
    assert.deepEqual(client.position("user:alice"), { epoch: 1, seq: 6 });
  });

  test("elements that are not frames are reported one by one and the others still handled; an empty array is reported", async () => {
    const { client, socket } = await start();
    socket().receive(welcome("alice"));
    const seen: string[] = [];
    client.on("error", (e) => seen.push(e.code));
    client.on("message", (m) => seen.push(`message:${m.event}`));
    socket().receiveText(JSON.stringify([message(1), 7, { no: "type" }, message(2)]));
    socket().receiveText("[]");
    assert.deepEqual(seen, ["message:m1", "bad_frame", "bad_frame", "message:m2", "bad_frame"]);
    assert.equal(client.state, "connected");
  });

  test("frames after one that replaced the socket are not handled: they belong to the old connection", async () => {
    const store = new MemoryStore();
    store.save({ user: "bob", streams: { "user:bob": { epoch: 1, seq: 30 } } });
    const { client, sockets, socket, timers } = await start({ store });
    const seen: string[] = [];
    client.on("message", (m) => seen.push(`message:${m.event}`));
    // The stored positions are bob's: a welcome for alice restarts the connection without them.
    socket().receive([welcome("alice"), message(31)]);
    timers.advance(0);
    await settle();
    assert.equal(sockets.length, 2);
    assert.deepEqual(seen, []);
    socket().receive([welcome("alice"), message(1)]);
    assert.deepEqual(seen, ["message:m1"]);
  });
});
