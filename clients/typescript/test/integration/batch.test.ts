/**
 * Several frames per WebSocket message against the real server: a burst the client missed is
 * replayed to it at reconnect, which the server sends in JSON arrays when the client asks for it
 * (the default); the client hands every frame over once, in order, exactly as a client without
 * batching receives them one message each.
 */

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { type MessageFrame, type WebSocketConstructor } from "../../src/index.js";
import { testClient } from "../support/client.js";
import { TestServer } from "../support/server.js";
import { Recorder } from "../support/wait.js";

/** `ws`, recording the text of every message the server sends. */
function recording(messages: string[]): WebSocketConstructor {
  return class extends WebSocket {
    constructor(url: string) {
      super(url);
      this.addEventListener("message", (event) => messages.push(String(event.data)));
    }
  };
}

/** `user` connects, sees one message, leaves; `burst` messages are published to it; it comes back. */
async function burstWhileAway(server: TestServer, user: string, batch: boolean, burst: number) {
  const raw: string[] = [];
  const client = testClient(server.ws, user, { WebSocket: recording(raw), batch });
  const seen = new Recorder<string>(client, "message", (m: MessageFrame) => `${m.seq}:${m.event}:${JSON.stringify(m.data)}`);
  await client.connect();
  await server.publish({ user }, "before", 0);
  await seen.until((s) => s.length === 1);
  client.close();
  for (let n = 1; n <= burst; n++) await server.publish({ user }, "burst", { n, text: "0123456789abcdef".repeat(4) });
  raw.length = 0;
  await client.connect();
  await seen.until((s) => s.length === 1 + burst);
  await client.ping(); // a fence: nothing more was queued before its pong
  client.close();
  return { seen: seen.seen, raw };
}

describe("frames batched per WebSocket message", () => {
  let server: TestServer;

  before(async () => {
    server = await TestServer.start();
  });
  after(async () => {
    await server.stop();
  });

  test("a replayed burst arrives in arrays and every frame is handled once, in order, as without batching", async () => {
    const burst = 300;
    const batched = await burstWhileAway(server, "alice", true, burst);
    const single = await burstWhileAway(server, "bob", false, burst);

    const expected = [`1:before:0`];
    for (let n = 1; n <= burst; n++) expected.push(`${n + 1}:burst:${JSON.stringify({ n, text: "0123456789abcdef".repeat(4) })}`);
    assert.deepEqual(batched.seen, expected);
    assert.deepEqual(single.seen, expected);

    const arrays = batched.raw.filter((m) => m.startsWith("["));
    assert.ok(arrays.length > 0, "some messages held several frames");
    assert.ok(arrays.every((m) => (JSON.parse(m) as unknown[]).length >= 2));
    assert.ok(batched.raw.length < single.raw.length, `${batched.raw.length} messages with batching, ${single.raw.length} without`);
    assert.ok(single.raw.every((m) => m.startsWith("{")), "without batching every message is one object");
  });
});
