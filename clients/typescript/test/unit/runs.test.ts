import { test } from "node:test";
import assert from "node:assert/strict";
import { RunAssembler, type AgentFrame, type RunExtension, type UnknownRunFrame } from "../../src/index.js";

const base = { run: "r1", agent: "helper", thread: "t-1", stream: "user:alice" as const, epoch: 1 };

function frames(): AgentFrame[] {
  return [
    { ...base, seq: 1, type: "agent_started", event: "agent_started", data: { prompt: "p" } },
    { ...base, seq: 2, type: "agent_thinking", event: "agent_thinking", thought: "first" },
    { ...base, seq: 3, type: "tool_executing", event: "tool_executing", tool: "search", call_id: null, input: { q: 1 } },
    { ...base, seq: 4, type: "tool_completed", event: "tool_completed", tool: "search", call_id: null, output: [1] },
    { ...base, seq: 5, type: "tool_executing", event: "tool_executing", tool: "search", call_id: null, input: { q: 2 } },
    { ...base, seq: 6, type: "tool_executing", event: "tool_executing", tool: "fetch", call_id: "c1", input: "url" },
    { ...base, seq: 7, type: "agent_thinking", event: "agent_thinking", thought: "second" },
    { ...base, seq: 8, type: "tool_completed", event: "tool_completed", tool: "fetch", call_id: "c1", output: "page" },
    { ...base, seq: 9, type: "tool_completed", event: "tool_completed", tool: "search", call_id: null, output: [2] },
    { ...base, seq: 10, type: "agent_completed", event: "agent_completed", result: { ok: true } },
  ];
}

function assembled(order: AgentFrame[]) {
  const runs = new RunAssembler();
  for (const frame of order) runs.apply(frame);
  const view = runs.get("r1");
  assert.ok(view);
  return {
    status: view.status,
    started: view.started,
    startData: view.startData,
    thinking: view.thinking,
    tools: view.tools.map((t) => [t.tool, t.callId, t.status, t.input, t.output, t.startedSeq, t.completedSeq]),
    ending: view.ending,
    seq: view.seq,
  };
}

const whole = {
  status: "completed",
  started: true,
  startData: { prompt: "p" },
  thinking: "second",
  tools: [
    ["search", null, "completed", { q: 1 }, [1], 3, 4],
    ["search", null, "completed", { q: 2 }, [2], 5, 9],
    ["fetch", "c1", "completed", "url", "page", 6, 8],
  ],
  ending: { kind: "completed", result: { ok: true } },
  seq: 10,
};

test("a run in order: status, latest thinking, tool calls paired by call id (or tool), the ending", () => {
  assert.deepEqual(assembled(frames()), whole);
});

test("repeated frames change nothing: apply returns undefined for a repeat", () => {
  const runs = new RunAssembler();
  for (const frame of frames()) assert.ok(runs.apply(frame), `seq ${frame.seq} applies`);
  for (const frame of frames()) assert.equal(runs.apply(frame), undefined, `seq ${frame.seq} again`);
  assert.deepEqual(assembled([...frames(), ...frames()]), whole);
});

test("a catch-up that delivers older frames after newer ones assembles the same run", () => {
  const all = frames();
  const reversed = [...all].reverse();
  assert.deepEqual(assembled(reversed), whole);
  // A live tail first, then the catch-up from the start (bind after the run began).
  assert.deepEqual(assembled([...all.slice(6), ...all]), whole);
  // Every rotation.
  for (let i = 0; i < all.length; i++) assert.deepEqual(assembled([...all.slice(i), ...all.slice(0, i)]), whole, `rotation ${i}`);
});

test("a late joiner without the beginning: started is false and a completion without its call is kept", () => {
  const late = frames().slice(3); // from the first tool_completed
  const view = assembled(late);
  assert.equal(view.started, false);
  assert.equal(view.startData, undefined);
  assert.deepEqual(view.tools[0], ["search", null, "completed", undefined, [1], undefined, 4]);
  assert.equal(view.status, "completed");
});

test("coalesced thoughts: an older thought never replaces a newer one", () => {
  const all = frames();
  const view = assembled([all[0]!, all[6]!, all[1]!]);
  assert.equal(view.thinking, "second");
  assert.equal(view.status, "running");
});

test("every ending: failed, cancelled, producer_lost; nothing applies after the first", () => {
  const runs = new RunAssembler();
  const start = (run: string): AgentFrame => ({ ...base, run, seq: 1, type: "agent_started", event: "agent_started", data: null });
  runs.apply(start("a"));
  runs.apply({ ...base, run: "a", seq: 2, type: "agent_failed", event: "agent_failed", error: "boom" });
  runs.apply(start("b"));
  runs.apply({ ...base, run: "b", seq: 3, type: "agent_cancelled", event: "agent_cancelled", reason: null });
  runs.apply(start("c"));
  runs.apply({ ...base, run: "c", seq: 4, type: "producer_lost" });
  assert.equal(runs.apply({ ...base, run: "c", seq: 5, type: "agent_completed", event: "agent_completed", result: 1 }), undefined);
  assert.deepEqual(
    runs.all().map((r) => [r.run, r.status, r.ending]),
    [
      ["a", "failed", { kind: "failed", error: "boom" }],
      ["b", "cancelled", { kind: "cancelled", reason: null }],
      ["c", "lost", { kind: "lost" }],
    ],
  );
});

test("ended runs beyond maxEndedRuns are dropped oldest first; runs in progress are kept", () => {
  const runs = new RunAssembler({ maxEndedRuns: 2 });
  runs.apply({ ...base, run: "live", seq: 1, type: "agent_started", event: "agent_started", data: null });
  for (const [i, run] of ["a", "b", "c"].entries()) {
    runs.apply({ ...base, run, seq: 10 + i, type: "producer_lost" });
  }
  assert.deepEqual(runs.all().map((r) => r.run).sort(), ["b", "c", "live"]);
});

test("the extension point: frames of a later protocol version (streamed text) are assembled by seq", () => {
  // What a later `agent_delta` frame could look like; the assembler hands it to the extension.
  const text: RunExtension = {
    apply(extensions, frame, place) {
      const chunks = (extensions.text as Map<number, string> | undefined) ?? new Map<number, string>();
      if (chunks.has(place.seq)) return false;
      chunks.set(place.seq, String(frame.delta));
      extensions.text = chunks;
      return true;
    },
  };
  const runs = new RunAssembler({ extensions: { agent_delta: text } });
  const delta = (seq: number, d: string): UnknownRunFrame => ({ ...base, type: "agent_delta", seq, delta: d });
  assert.ok(runs.apply(delta(3, " world")));
  assert.ok(runs.apply(delta(2, "hello")));
  assert.equal(runs.apply(delta(2, "hello")), undefined, "a repeat");
  const chunks = runs.get("r1")?.extensions.text as Map<number, string>;
  assert.equal([...chunks.entries()].sort(([a], [b]) => a - b).map(([, t]) => t).join(""), "hello world");
  assert.equal(runs.apply({ ...base, type: "agent_unknown", seq: 4 }), undefined, "no extension, ignored");
});

/** The pieces of a streamed answer, as a live reader receives them, then as a catch-up does. */
function answer(): { live: AgentFrame[]; text: string } {
  const pieces = ["Hé", "llo 😀", " wörld", "!", ""];
  const live: AgentFrame[] = [];
  let offset = 0;
  pieces.forEach((text, i) => {
    const final = i === pieces.length - 1;
    live.push({ ...base, seq: 20 + i, type: "agent_message_delta", event: "agent_message_delta", message: "m1", offset, final, text });
    offset += Array.from(text).length;
  });
  return { live, text: pieces.join("") };
}

test("a streamed answer is assembled by offset in code points, whatever the order and repeats", () => {
  const { live, text } = answer();
  const snapshot: AgentFrame = { ...base, seq: 22, type: "agent_message_delta", event: "agent_message_delta", message: "m1", offset: 0, final: false, text: "Héllo 😀 wörld" };
  const orders = [live, [...live].reverse(), [snapshot, ...live], [live[0] as AgentFrame, live[1] as AgentFrame, snapshot, ...live.slice(1)], [...live.slice(3), snapshot]];
  for (const order of orders) {
    const runs = new RunAssembler();
    for (const frame of order) runs.apply(frame);
    const message = runs.get("r1")?.messages.get("m1");
    assert.deepEqual(message && { text: message.text, length: message.length, ended: message.ended }, { text, length: Array.from(text).length, ended: true });
  }
  const runs = new RunAssembler();
  for (const frame of live) assert.ok(runs.apply(frame));
  for (const frame of [...live, snapshot]) assert.equal(runs.apply(frame), undefined, "repeats change nothing");
});

test("a piece past the text held waits: the message is not complete with a hole", () => {
  const { live } = answer();
  const runs = new RunAssembler();
  for (const frame of live.slice(2)) runs.apply(frame);
  const message = runs.get("r1")?.messages.get("m1");
  assert.deepEqual(message && [message.text, message.ended], ["", false]);
});
