/**
 * The wire protocol: every frame a client sends and receives, the error codes and the close
 * codes, mirroring docs/PROTOCOL.md. Section numbers (§) refer to it.
 *
 * The frames are generated from the server's Rust definitions into
 * [`generated/protocol.ts`](generated/protocol.ts) (`npm run generate`; a test fails when they
 * drift); this file names them for the SDK. Only what the server's types cannot say is written
 * here: the SDK's forward-compatible shapes (`UnknownFrame`, `UnknownRunFrame`), the close codes
 * and the handshake URL.
 */

import type * as Wire from "./generated/protocol.js";

export type { AgentId, ConnId, ErrorCode, GapReason, Json, LeftReason, Position, Ref, RoomId, RunId, StreamPosition, ThreadId, UserId } from "./generated/protocol.js";

/** A stream name: `user:<id>` or `room:<id>` (§6). */
export type StreamName = Wire.StreamName;

// ---------------------------------------------------------------------------------------------
// Client frames (§2)
// ---------------------------------------------------------------------------------------------

/** The client frame of `type`. */
type Client<T extends Wire.ClientFrame["type"]> = Extract<Wire.ClientFrame, { type: T }>;

/** `join`: answered `joined`; with `since`, followed by `gap`/replayed messages. */
export type JoinFrame = Client<"join">;
/** `leave`: answered `left`. */
export type LeaveFrame = Client<"leave">;
/**
 * `publish`: no answer on success; `error` `not_member` for a room the connection is not in,
 * `forbidden` for a room the token does not allow publishing to.
 */
export type PublishFrame = Client<"publish">;
/** `bind`: answered `bound`; `null` unbinds. */
export type BindFrame = Client<"bind">;
/** `ping`: answered `pong`. */
export type PingFrame = Client<"ping">;
/** `resume`: one answer per stream, in order, each with the frame's `ref` (§7). */
export type ResumeFrame = Client<"resume">;
/**
 * `refresh`: a fresh token, answering a server `refresh` frame (at most 8 KiB). Answered
 * `refreshed` once the server verified it, or `error` (`invalid_token`, `forbidden`,
 * `refresh_in_progress`) with the frame's `ref`.
 */
export type RefreshAnswerFrame = Client<"refresh">;
/** Ask the producer of one of the user's runs in progress to cancel it. */
export type CancelFrame = Client<"cancel">;
/** An application frame (a type in the server's `[frames] types`), answered `reply` or `error`. */
export type AppFrame = Wire.AppFrame;

/** Every frame a client sends. */
export type ClientFrame = Wire.ClientFrame | AppFrame;

/** Each protocol client frame type, once: the compiler checks the list against the protocol. */
const CLIENT_TYPES: Record<Wire.ClientFrame["type"], true> = {
  join: true,
  leave: true,
  publish: true,
  bind: true,
  ping: true,
  resume: true,
  cancel: true,
  refresh: true,
};

/** The frame types the protocol itself defines; an application frame may use none of them. */
export const PROTOCOL_CLIENT_TYPES: ReadonlySet<string> = new Set(Object.keys(CLIENT_TYPES));

// ---------------------------------------------------------------------------------------------
// Server frames (§3)
// ---------------------------------------------------------------------------------------------

/** The server frame of `type`. */
type Server<T extends Wire.ServerFrame["type"]> = Extract<Wire.ServerFrame, { type: T }>;

/** The first frame of every connection. `epoch`/`seq` is the user stream's head. */
export type WelcomeFrame = Server<"welcome">;
/** An application message. Sequenced messages carry `stream`/`epoch`/`seq`. */
export type MessageFrame = Server<"message">;
/**
 * The connection is in the room; `epoch`/`seq` is the room stream's head. For a member that
 * watches presence, `count` users are in the room, listed in `members` unless the room is over
 * the server's cap.
 */
export type JoinedFrame = Server<"joined">;
/**
 * The connection is no longer in the room. `reason` `forbidden`: a fresh token accepted by
 * `refresh` no longer allows the room (the server left it; no `ref`).
 */
export type LeftFrame = Server<"left">;
/**
 * A user arrived in a room (`event` `join`: their first connection joined) or left it (`leave`:
 * their last connection left or closed), to members that watch the room's presence. Never
 * replayed: after a reconnect, the `joined` of the rejoin lists the members again.
 */
export type PresenceFrame = Server<"presence">;
/** The thread the connection is now bound to (`null`: none). */
export type BoundFrame = Server<"bound">;
/** The answer to `ping`. */
export type PongFrame = Server<"pong">;
/** Messages `from`..`to` of `stream` cannot be delivered; `epoch` is the stream's current one. */
export type GapFrame = Server<"gap">;
/** The replay of a stream the connection was already on is complete; `epoch`/`seq` is its head. */
export type ResumedFrame = Server<"resumed">;
/**
 * A refused frame: `code` is stable (§4), `message` is for humans. The answer to an application
 * frame may carry a code the application chose (1 to 64 of `[a-z0-9_]`). An `invalid_token`
 * carries `reason`, why the fresh token was refused (the handshake's 401 reasons).
 */
export type ErrorFrame = Server<"error">;
/** `reply`: the application's answer to an application frame that carried a `ref`. */
export type ReplyFrame = Server<"reply">;
/**
 * `refresh` (§3): the connection's token expires in `expires_in` seconds; the client answers
 * with a client `refresh` frame carrying a fresh token, or is closed with 4005 after the expiry.
 */
export type RefreshRequestFrame = Server<"refresh">;
/**
 * `refreshed` (§3): the fresh token was accepted and its grants apply; `expires_in` is the
 * seconds until it expires (absent: it does not).
 */
export type RefreshedFrame = Server<"refreshed">;

/** Every agent-run frame (§3 "Agent run frames"). */
export type AgentFrame = Wire.RunFrame;
/** The `type`s of agent-run frames. */
export type AgentFrameType = AgentFrame["type"];
/** The agent-run frame of `type`. */
type Run<T extends AgentFrameType> = Extract<AgentFrame, { type: T }>;

/** The run began. */
export type AgentStartedFrame = Run<"agent_started">;
/** An intermediate thought (may be coalesced for a slow reader). */
export type AgentThinkingFrame = Run<"agent_thinking">;
/**
 * A piece of the agent's answer: `text` appended to `message` at `offset`, the message's length
 * before it in Unicode scalar values (code points, not UTF-16 units). Pieces may overlap (a
 * late joiner or a resume gets the text so far from offset 0): assemble them by offset.
 */
export type AgentMessageDeltaFrame = Run<"agent_message_delta">;
/** A tool call began. A call is identified by `call_id`, or by `tool` when it is `null`. */
export type ToolExecutingFrame = Run<"tool_executing">;
/** A tool call finished. */
export type ToolCompletedFrame = Run<"tool_completed">;
/** The run finished successfully. */
export type AgentCompletedFrame = Run<"agent_completed">;
/** The run failed. */
export type AgentFailedFrame = Run<"agent_failed">;
/** The run was cancelled. */
export type AgentCancelledFrame = Run<"agent_cancelled">;
/** Sent by the server when the producer went away or was silent for `run_idle_timeout`. */
export type ProducerLostFrame = Run<"producer_lost">;

/** Each agent-run frame type, once: the compiler checks the list against the protocol. */
const RUN_TYPES: Record<AgentFrameType, true> = {
  agent_started: true,
  agent_thinking: true,
  agent_message_delta: true,
  tool_executing: true,
  tool_completed: true,
  agent_completed: true,
  agent_failed: true,
  agent_cancelled: true,
  producer_lost: true,
};

/** The agent-run frame types, to tell them from other frames. */
export const AGENT_FRAME_TYPES: ReadonlySet<string> = new Set(Object.keys(RUN_TYPES));

/** Every frame the server sends. */
export type ServerFrame = Wire.ServerFrame | AgentFrame;

/**
 * A server frame of a type this SDK does not know (ignored, but handed to `frame` listeners):
 * a newer server's.
 */
export interface UnknownFrame {
  readonly type: string;
  readonly [field: string]: Wire.Json | undefined;
}

/**
 * A run frame of a type this SDK does not know (a later protocol version's, such as streamed
 * answer text): it has the fields every agent frame has, and its own.
 */
export interface UnknownRunFrame {
  readonly type: string;
  readonly run: string;
  readonly agent?: string;
  readonly thread?: string;
  readonly stream: StreamName;
  readonly epoch: number;
  readonly seq: number;
  readonly [field: string]: Wire.Json | undefined;
}

// ---------------------------------------------------------------------------------------------
// Close codes (§5)
// ---------------------------------------------------------------------------------------------

/**
 * What the client does after a close, from the "Client should" column of §5:
 * `never`: not reconnect automatically; `backoff`: reconnect after an exponential, fully
 * jittered delay; `at_once`: reconnect without delay (a failed attempt then backs off, §5
 * "Reconnect timing").
 */
export type ReconnectRule = "never" | "backoff" | "at_once";

/** One row of the close-code table of §5. */
export interface CloseCodeInfo {
  readonly label: string;
  readonly reconnect: ReconnectRule;
}

/** The close codes of §5, with their labels and what a client does after each. */
export const CLOSE_CODES: ReadonlyMap<number, CloseCodeInfo> = new Map<number, CloseCodeInfo>([
  [1000, { label: "normal", reconnect: "never" }],
  [1001, { label: "shutdown", reconnect: "backoff" }],
  [1003, { label: "binary_frame", reconnect: "never" }],
  [1007, { label: "invalid_utf8", reconnect: "never" }],
  [1008, { label: "protocol_violation", reconnect: "backoff" }],
  [1009, { label: "frame_too_large", reconnect: "at_once" }],
  [1012, { label: "service_restart", reconnect: "at_once" }],
  [4000, { label: "heartbeat_timeout", reconnect: "at_once" }],
  [4001, { label: "evicted", reconnect: "never" }],
  [4002, { label: "disconnected", reconnect: "never" }],
  [4003, { label: "user_limit", reconnect: "backoff" }],
  [4004, { label: "server_full", reconnect: "backoff" }],
  [4005, { label: "token_expired", reconnect: "at_once" }],
  [4008, { label: "slow_consumer", reconnect: "at_once" }],
  [4029, { label: "rate_limited", reconnect: "backoff" }],
]);

/**
 * A close without a close frame (the socket failed, the peer vanished, or the handshake was
 * refused): browsers report 1006. Not in the table: reconnect with backoff (§5).
 */
export const ABNORMAL_CLOSE = { code: 1006, label: "abnormal", reconnect: "backoff" } as const;

// ---------------------------------------------------------------------------------------------
// Handshake (docs/API.md, `GET /ws`)
// ---------------------------------------------------------------------------------------------

/** The query parameters of the WebSocket handshake. */
export interface HandshakeParams {
  readonly token: string;
  readonly thread?: string | null;
  readonly resume?: Wire.Position | null;
  /** Ask for several frames per WebSocket message when they are ready together (`batch=1`). */
  readonly batch?: boolean;
}

/** The handshake's query parameter that asks for batched messages (docs/PROTOCOL.md §1). */
export const BATCH_PARAMETER = "batch";

/** The URL of the handshake: `url` with `token`, `thread`, `resume=<epoch>:<seq>` and `batch=1`. */
export function handshakeUrl(url: string, params: HandshakeParams): string {
  const target = new URL(url);
  target.searchParams.set("token", params.token);
  if (params.thread != null && params.thread !== "") target.searchParams.set("thread", params.thread);
  if (params.resume != null) {
    target.searchParams.set("resume", `${params.resume.epoch}:${params.resume.seq}`);
  }
  if (params.batch === true) target.searchParams.set(BATCH_PARAMETER, "1");
  return target.toString();
}

/** The stream of a room. */
export function roomStream(room: string): StreamName {
  return `room:${room}`;
}
