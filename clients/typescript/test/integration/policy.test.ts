/**
 * The reconnect policy by close code, against the real server's closes (PROTOCOL.md §5). The
 * drop without a close frame (1006) and the shutdown (1001) are in resume.test.ts.
 */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { SwitchboardClient, type DisconnectedEvent } from "../../src/index.js";
import { testClient } from "../support/client.js";
import { TestServer } from "../support/server.js";
import { Recorder, next } from "../support/wait.js";

const client = (server: TestServer, user: string): SwitchboardClient =>
  testClient(server.ws, user, { backoff: { initialMs: 50, maxMs: 200 } });

describe("close codes from the server", () => {
  test("4002 (the application disconnected the user): no reconnect", async () => {
    const server = await TestServer.start();
    try {
      const alice = client(server, "alice");
      const attempts = new Recorder<number>(alice, "connecting", (e: { attempt: number }) => e.attempt);
      await alice.connect();
      const closed = next(alice, "disconnected");
      await server.api("POST", "/users/alice/disconnect");
      const event = await closed;
      assert.deepEqual([event.code, event.label, event.reconnect, event.delayMs], [4002, "disconnected", false, null]);
      assert.equal(alice.state, "closed");
      // A second user connects and round-trips a ping: the server has seen everything before.
      const bob = client(server, "bob");
      await bob.connect();
      await bob.ping();
      assert.deepEqual(await server.connections("alice"), []);
      assert.deepEqual(attempts.seen, [1]);
      bob.close();
    } finally {
      await server.stop();
    }
  });

  test("4001 (evicted by a newer connection of the same user): the older client does not reconnect", async () => {
    const server = await TestServer.start({
      settings: '[limits]\nmax_connections_per_user = 1\nuser_limit_policy = "evict_oldest"\n',
    });
    try {
      const older = client(server, "alice");
      await older.connect();
      const evicted = next(older, "disconnected");
      const newer = client(server, "alice");
      await newer.connect();
      const event = await evicted;
      assert.deepEqual([event.code, event.label, event.reconnect], [4001, "evicted", false]);
      await newer.ping();
      assert.equal((await server.connections("alice")).length, 1);
      newer.close();
    } finally {
      await server.stop();
    }
  });

  test("4003 (user limit at open): the client backs off and connects once a slot frees", async () => {
    const server = await TestServer.start({
      settings: '[limits]\nmax_connections_per_user = 1\nuser_limit_policy = "reject_new"\n',
    });
    try {
      const first = client(server, "alice");
      await first.connect();
      const second = client(server, "alice");
      const refusals = new Recorder<DisconnectedEvent>(second, "disconnected");
      const connecting = second.connect();
      await refusals.until((r) => r.length >= 1);
      const refused = refusals.seen[0];
      assert.deepEqual([refused?.code, refused?.label, refused?.reconnect], [4003, "user_limit", true]);
      assert.ok((refused?.delayMs ?? -1) >= 0 && (refused?.delayMs ?? Infinity) < 50, "a jittered delay below the first ceiling");
      first.close();
      const welcome = await connecting;
      assert.equal(welcome.user, "alice");
      second.close();
    } finally {
      await server.stop();
    }
  });
});
