/**
 * Resume against the real server: the socket is cut by a proxy (no close frame), messages are
 * published through the backend API meanwhile, and the client must receive each exactly once,
 * in order — or an explicit gap when history no longer holds them.
 */

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { SwitchboardClient, type GapFrame, type MessageFrame } from "../../src/index.js";
import { serverBehindProxy } from "../support/behind-proxy.js";
import { testClient } from "../support/client.js";
import { CutProxy } from "../support/proxy.js";
import { TestServer } from "../support/server.js";
import { Recorder, next } from "../support/wait.js";

/** `stream:seq:data` of each message, to compare sequences. */
function messages(c: SwitchboardClient): Recorder<string> {
  return new Recorder<string>(c, "message", (m: MessageFrame) => `${m.stream}:${m.seq}:${JSON.stringify(m.data)}`);
}

/** Cut the client's socket and wait until it knows. */
async function cut(proxy: CutProxy, c: SwitchboardClient): Promise<void> {
  const disconnected = next(c, "disconnected");
  proxy.cut();
  const event = await disconnected;
  assert.equal(event.code, 1006, "no close frame: the socket failed");
  assert.equal(event.reconnect, true);
}

/** Let the client back in and wait until it has rejoined `room` and read everything queued before a ping. */
async function reconnect(proxy: CutProxy, c: SwitchboardClient, room: string): Promise<void> {
  const connected = next(c, "connected");
  const rejoined = next(c, "joined", (j) => j.room === room);
  proxy.unblock();
  assert.equal((await connected).resumed, true, "the user-stream position was passed at connect");
  await rejoined;
  await c.ping(); // a fence: every frame queued before the pong has arrived
}

describe("resume after the socket is cut", () => {
  const net = serverBehindProxy();

  test("messages published while disconnected arrive once, in order, on the user stream and in rooms", async () => {
    const alice = testClient(net.proxy.ws, "alice");
    const seen = messages(alice);
    await alice.connect();
    await alice.join("lobby");
    await net.server.publish({ room: "lobby" }, "chat", "before-room");
    await net.server.publish({ user: "alice" }, "note", "before-user");
    await seen.until((s) => s.length === 2);

    await cut(net.proxy, alice);
    for (let i = 1; i <= 5; i++) {
      await net.server.publish({ room: "lobby" }, "chat", `room-${i}`);
      await net.server.publish({ user: "alice" }, "note", `user-${i}`);
    }
    await reconnect(net.proxy, alice, "lobby");

    const user = seen.seen.filter((m) => m.startsWith("user:"));
    const room = seen.seen.filter((m) => m.startsWith("room:"));
    assert.deepEqual(user, [1, 2, 3, 4, 5, 6].map((seq) => `user:alice:${seq}:"${seq === 1 ? "before-user" : `user-${seq - 1}`}"`));
    assert.deepEqual(room, [1, 2, 3, 4, 5, 6].map((seq) => `room:lobby:${seq}:"${seq === 1 ? "before-room" : `room-${seq - 1}`}"`));
    assert.deepEqual(alice.position("user:alice")?.seq, 6);
    alice.close();
  });

  test("a room joined but silent before the cut still replays what was published while away", async () => {
    // Bob's other connection (on the same shard as every connection of bob) stays in the
    // room, so the room's stream lives on while the cut one is away (PROTOCOL.md §6).
    const stays = testClient(net.server.ws, "bob");
    await stays.connect();
    await stays.join("quiet");
    const bob = testClient(net.proxy.ws, "bob");
    const seen = messages(bob);
    await bob.connect();
    await bob.join("quiet");
    await cut(net.proxy, bob);
    await net.server.publish({ room: "quiet" }, "chat", "while-away");
    await reconnect(net.proxy, bob, "quiet");
    assert.deepEqual(seen.seen, ['room:quiet:1:"while-away"']);
    bob.close();
    stays.close();
  });
});

describe("a gap when history no longer reaches back", () => {
  let server: TestServer;
  let proxy: CutProxy;

  before(async () => {
    server = await TestServer.start({ settings: "[history]\nmax_messages = 3\n" });
    proxy = await CutProxy.start(server.address);
  });
  after(async () => {
    await proxy.stop();
    await server.stop();
  });

  test("the missed range is a gap event per stream, then the messages history still holds, once", async () => {
    const carol = testClient(proxy.ws, "carol");
    const seen = messages(carol);
    const gaps = new Recorder<GapFrame>(carol, "gap");
    await carol.connect();
    await carol.join("busy");
    await server.publish({ room: "busy" }, "chat", 1);
    await server.publish({ user: "carol" }, "note", 1);
    await seen.until((s) => s.length === 2);

    await cut(proxy, carol);
    for (let i = 2; i <= 11; i++) {
      await server.publish({ room: "busy" }, "chat", i);
      await server.publish({ user: "carol" }, "note", i);
    }
    await reconnect(proxy, carol, "busy");

    const byStream = (stream: string) => gaps.seen.filter((g) => g.stream === stream).map(({ from, to, reason }) => ({ from, to, reason }));
    assert.deepEqual(byStream("user:carol"), [{ from: 2, to: 8, reason: "history" }]);
    assert.deepEqual(byStream("room:busy"), [{ from: 2, to: 8, reason: "history" }]);
    const after = seen.seen.slice(2);
    assert.deepEqual(after.filter((m) => m.startsWith("user:")), ["user:carol:9:9", "user:carol:10:10", "user:carol:11:11"]);
    assert.deepEqual(after.filter((m) => m.startsWith("room:")), ["room:busy:9:9", "room:busy:10:10", "room:busy:11:11"]);
    carol.close();
  });
});

describe("a server restart", () => {
  test("1001 at shutdown: the client backs off, reconnects to the new process and is told of the new epoch", async () => {
    let server = await TestServer.start();
    const dave = testClient(server.ws, "dave");
    const gaps = new Recorder<GapFrame>(dave, "gap");
    const seen = messages(dave);
    await dave.connect();
    await server.publish({ user: "dave" }, "note", "first");
    await seen.until((s) => s.length === 1);
    const epoch = dave.position("user:dave")?.epoch;

    const closed = next(dave, "disconnected");
    const stopping = server.stop();
    const event = await closed;
    assert.deepEqual([event.code, event.label, event.reconnect], [1001, "shutdown", true]);
    await stopping;

    const connected = next(dave, "connected");
    server = await TestServer.start({ listen: server.address });
    try {
      assert.equal((await connected).resumed, true);
      await gaps.until((g) => g.some((x) => x.stream === "user:dave"));
      const gap = gaps.seen.find((g) => g.stream === "user:dave");
      assert.equal(gap?.reason, "epoch");
      assert.notEqual(gap?.epoch, epoch);
      await server.publish({ user: "dave" }, "note", "second");
      await seen.until((s) => s.length === 2);
      assert.equal(dave.position("user:dave")?.epoch, gap?.epoch);
    } finally {
      dave.close();
      await server.stop();
    }
  });
});
