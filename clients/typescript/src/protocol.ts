/**
 * The wire protocol: every frame a client sends and receives, the error codes and the close
 * codes, mirroring docs/PROTOCOL.md (the server's `src/protocol.rs` and `src/run.rs`).
 *
 * Every wire type of the SDK lives in this file and nowhere else, so that it can later be
 * generated from the Rust definitions. Section numbers (§) refer to docs/PROTOCOL.md.
 */

/** Any JSON value. */
export type Json = null | boolean | number | string | readonly Json[] | { readonly [key: string]: Json };

/** A `ref`: any JSON value, echoed verbatim in the direct reply (§2). The SDK uses integers. */
export type Ref = Json;

/** A stream name: `user:<id>` or `room:<id>` (§6). */
export type StreamName = `user:${string}` | `room:${string}`;

/** A position on a stream: `seq` 0 means "nothing yet" (§6). */
export interface Position {
  readonly epoch: number;
  readonly seq: number;
}

/** A position with its stream, as sent in `resume` (flat, unlike `join.since`). */
export interface StreamPosition extends Position {
  readonly stream: StreamName;
}

// ---------------------------------------------------------------------------------------------
// Client frames (§2)
// ---------------------------------------------------------------------------------------------

/** `join`: answered `joined`; with `since`, followed by `gap`/replayed messages. */
export interface JoinFrame {
  readonly type: "join";
  readonly room: string;
  readonly since?: Position;
  readonly ref?: Ref;
}

/** `leave`: answered `left`. */
export interface LeaveFrame {
  readonly type: "leave";
  readonly room: string;
  readonly ref?: Ref;
}

/**
 * `publish`: no answer on success; `error` `not_member` for a room the connection is not in,
 * `forbidden` for a room the token does not allow publishing to.
 */
export interface PublishFrame {
  readonly type: "publish";
  readonly room: string;
  readonly event: string;
  readonly data: Json;
  readonly ref?: Ref;
}

/** `bind`: answered `bound`; `null` unbinds. */
export interface BindFrame {
  readonly type: "bind";
  readonly thread: string | null;
  readonly ref?: Ref;
}

/** `ping`: answered `pong`. */
export interface PingFrame {
  readonly type: "ping";
  readonly ref?: Ref;
}

/** `resume`: one answer per stream, in order, each with the frame's `ref` (§7). */
export interface ResumeFrame {
  readonly type: "resume";
  readonly streams: readonly StreamPosition[];
  readonly ref?: Ref;
}

/**
 * `refresh`: a fresh token, answering a server `refresh` frame (§2 "refresh", at most 8 KiB).
 * Answered `refreshed` once the server verified it, or `error` (`invalid_token`, `forbidden`,
 * `refresh_in_progress`) with the frame's `ref`.
 */
export interface RefreshAnswerFrame {
  readonly type: "refresh";
  readonly token: string;
  readonly ref?: Ref;
}

/** An application-defined frame (a type in the server's `app_frame_types`). */
export interface AppFrame {
  readonly type: string;
  readonly data: Json;
  readonly ref?: Ref;
}

/** Every frame a client sends. */
export type ClientFrame =
  | JoinFrame
  | LeaveFrame
  | PublishFrame
  | BindFrame
  | PingFrame
  | ResumeFrame
  | RefreshAnswerFrame
  | AppFrame;

/** The frame types the protocol itself defines; an application frame may use none of them. */
export const PROTOCOL_CLIENT_TYPES: ReadonlySet<string> = new Set([
  "join",
  "leave",
  "publish",
  "bind",
  "ping",
  "resume",
  "refresh",
]);

// ---------------------------------------------------------------------------------------------
// Server frames (§3)
// ---------------------------------------------------------------------------------------------

/** The first frame of every connection. `epoch`/`seq` is the user stream's head. */
export interface WelcomeFrame {
  readonly type: "welcome";
  readonly conn: string;
  readonly user: string;
  readonly thread?: string;
  readonly heartbeat_ms: number;
  readonly stream: StreamName;
  readonly epoch: number;
  readonly seq: number;
}

/** An application message. Sequenced messages carry `stream`/`epoch`/`seq`. */
export interface MessageFrame {
  readonly type: "message";
  readonly stream?: StreamName;
  readonly epoch?: number;
  readonly seq?: number;
  readonly room?: string;
  readonly thread?: string;
  readonly from?: string;
  readonly event: string;
  readonly data: Json;
}

/** What every agent-run frame carries (§3 "Agent run frames"). */
interface AgentFrameBase {
  readonly run: string;
  readonly agent: string;
  readonly thread?: string;
  readonly stream: StreamName;
  readonly epoch: number;
  readonly seq: number;
}

/** The run began. */
export interface AgentStartedFrame extends AgentFrameBase {
  readonly type: "agent_started";
  readonly event: "agent_started";
  readonly data: Json;
}

/** An intermediate thought (may be coalesced for a slow reader). */
export interface AgentThinkingFrame extends AgentFrameBase {
  readonly type: "agent_thinking";
  readonly event: "agent_thinking";
  readonly thought: string;
}

/**
 * A piece of the agent's answer: `text` appended to `message` at `offset`, the message's length
 * before it in Unicode scalar values (code points, not UTF-16 units). Pieces may overlap (a
 * late joiner or a resume gets the text so far from offset 0): assemble them by offset.
 */
export interface AgentMessageDeltaFrame extends AgentFrameBase {
  readonly type: "agent_message_delta";
  readonly event: "agent_message_delta";
  readonly message: string;
  readonly offset: number;
  /** The message's last piece. */
  readonly final: boolean;
  readonly text: string;
}

/** A tool call began. A call is identified by `call_id`, or by `tool` when it is `null`. */
export interface ToolExecutingFrame extends AgentFrameBase {
  readonly type: "tool_executing";
  readonly event: "tool_executing";
  readonly tool: string;
  readonly call_id: string | null;
  readonly input: Json;
}

/** A tool call finished. */
export interface ToolCompletedFrame extends AgentFrameBase {
  readonly type: "tool_completed";
  readonly event: "tool_completed";
  readonly tool: string;
  readonly call_id: string | null;
  readonly output: Json;
}

/** The run finished successfully. */
export interface AgentCompletedFrame extends AgentFrameBase {
  readonly type: "agent_completed";
  readonly event: "agent_completed";
  readonly result: Json;
}

/** The run failed. */
export interface AgentFailedFrame extends AgentFrameBase {
  readonly type: "agent_failed";
  readonly event: "agent_failed";
  readonly error: string;
}

/** The run was cancelled. */
export interface AgentCancelledFrame extends AgentFrameBase {
  readonly type: "agent_cancelled";
  readonly event: "agent_cancelled";
  readonly reason: string | null;
}

/** Sent by the server when the producer went away or was silent for `run_idle_timeout`. */
export interface ProducerLostFrame extends AgentFrameBase {
  readonly type: "producer_lost";
}

/** Every agent-run frame. */
export type AgentFrame =
  | AgentStartedFrame
  | AgentThinkingFrame
  | AgentMessageDeltaFrame
  | ToolExecutingFrame
  | ToolCompletedFrame
  | AgentCompletedFrame
  | AgentFailedFrame
  | AgentCancelledFrame
  | ProducerLostFrame;

/** The `type`s of agent-run frames. */
export type AgentFrameType = AgentFrame["type"];

/** The agent-run frame types, to tell them from other frames. */
export const AGENT_FRAME_TYPES: ReadonlySet<string> = new Set<AgentFrameType>([
  "agent_started",
  "agent_thinking",
  "agent_message_delta",
  "tool_executing",
  "tool_completed",
  "agent_completed",
  "agent_failed",
  "agent_cancelled",
  "producer_lost",
]);

/** The connection is in the room; `epoch`/`seq` is the room stream's head. */
export interface JoinedFrame {
  readonly type: "joined";
  readonly room: string;
  readonly stream: StreamName;
  readonly epoch: number;
  readonly seq: number;
  readonly ref?: Ref;
}

/**
 * The connection is no longer in the room. `reason` `forbidden`: a fresh token accepted by
 * `refresh` no longer allows the room (the server left it; no `ref`).
 */
export interface LeftFrame {
  readonly type: "left";
  readonly room: string;
  readonly reason?: "forbidden";
  readonly ref?: Ref;
}

/** The thread the connection is now bound to (`null`: none). */
export interface BoundFrame {
  readonly type: "bound";
  readonly thread: string | null;
  readonly ref?: Ref;
}

/** The answer to `ping`. */
export interface PongFrame {
  readonly type: "pong";
  readonly ref?: Ref;
}

/** Why a `gap` was sent (§3 "gap"). */
export type GapReason = "history" | "epoch";

/** Messages `from`..`to` of `stream` cannot be delivered; `epoch` is the stream's current one. */
export interface GapFrame {
  readonly type: "gap";
  readonly stream: StreamName;
  readonly epoch: number;
  readonly from: number;
  readonly to: number;
  readonly reason: GapReason;
}

/** The replay of a stream the connection was already on is complete; `epoch`/`seq` is its head. */
export interface ResumedFrame {
  readonly type: "resumed";
  readonly stream: StreamName;
  readonly epoch: number;
  readonly seq: number;
  readonly ref?: Ref;
}

/** The stable error codes (§4). */
export type ErrorCode =
  | "malformed_json"
  | "invalid_frame"
  | "unknown_type"
  | "rate_limited"
  | "forbidden"
  | "not_member"
  | "room_full"
  | "too_many_rooms"
  | "already_live"
  | "invalid_token"
  | "refresh_in_progress";

/** A refused frame. `code` is stable; `message` is for humans. */
export interface ErrorFrame {
  readonly type: "error";
  readonly code: ErrorCode;
  readonly message: string;
  /** For `invalid_token`: why the fresh token was refused (the handshake's 401 reasons). */
  readonly reason?: string;
  readonly ref?: Ref;
}

/**
 * `reply` (reserved, §9): the answer to an application frame that carried a `ref`. The server
 * does not send it yet: today application frames get no answer.
 */
export interface ReplyFrame {
  readonly type: "reply";
  readonly data: Json;
  readonly ref: Ref;
}

/**
 * `refresh` (§3): the connection's token expires in `expires_in` seconds; the client answers
 * with a client `refresh` frame carrying a fresh token, or is closed with 4005 after the expiry.
 */
export interface RefreshRequestFrame {
  readonly type: "refresh";
  readonly expires_in: number;
}

/**
 * `refreshed` (§3): the fresh token was accepted and its grants apply; `expires_in` is the
 * seconds until it expires (absent: it does not).
 */
export interface RefreshedFrame {
  readonly type: "refreshed";
  readonly expires_in?: number;
  readonly ref?: Ref;
}

/** Every frame the server sends (and the reserved ones the SDK already understands). */
export type ServerFrame =
  | WelcomeFrame
  | MessageFrame
  | AgentFrame
  | JoinedFrame
  | LeftFrame
  | BoundFrame
  | PongFrame
  | GapFrame
  | ResumedFrame
  | ErrorFrame
  | ReplyFrame
  | RefreshRequestFrame
  | RefreshedFrame;

/** A server frame of a type this SDK does not know (ignored, but handed to `frame` listeners). */
export interface UnknownFrame {
  readonly type: string;
  readonly [field: string]: Json | undefined;
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
  readonly [field: string]: Json | undefined;
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
  readonly resume?: Position | null;
}

/** The URL of the handshake: `url` with `token`, `thread` and `resume=<epoch>:<seq>`. */
export function handshakeUrl(url: string, params: HandshakeParams): string {
  const target = new URL(url);
  target.searchParams.set("token", params.token);
  if (params.thread != null && params.thread !== "") target.searchParams.set("thread", params.thread);
  if (params.resume != null) {
    target.searchParams.set("resume", `${params.resume.epoch}:${params.resume.seq}`);
  }
  return target.toString();
}

/** The stream of a room. */
export function roomStream(room: string): StreamName {
  return `room:${room}`;
}
