/**
 * Token lifetimes against the real server (PROTOCOL.md §2 and §3 "refresh", §5 4005): the
 * server asks for a fresh token one second before `exp` (`auth.refresh_ahead_secs = 1`) and
 * closes at `exp` (`auth.leeway_secs = 0`) without one. The client answers from its token
 * provider; after a 4005 it reconnects at once with a token from the provider.
 */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { SwitchboardClient } from "../../src/index.js";
import { TestServer, token } from "../support/server.js";
import { Recorder, next } from "../support/wait.js";

const SETTINGS = "[auth]\nrefresh_ahead_secs = 1\nleeway_secs = 0\n";

/** A client of `user` whose token provider hands out `tokens` in turn (the last one repeated). */
function client(server: TestServer, tokens: readonly (() => string)[]): SwitchboardClient {
  let calls = 0;
  return new SwitchboardClient({
    url: server.ws,
    token: async () => tokens[Math.min(calls++, tokens.length - 1)]!(),
    WebSocket,
    backoff: { initialMs: 50, maxMs: 200 },
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("token refresh", () => {
  test("a client whose token expires answers refresh and stays connected past the old expiry", async () => {
    const server = await TestServer.start({ settings: SETTINGS });
    try {
      const alice = client(server, [() => token("alice", undefined, undefined, 3), () => token("alice")]);
      const attempts = new Recorder<number>(alice, "connecting", (e: { attempt: number }) => e.attempt);
      const refreshed = next(alice, "refreshed");
      await alice.connect();
      const answer = await refreshed;
      assert.ok(answer.expires_in !== undefined && answer.expires_in > 500, JSON.stringify(answer));
      await sleep(3500);
      await alice.ping();
      assert.equal(alice.state, "connected");
      assert.deepEqual(attempts.seen, [1], "never reconnected");
      alice.close();
    } finally {
      await server.stop();
    }
  });

  test("a refused fresh token leaves the connection to its expiry: 4005, then a reconnect at once with a fresh token", async () => {
    const server = await TestServer.start({ settings: SETTINGS });
    try {
      const bob = client(server, [
        () => token("bob", undefined, undefined, 3),
        () => token("bob", undefined, "not-the-servers-secret-at-all-xx"),
        () => token("bob"),
      ]);
      const refused = next(bob, "error");
      const closed = next(bob, "disconnected");
      const connects = new Recorder<number>(bob, "connected", () => 1);
      await bob.connect();
      const error = await refused;
      assert.equal(error.code, "invalid_token");
      assert.match(error.message, /bad_signature/);
      const event = await closed;
      assert.deepEqual([event.code, event.label, event.reconnect, event.delayMs], [4005, "token_expired", true, 0]);
      await connects.until((seen) => seen.length === 2);
      await bob.ping();
      assert.equal((await server.connections("bob")).length, 1);
      bob.close();
    } finally {
      await server.stop();
    }
  });
});
