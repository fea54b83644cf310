/**
 * The client over Server-Sent Events against the real server, in Node (the `eventsource`
 * package as its `EventSource`): room messages, resume after the server's stream is dropped,
 * requests settled by `ref` over posts, the close-code policy, and the fallback from a WebSocket
 * whose upgrade a proxy refuses.
 */

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { EventSource } from "eventsource";
import { SwitchboardClient, type ClientOptions, type MessageFrame } from "../../src/index.js";
import { testClient } from "../support/client.js";
import { UpgradeRefusingProxy } from "../support/http-proxy.js";
import { TestServer, token } from "../support/server.js";
import { Recorder, next } from "../support/wait.js";

/** A client over Server-Sent Events. */
const client = (url: string, user: string, options: Partial<ClientOptions> = {}): SwitchboardClient =>
  testClient(url, user, { transport: "sse", EventSource, ...options });

/** `stream:event` of each message, to compare sequences. */
function messages(c: SwitchboardClient): Recorder<string> {
  return new Recorder<string>(c, "message", (m: MessageFrame) => `${m.stream}:${m.event}`);
}

describe("the client over Server-Sent Events", () => {
  let server: TestServer;
  let proxy: UpgradeRefusingProxy;

  before(async () => {
    server = await TestServer.start();
    proxy = await UpgradeRefusingProxy.start(server.address);
  });
  after(async () => {
    await proxy?.stop();
    await server?.stop();
  });

  test("a room message arrives; after the server drops the stream, what was published meanwhile arrives once, in order", async () => {
    const c = client(proxy.ws, "alice");
    const seen = messages(c);
    await c.connect();
    await c.join("lobby");
    await server.publish({ room: "lobby" }, "r1", {});
    await server.publish({ user: "alice" }, "u1", {});
    await seen.until((s) => s.length === 2);

    const disconnected = next(c, "disconnected");
    proxy.cut();
    const event = await disconnected;
    assert.equal(event.code, 1006, "the stream failed without a close event");
    assert.equal(event.reconnect, true);
    // Another connection of alice keeps the user stream delivered, so the page gets the user
    // messages again only by resuming from its position.
    const other = client(server.ws, "alice", { transport: "websocket" });
    await other.connect();
    for (const n of [2, 3]) {
      await server.publish({ room: "lobby" }, `r${n}`, {});
      await server.publish({ user: "alice" }, `u${n}`, {});
    }

    const connected = next(c, "connected");
    const rejoined = next(c, "joined", (j) => j.room === "lobby");
    proxy.unblock();
    assert.equal((await connected).resumed, true, "the user-stream position was passed at connect");
    await rejoined;
    await c.ping(); // a fence: every frame queued before the pong has arrived
    await server.publish({ room: "lobby" }, "after", {});
    await seen.until((s) => s.includes("room:lobby:after"));
    assert.deepEqual(
      seen.seen.filter((m) => m.startsWith("room:")),
      ["room:lobby:r1", "room:lobby:r2", "room:lobby:r3", "room:lobby:after"],
    );
    assert.deepEqual(
      seen.seen.filter((m) => m.startsWith("user:")),
      ["user:alice:u1", "user:alice:u2", "user:alice:u3"],
    );
    assert.equal(c.transport, "sse");
    other.close();
    c.close();
  });

  test("requests made in one tick are posted and each settles by its ref", async () => {
    const c = client(server.ws, "bob", { token: async () => token("bob", ["lobby"]) });
    await c.connect();
    const [joined, , rtt] = await Promise.all([c.join("lobby"), c.publish("lobby", "hello", { n: 1 }), c.ping()]);
    assert.equal(joined.room, "lobby");
    assert.equal(typeof rtt, "number");
    const refused = await c.join("secret").then(
      () => "joined",
      (e: { code?: string }) => e.code,
    );
    assert.equal(refused, "forbidden", "a refusal is settled by its ref too");
    c.close();
  });

  test("a close code that forbids reconnecting stops the client, as on a WebSocket", async () => {
    const c = client(server.ws, "carol");
    await c.connect();
    const disconnected = next(c, "disconnected");
    await server.api("POST", "/users/carol/disconnect");
    const event = await disconnected;
    assert.equal(event.code, 4002);
    assert.equal(event.reconnect, false);
    assert.equal(c.state, "closed");
  });

  test("transport auto: a WebSocket upgrade refused by a proxy falls back to SSE, and the client works over it", async () => {
    const c = client(proxy.ws, "dave", { transport: "auto" });
    const transports: string[] = [];
    c.on("transport", (t) => transports.push(t));
    const seen = messages(c);
    const refusedBefore = proxy.refusedUpgrades;
    await c.connect();
    assert.deepEqual(transports, ["sse"]);
    assert.equal(proxy.refusedUpgrades, refusedBefore + 1, "one WebSocket attempt");
    await c.join("lobby");
    await server.publish({ room: "lobby" }, "through-sse", {});
    await seen.until((s) => s.includes("room:lobby:through-sse"));
    c.close();
  });

  test("transport auto: a server that takes WebSockets keeps the client on them", async () => {
    const c = client(server.ws, "erin", { transport: "auto" });
    const transports: string[] = [];
    c.on("transport", (t) => transports.push(t));
    await c.connect();
    await c.ping();
    assert.equal(c.transport, "websocket");
    assert.deepEqual(transports, []);
    c.close();
  });
});
