/**
 * Application frames against the real server and a real backend: `send` resolves with the
 * backend's reply, rejects with the backend's own code or with `backend_unavailable` when the
 * backend is gone, and the fire-and-forget variant gets no answer back.
 */

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { SwitchboardClient, SwitchboardError, type ServerFrame, type UnknownFrame } from "../../src/index.js";
import { Backend, WEBHOOK_SECRET, type FrameEvent } from "../support/backend.js";
import { testClient } from "../support/client.js";
import { TestServer } from "../support/server.js";
import { next, Recorder } from "../support/wait.js";

/** The backend's rule: `{"decline": code}` is refused with that code, anything else echoed. */
function answer(frame: FrameEvent): { status: number; body?: unknown } {
  const data = frame.data as { decline?: string } | null;
  if (typeof data?.decline === "string") {
    return { status: 422, body: { error: { code: data.decline, message: `declined: ${data.decline}` } } };
  }
  return { status: 200, body: { reply: { echo: frame.data, user: frame.user, type: frame.type } } };
}

describe("application frames and the backend's answers", () => {
  let backend: Backend;
  let server: TestServer;
  before(async () => {
    backend = await Backend.start(answer);
    server = await TestServer.start({
      settings: [
        "[frames]",
        'types = ["user_message"]',
        "[webhook]",
        `url = "${backend.url}"`,
        `secret = "${WEBHOOK_SECRET}"`,
        // Few, short retries: the backend-down case answers within a hang guard.
        "max_attempts = 2",
        "backoff_ms = 10",
        "max_backoff_ms = 20",
        "max_age_ms = 2000",
        "timeout_ms = 1000",
      ].join("\n"),
    });
  });
  after(async () => {
    await server.stop();
    await backend.stop();
  });

  const client = (user: string): SwitchboardClient => testClient(server.ws, user);

  test("send resolves with the backend's reply, sent to the sending connection only", async () => {
    const sender = client("alice");
    const other = client("alice");
    await Promise.all([sender.connect(), other.connect()]);
    const otherReplies = new Recorder<ServerFrame | UnknownFrame>(other, "frame", (f: ServerFrame | UnknownFrame) =>
      f.type === "reply" ? f : undefined,
    );
    const reply = await sender.send("user_message", { text: "hi" });
    assert.deepEqual(reply, { echo: { text: "hi" }, user: "alice", type: "user_message" });
    // The other connection's own request is answered after the first: by then the first
    // reply would have reached it too, had it been sent there.
    assert.deepEqual(await other.send("user_message", { text: "mine" }), { echo: { text: "mine" }, user: "alice", type: "user_message" });
    assert.equal(otherReplies.seen.length, 1, "only its own reply");
    assert.equal(backend.unsigned, 0, "every delivery verified");
    assert.deepEqual(
      backend.frames.slice(-2).map((f) => [f.user, f.type, f.data]),
      [
        ["alice", "user_message", { text: "hi" }],
        ["alice", "user_message", { text: "mine" }],
      ],
    );
    sender.close();
    other.close();
  });

  test("a backend's 4xx with a code rejects with that code", async () => {
    const bob = client("bob");
    await bob.connect();
    await assert.rejects(bob.send("user_message", { decline: "quota_exceeded" }), (e: unknown) => {
      assert.ok(e instanceof SwitchboardError);
      assert.equal(e.code, "quota_exceeded");
      assert.match(e.message, /declined: quota_exceeded/);
      return true;
    });
    // A code outside [a-z0-9_]{1,64} is not passed on: the server's generic code instead.
    await assert.rejects(bob.send("user_message", { decline: "Not-A-Code" }), (e: SwitchboardError) => e.code === "backend_error");
    // The connection is fine: declines are not strikes.
    assert.deepEqual(await bob.send("user_message", 7), { echo: 7, user: "bob", type: "user_message" });
    bob.close();
  });

  test("fire and forget: the frame reaches the backend, and no answer comes back", async () => {
    const carol = client("carol");
    await carol.connect();
    const replies = new Recorder<ServerFrame | UnknownFrame>(carol, "frame", (f: ServerFrame | UnknownFrame) =>
      f.type === "reply" || f.type === "error" ? f : undefined,
    );
    assert.equal(await carol.send("user_message", { text: "fyi" }, { awaitReply: false }), undefined);
    // A user's frames reach the backend in order, one at a time: once the next one is answered,
    // the first was answered too — and its reply, had it a `ref`, would have come first.
    await carol.send("user_message", { text: "and then" });
    assert.deepEqual(
      backend.frames.filter((f) => f.user === "carol").map((f) => f.data),
      [{ text: "fyi" }, { text: "and then" }],
    );
    assert.equal(replies.seen.length, 1, "only the awaited reply");
    carol.close();
  });

  test("fire and forget: a frame the backend declines comes back as an error event with its code", async () => {
    const erin = client("erin");
    await erin.connect();
    const declined = next(erin, "error");
    assert.equal(await erin.send("user_message", { decline: "not_now" }, { awaitReply: false }), undefined);
    const error = await declined;
    assert.ok(error instanceof SwitchboardError);
    assert.equal(error.code, "not_now");
    erin.close();
  });

  test("the backend is down: send rejects with backend_unavailable", async () => {
    const dave = client("dave");
    await dave.connect();
    await backend.stop();
    await assert.rejects(dave.send("user_message", { text: "anyone?" }), (e: unknown) => {
      assert.ok(e instanceof SwitchboardError);
      assert.equal(e.code, "backend_unavailable");
      return true;
    });
    assert.ok((await dave.ping()) >= 0, "the connection stays open");
    dave.close();
  });
});
