/**
 * Agent runs: the state of each run, by `run` id, assembled from its frames (docs/PROTOCOL.md
 * §3 "Agent run frames", §6 "Late joiners", §8).
 *
 * Frames are applied by their place in the user stream (`epoch`, `seq`), never by arrival: a
 * catch-up may deliver events again, or older ones after newer ones, and `agent_thinking`
 * frames may be missing (coalesced). Applying a frame twice changes nothing, and the result
 * does not depend on the order frames arrive in. Streamed answers (`agent_message_delta`) are
 * assembled by offset, in Unicode scalar values: the part of a piece already held is skipped,
 * and a piece that starts past the text held waits until the text reaches it.
 */

import {
  AGENT_FRAME_TYPES,
  type AgentFrame,
  type AgentMessageDeltaFrame,
  type Json,
  type StreamName,
  type UnknownRunFrame,
} from "./protocol.js";

/** How a run stands. */
export type RunStatus = "running" | "completed" | "failed" | "cancelled" | "lost";

/** A place in the user stream. */
interface Place {
  readonly epoch: number;
  readonly seq: number;
}

/** One tool call of a run. */
export interface ToolCall {
  /** The tool's name. */
  readonly tool: string;
  /** The call id, or `null` when the producer gave none (the call is then known by `tool`). */
  readonly callId: string | null;
  /** `running` until its `tool_completed`. */
  readonly status: "running" | "completed";
  /** The input, when its `tool_executing` was received (a late joiner may have missed it). */
  readonly input: Json | undefined;
  /** The output, once completed. */
  readonly output: Json | undefined;
  /** The `seq` of its `tool_executing`, if received. */
  readonly startedSeq: number | undefined;
  /** The `seq` of its `tool_completed`, if received. */
  readonly completedSeq: number | undefined;
}

/** One streamed answer of a run, assembled from its `agent_message_delta` frames. */
export interface AgentMessage {
  /** The message id within the run. */
  readonly id: string;
  /** The text assembled so far, without holes. */
  readonly text: string;
  /** Its length in Unicode scalar values (the offset of the next piece). */
  readonly length: number;
  /** The final piece was received and the text is complete. */
  readonly ended: boolean;
}

/** How a run ended. */
export type RunEnding =
  | { readonly kind: "completed"; readonly result: Json }
  | { readonly kind: "failed"; readonly error: string }
  | { readonly kind: "cancelled"; readonly reason: string | null }
  | { readonly kind: "lost" };

/** The assembled state of one run. Updated in place; read it, do not change it. */
export interface RunView {
  readonly run: string;
  readonly agent: string;
  readonly thread: string | null;
  readonly stream: StreamName;
  readonly status: RunStatus;
  /** Whether `agent_started` was received (a late joiner may start after it). */
  readonly started: boolean;
  /** The `data` of `agent_started`, if received. */
  readonly startData: Json | undefined;
  /** The latest thought (by `seq`), if any. */
  readonly thinking: string | null;
  /** Tool calls, in the order they began. */
  readonly tools: readonly ToolCall[];
  /** Streamed answers, by message id, in the order they were first seen. */
  readonly messages: ReadonlyMap<string, AgentMessage>;
  /** The ending, once the run ended. */
  readonly ending: RunEnding | null;
  /** The place of the newest frame applied. */
  readonly epoch: number;
  readonly seq: number;
  /** What extensions assembled from frames this SDK does not know yet (see {@link RunExtension}). */
  readonly extensions: Readonly<Record<string, unknown>>;
}

/**
 * The extension point for run frames of later protocol versions (streamed answer text, for
 * instance): a frame with a `run` field whose `type` is not one of today's agent frames is
 * handed to the extension registered for its `type`, with the run's view and the frame's place.
 * An extension keeps its state in `extensions[name]` and returns whether it changed anything.
 */
export interface RunExtension {
  apply(extensions: Record<string, unknown>, frame: UnknownRunFrame, place: Place): boolean;
}

/** Options of a {@link RunAssembler}. */
export interface RunAssemblerOptions {
  /** Ended runs kept, oldest dropped first. Default 100. Runs in progress are always kept. */
  readonly maxEndedRuns?: number;
  /** Extensions by frame `type`. */
  readonly extensions?: Readonly<Record<string, RunExtension>>;
}

type MutableCall = { -readonly [K in keyof ToolCall]: ToolCall[K] };

/** A message being assembled: pieces past its text wait by offset; `end` once the final piece says where. */
interface MutableMessage {
  id: string;
  text: string;
  length: number;
  ended: boolean;
  end: number | null;
  waiting: Map<number, string>;
}

/** A `tool_executing` or `tool_completed`, as kept to pair them. */
interface ToolEvent {
  readonly kind: "executing" | "completed";
  readonly tool: string;
  readonly callId: string | null;
  readonly value: Json;
  readonly place: Place;
}

interface MutableRun {
  run: string;
  agent: string;
  thread: string | null;
  stream: StreamName;
  status: RunStatus;
  started: boolean;
  startData: Json | undefined;
  thinking: string | null;
  thinkingPlace: Place | null;
  tools: ToolCall[];
  toolEvents: Map<string, ToolEvent[]>;
  messages: Map<string, MutableMessage>;
  ending: RunEnding | null;
  endingPlace: Place | null;
  epoch: number;
  seq: number;
  extensions: Record<string, unknown>;
}

function before(a: Place, b: Place): boolean {
  return a.epoch < b.epoch || (a.epoch === b.epoch && a.seq < b.seq);
}

function same(a: Place | null | undefined, b: Place): boolean {
  return a != null && a.epoch === b.epoch && a.seq === b.seq;
}

/** Assembles runs from agent frames. */
export class RunAssembler {
  private readonly runs = new Map<string, MutableRun>();
  private readonly ended: string[] = [];
  private readonly maxEndedRuns: number;
  private readonly extensions: Readonly<Record<string, RunExtension>>;

  constructor(options: RunAssemblerOptions = {}) {
    this.maxEndedRuns = options.maxEndedRuns ?? 100;
    this.extensions = options.extensions ?? {};
  }

  /** The run `id`, if known. */
  get(id: string): RunView | undefined {
    return this.runs.get(id);
  }

  /** Every run kept, in the order they were first seen. */
  all(): RunView[] {
    return [...this.runs.values()];
  }

  /** Forget every run (after a `gap` with reason `epoch`, if the application refetches). */
  clear(): void {
    this.runs.clear();
    this.ended.length = 0;
  }

  /**
   * Apply an agent frame, or a run frame an extension handles. Returns the run's view if the
   * frame changed it, `undefined` if it changed nothing (a repeat, an older thought, a type
   * nobody handles).
   */
  apply(frame: AgentFrame | UnknownRunFrame): RunView | undefined {
    if (!this.handles(frame.type)) return undefined;
    const place: Place = { epoch: frame.epoch, seq: frame.seq };
    const run = this.runFor(frame);
    const wasEnded = run.ending !== null;
    const changed = this.applyTo(run, frame as AgentFrame, place);
    if (!changed) return undefined;
    if (before({ epoch: run.epoch, seq: run.seq }, place)) {
      run.epoch = place.epoch;
      run.seq = place.seq;
    }
    if (!wasEnded && run.ending !== null) this.retire(run.run);
    return run;
  }

  /** Whether frames of `type` are run frames: today's agent frames, or an extension's. */
  handles(type: string): boolean {
    return AGENT_FRAME_TYPES.has(type) || Object.hasOwn(this.extensions, type);
  }

  private runFor(frame: AgentFrame | UnknownRunFrame): MutableRun {
    let run = this.runs.get(frame.run);
    if (run === undefined) {
      run = {
        run: frame.run,
        agent: frame.agent ?? "agent",
        thread: frame.thread ?? null,
        stream: frame.stream,
        status: "running",
        started: false,
        startData: undefined,
        thinking: null,
        thinkingPlace: null,
        tools: [],
        toolEvents: new Map(),
        messages: new Map(),
        ending: null,
        endingPlace: null,
        epoch: frame.epoch,
        seq: 0,
        extensions: {},
      };
      this.runs.set(frame.run, run);
    }
    return run;
  }

  private applyTo(run: MutableRun, frame: AgentFrame, place: Place): boolean {
    switch (frame.type) {
      case "agent_started":
        if (run.started) return false;
        run.started = true;
        run.startData = frame.data;
        return true;
      case "agent_thinking":
        if (run.thinkingPlace !== null && !before(run.thinkingPlace, place)) return false;
        run.thinking = frame.thought;
        run.thinkingPlace = place;
        return true;
      case "agent_message_delta":
        return delta(run, frame);
      case "tool_executing":
        return this.toolEvent(run, { kind: "executing", tool: frame.tool, callId: frame.call_id, value: frame.input, place });
      case "tool_completed":
        return this.toolEvent(run, { kind: "completed", tool: frame.tool, callId: frame.call_id, value: frame.output, place });
      case "agent_completed":
        return this.end(run, { kind: "completed", result: frame.result }, "completed", place);
      case "agent_failed":
        return this.end(run, { kind: "failed", error: frame.error }, "failed", place);
      case "agent_cancelled":
        return this.end(run, { kind: "cancelled", reason: frame.reason }, "cancelled", place);
      case "producer_lost":
        return this.end(run, { kind: "lost" }, "lost", place);
      default: {
        const unknown = frame as UnknownRunFrame;
        const extension = this.extensions[unknown.type];
        return extension !== undefined && extension.apply(run.extensions, unknown, place);
      }
    }
  }

  private end(run: MutableRun, ending: RunEnding, status: RunStatus, place: Place): boolean {
    if (run.ending !== null) return false;
    run.ending = ending;
    run.endingPlace = place;
    run.status = status;
    return true;
  }

  /**
   * A `tool_executing` or `tool_completed`. The events of one call key (`call_id`, or `tool`
   * without one) alternate in stream order, since a key is not reused while its call is open
   * (§8): the calls are rebuilt from the key's events in `seq` order, so the pairing does not
   * depend on the order the events arrived in.
   */
  private toolEvent(run: MutableRun, event: ToolEvent): boolean {
    const key = event.callId !== null ? `id:${event.callId}` : `tool:${event.tool}`;
    const events = run.toolEvents.get(key) ?? [];
    if (events.some((e) => same(e.place, event.place))) return false;
    let at = events.length;
    while (at > 0 && before(event.place, (events[at - 1] as ToolEvent).place)) at -= 1;
    events.splice(at, 0, event);
    run.toolEvents.set(key, events);
    const calls: ToolCall[] = [];
    const order = new Map<ToolCall, Place>();
    for (const keyEvents of run.toolEvents.values()) {
      let open: MutableCall | null = null;
      for (const e of keyEvents) {
        if (e.kind === "executing") {
          open = { tool: e.tool, callId: e.callId, status: "running", input: e.value, output: undefined, startedSeq: e.place.seq, completedSeq: undefined };
          calls.push(open);
          order.set(open, e.place);
        } else if (open !== null) {
          open.status = "completed";
          open.output = e.value;
          open.completedSeq = e.place.seq;
          open = null;
        } else {
          // Its beginning was not received (a late joiner after history moved on).
          const call: ToolCall = { tool: e.tool, callId: e.callId, status: "completed", input: undefined, output: e.value, startedSeq: undefined, completedSeq: e.place.seq };
          calls.push(call);
          order.set(call, e.place);
        }
      }
    }
    calls.sort((a, b) => {
      const pa = order.get(a) as Place;
      const pb = order.get(b) as Place;
      return before(pa, pb) ? -1 : before(pb, pa) ? 1 : 0;
    });
    run.tools = calls;
    return true;
  }

  private retire(id: string): void {
    this.ended.push(id);
    while (this.ended.length > this.maxEndedRuns) {
      const oldest = this.ended.shift();
      if (oldest !== undefined) this.runs.delete(oldest);
    }
  }
}

/** Append what `text` at `offset` adds to `message`; true if the text grew. */
function appendPiece(message: MutableMessage, offset: number, text: string): boolean {
  const chars = Array.from(text);
  const skip = message.length - offset;
  if (skip >= chars.length) return false;
  message.text += chars.slice(skip).join("");
  message.length = offset + chars.length;
  return true;
}

/**
 * Apply a piece of a streamed answer by offset: the part already held is skipped, a piece that
 * starts past the text waits (a catch-up from offset 0 may still come), and the message ends
 * once its text reaches the final piece's end.
 */
function delta(run: MutableRun, frame: AgentMessageDeltaFrame): boolean {
  let message = run.messages.get(frame.message);
  if (message === undefined) {
    message = { id: frame.message, text: "", length: 0, ended: false, end: null, waiting: new Map() };
    run.messages.set(frame.message, message);
  }
  let changed = false;
  if (frame.final && message.end === null) {
    message.end = frame.offset + Array.from(frame.text).length;
    changed = true;
  }
  if (frame.offset > message.length) {
    const held = message.waiting.get(frame.offset);
    if (held === undefined || Array.from(held).length < Array.from(frame.text).length) {
      message.waiting.set(frame.offset, frame.text);
      changed = true;
    }
  } else {
    changed = appendPiece(message, frame.offset, frame.text) || changed;
  }
  for (let progressed = true; progressed; ) {
    progressed = false;
    for (const [offset, text] of message.waiting) {
      if (offset > message.length) continue;
      message.waiting.delete(offset);
      progressed = appendPiece(message, offset, text) || progressed;
      changed = true;
    }
  }
  if (!message.ended && message.end !== null && message.length >= message.end) {
    message.ended = true;
    changed = true;
  }
  return changed;
}
