/** Agent runs against the real server: live, caught up by a late joiner, and across a cut. */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { SwitchboardClient, type RunView } from "../../src/index.js";
import { serverBehindProxy } from "../support/behind-proxy.js";
import { testClient } from "../support/client.js";
import { next } from "../support/wait.js";

/** What a test compares of a run. */
function summary(run: RunView | undefined) {
  assert.ok(run, "the run is known");
  return {
    status: run.status,
    started: run.started,
    startData: run.startData,
    thinking: run.thinking,
    tools: run.tools.map((t) => [t.tool, t.callId, t.status, t.input, t.output]),
    ending: run.ending,
  };
}

const expected = {
  status: "completed",
  started: true,
  startData: { prompt: "weather?" },
  thinking: "comparing",
  tools: [
    ["search", null, "completed", { q: "weather" }, ["sunny"]],
    ["fetch", "c-1", "completed", "https://example.test", { ok: true }],
  ],
  ending: { kind: "completed", result: "sunny" },
};

describe("agent runs", () => {
  const net = serverBehindProxy();

  const steps = (user: string, run: string): (() => Promise<unknown>)[] => [
    () => net.server.runEvent(user, run, { event: "agent_started", agent: "helper", thread: "t-1", data: { prompt: "weather?" } }),
    () => net.server.runEvent(user, run, { event: "agent_thinking", thought: "looking it up" }),
    () => net.server.runEvent(user, run, { event: "tool_executing", tool: "search", input: { q: "weather" } }),
    () => net.server.runEvent(user, run, { event: "tool_completed", tool: "search", output: ["sunny"] }),
    () => net.server.runEvent(user, run, { event: "tool_executing", tool: "fetch", call_id: "c-1", input: "https://example.test" }),
    () => net.server.runEvent(user, run, { event: "agent_thinking", thought: "comparing" }),
    () => net.server.runEvent(user, run, { event: "tool_completed", tool: "fetch", call_id: "c-1", output: { ok: true } }),
    () => net.server.runEvent(user, run, { event: "agent_completed", result: "sunny" }),
  ];

  const client = (url: string, user: string, thread?: string): SwitchboardClient =>
    testClient(url, user, { thread: thread ?? null });

  test("a run is assembled live, and a client that binds mid-run catches up to the same run", async () => {
    const live = client(net.server.ws, "alice", "t-1");
    await live.connect();
    const late = client(net.server.ws, "alice");
    await late.connect();
    const run = steps("alice", "r-live");
    for (const step of run.slice(0, 5)) await step();
    const caughtUp = next(late, "run", (r) => r.run === "r-live" && r.tools.length === 2);
    await late.bind("t-1");
    await caughtUp;
    for (const step of run.slice(5)) await step();
    await Promise.all([live.ping(), late.ping()]);
    assert.deepEqual(summary(live.runs.get("r-live")), expected);
    assert.deepEqual(summary(late.runs.get("r-live")), expected);
    live.close();
    late.close();
  });

  test("a client that connects mid-run without a position receives the run so far, then the rest", async () => {
    const run = steps("bob", "r-join");
    for (const step of run.slice(0, 4)) await step();
    const late = client(net.server.ws, "bob", "t-1");
    await late.connect();
    for (const step of run.slice(4)) await step();
    await late.ping();
    assert.deepEqual(summary(late.runs.get("r-join")), expected);
    late.close();
  });

  test("a run cut midway resumes: the frames sent while away are applied once, in order", async () => {
    const carol = client(net.proxy.ws, "carol", "t-1");
    await carol.connect();
    const run = steps("carol", "r-cut");
    for (const step of run.slice(0, 3)) await step();
    await carol.ping();
    const disconnected = next(carol, "disconnected");
    net.proxy.cut();
    await disconnected;
    for (const step of run.slice(3)) await step();
    const connected = next(carol, "connected");
    net.proxy.unblock();
    assert.equal((await connected).resumed, true);
    await carol.ping();
    assert.deepEqual(summary(carol.runs.get("r-cut")), expected);
    carol.close();
  });
});
