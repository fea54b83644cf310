/** Requests against the real server: answers matched by ref, errors carrying the server's code. */

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { SwitchboardClient, SwitchboardError, type MessageFrame } from "../../src/index.js";
import { testClient } from "../support/client.js";
import { TestServer, token } from "../support/server.js";
import { Recorder } from "../support/wait.js";

describe("requests", () => {
  let server: TestServer;
  before(async () => {
    server = await TestServer.start();
  });
  after(async () => {
    await server.stop();
  });

  const client = (user: string, rooms?: string[]): SwitchboardClient =>
    testClient(server.ws, user, { token: async () => token(user, rooms) });

  test("publish resolves once the server read it, and the other members receive it with from", async () => {
    const alice = client("alice");
    const bob = client("bob");
    await Promise.all([alice.connect(), bob.connect()]);
    await Promise.all([alice.join("lobby"), bob.join("lobby")]);
    const received = new Recorder<MessageFrame>(bob, "message");
    await Promise.all([alice.publish("lobby", "chat", { text: "hi" }), alice.publish("lobby", "chat", { text: "again" })]);
    await received.until((r) => r.length === 2);
    assert.deepEqual(
      received.seen.map((m) => [m.room, m.from, m.event, m.data]),
      [
        ["lobby", "alice", "chat", { text: "hi" }],
        ["lobby", "alice", "chat", { text: "again" }],
      ],
    );
    alice.close();
    bob.close();
  });

  test("refusals reject with the server's code: forbidden, not_member, unknown_type", async () => {
    const carol = client("carol", ["team-*"]);
    await carol.connect();
    await assert.rejects(carol.join("lobby"), (e: SwitchboardError) => e.code === "forbidden");
    assert.equal((await carol.join("team-1")).room, "team-1");
    await assert.rejects(carol.publish("elsewhere", "chat"), (e: SwitchboardError) => e.code === "not_member");
    await assert.rejects(carol.leave("elsewhere"), (e: SwitchboardError) => e.code === "not_member");
    // The server accepts no application frame type by default.
    await assert.rejects(carol.send("user_message", { text: "?" }), (e: SwitchboardError) => e.code === "unknown_type");
    await carol.leave("team-1");
    assert.ok((await carol.ping()) >= 0);
    carol.close();
  });

  test("bind answers bound, and the thread is passed at the next connect", async () => {
    const dave = client("dave");
    const welcome = await dave.connect();
    assert.equal(welcome.thread, undefined);
    await dave.bind("t-5");
    const [conn] = await server.connections("dave");
    const presence = (await server.api("GET", "/users/dave")) as { connections: { id: string; thread: string }[] };
    assert.equal(presence.connections.find((c) => c.id === conn)?.thread, "t-5");
    dave.close();
    const again = await dave.connect();
    assert.equal(again.thread, "t-5");
    dave.close();
  });
});
