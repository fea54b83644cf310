/**
 * The frames of the Switchboard protocol, generated from the Rust definitions (the core crate's
 * `protocol_schema`) by `npm run generate` in clients/typescript: do not edit.
 * docs/PROTOCOL.md is the prose version; src/protocol.ts names these types for the SDK.
 */

/**
 * A frame of the Switchboard protocol (docs/PROTOCOL.md): a JSON object in one WebSocket text message.
 */
export type Frame = ClientFrame | AppFrame | ServerFrame | RunFrame;
/**
 * A frame of the protocol a client sends (docs/PROTOCOL.md section 2).
 */
export type ClientFrame =
  | {
      /**
       * Watch the room's presence (`true`), or not even where the server's settings would
       * (`false`); absent or `null`: as the settings say.
       */
      presence?: boolean | null;
      ref?: Ref;
      /**
       * The room.
       */
      room: RoomId;
      /**
       * The last position the client saw on the room's stream: replay what came after it.
       */
      since?: Position | null;
      type: "join";
    }
  | {
      ref?: Ref;
      /**
       * The room.
       */
      room: RoomId;
      type: "leave";
    }
  | {
      /**
       * The payload, passed on to the members (`null` when absent).
       */
      data?: Json;
      /**
       * The application's event name, passed on to the members.
       */
      event: string;
      ref?: Ref;
      /**
       * The room, which the connection is in.
       */
      room: RoomId;
      type: "publish";
    }
  | {
      ref?: Ref;
      /**
       * The thread, or `null` to unbind.
       */
      thread?: ThreadId | null;
      type: "bind";
    }
  | {
      ref?: Ref;
      type: "ping";
    }
  | {
      ref?: Ref;
      /**
       * The last position seen on each stream (the user stream and rooms the connection is in).
       */
      streams: StreamPosition[];
      type: "resume";
    }
  | {
      ref?: Ref;
      /**
       * The fresh token (at most 8 KiB).
       */
      token: string;
      type: "refresh";
    }
  | {
      ref?: Ref;
      /**
       * The run to cancel: one of the user's own runs in progress.
       */
      run: RunId;
      type: "cancel";
    };
/**
 * A client's `ref`: any JSON value (at most 256 bytes of JSON text), echoed verbatim in the frame's direct answer.
 */
export type Ref = Json;
/**
 * Any JSON value.
 */
export type Json =
  null | boolean | number | string | readonly Json[] | {readonly [key: string]: Json};
/**
 * A room: a named group of connections that join and leave it.
 */
export type RoomId = string;
/**
 * A conversation thread of one user; connections bind to it.
 */
export type ThreadId = string;
/**
 * A stream: a user's (`user:<id>`) or a room's (`room:<id>`).
 */
export type StreamName = `user:${string}` | `room:${string}`;
/**
 * One agent run: the events of one invocation of an agent, from `agent_started` to its end.
 */
export type RunId = string;
/**
 * A frame the server sends, but agent-run frames (docs/PROTOCOL.md section 3).
 */
export type ServerFrame =
  | {
      conn: ConnId;
      epoch: number;
      heartbeat_ms: number;
      seq: number;
      stream: StreamName;
      thread?: ThreadId;
      type: "welcome";
      user: UserId;
    }
  | {
      data: Json;
      /**
       * The stream epoch the sequence number belongs to.
       */
      epoch?: number;
      event: string;
      from?: UserId;
      room?: RoomId;
      /**
       * The last sequence number seen.
       */
      seq?: number;
      stream?: StreamName;
      thread?: ThreadId;
      type: "message";
    }
  | {
      /**
       * How many users are in the room (users, not connections).
       */
      count?: number;
      /**
       * The stream epoch the sequence number belongs to.
       */
      epoch: number;
      /**
       * The users in the room, sorted; absent above the cap (`[presence] max_members`).
       */
      members?: UserId[];
      ref?: Ref;
      room: RoomId;
      /**
       * The last sequence number seen.
       */
      seq: number;
      stream: StreamName;
      type: "joined";
    }
  | {
      /**
       * Whether the user arrived (`join`) or left (`leave`).
       */
      event: PresenceEvent;
      /**
       * The room.
       */
      room: RoomId;
      type: "presence";
      /**
       * The user.
       */
      user: UserId;
    }
  | {
      /**
       * Why the hub took the connection out of the room, when the client did not ask.
       */
      reason?: LeftReason;
      ref?: Ref;
      room: RoomId;
      type: "left";
    }
  | {
      ref?: Ref;
      thread: ThreadId | null;
      type: "bound";
    }
  | {
      ref?: Ref;
      type: "pong";
    }
  | {
      epoch: number;
      from: number;
      reason: GapReason;
      stream: StreamName;
      to: number;
      type: "gap";
    }
  | {
      /**
       * The stream epoch the sequence number belongs to.
       */
      epoch: number;
      ref?: Ref;
      /**
       * The last sequence number seen.
       */
      seq: number;
      stream: StreamName;
      type: "resumed";
    }
  | {
      code: ErrorCode;
      message: string;
      /**
       * The stable reason of an `invalid_token`.
       */
      reason?: string;
      ref?: Ref;
      type: "error";
    }
  | {
      expires_in: number;
      type: "refresh";
    }
  | {
      data: Json;
      ref?: Ref;
      type: "reply";
    }
  | {
      code: string;
      message: string;
      ref?: Ref;
      type: "error";
    }
  | {
      expires_in?: number;
      ref?: Ref;
      type: "refreshed";
    };
/**
 * A connection's id, unique in the cluster: `<shard>.<index>.<generation>`.
 */
export type ConnId = string;
/**
 * The authenticated user a connection belongs to.
 */
export type UserId = string;
/**
 * Whether a user arrived in a room or left it.
 */
export type PresenceEvent = "join" | "leave";
/**
 * Why the hub took a connection out of a room on its own (the `reason` of a `left` frame).
 */
export type LeftReason = "forbidden";
/**
 * Why a `gap` frame was sent.
 */
export type GapReason = "history" | "epoch";
/**
 * The stable code of an `error` frame.
 */
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
  | "refresh_in_progress"
  | "backend_unavailable"
  | "unknown_run";
/**
 * An agent-run frame: `type` is the event (`producer_lost`: the server ended the run because its producer went away), `stream`/`epoch`/`seq` its place in the user stream.
 */
export type RunFrame =
  | {
      agent: AgentId;
      /**
       * Free-form details (the prompt, the model, ...).
       */
      data: Json;
      /**
       * The stream epoch the sequence number belongs to.
       */
      epoch: number;
      event: "agent_started";
      run: RunId;
      /**
       * The last sequence number seen.
       */
      seq: number;
      stream: StreamName;
      thread?: ThreadId;
      type: "agent_started";
    }
  | {
      agent: AgentId;
      /**
       * The stream epoch the sequence number belongs to.
       */
      epoch: number;
      event: "agent_thinking";
      run: RunId;
      /**
       * The last sequence number seen.
       */
      seq: number;
      stream: StreamName;
      /**
       * The thought, as text.
       */
      thought: string;
      thread?: ThreadId;
      type: "agent_thinking";
    }
  | {
      agent: AgentId;
      /**
       * The stream epoch the sequence number belongs to.
       */
      epoch: number;
      event: "agent_message_delta";
      /**
       * The message's last delta: nothing may be appended after it.
       */
      final: boolean;
      /**
       * The message within the run.
       */
      message: string;
      /**
       * The message's length before this delta, in Unicode scalar values.
       */
      offset: number;
      run: RunId;
      /**
       * The last sequence number seen.
       */
      seq: number;
      stream: StreamName;
      /**
       * The text appended.
       */
      text: string;
      thread?: ThreadId;
      type: "agent_message_delta";
    }
  | {
      agent: AgentId;
      /**
       * Identifies the call when the same tool runs more than once; defaults to the name.
       */
      call_id: string | null;
      /**
       * The stream epoch the sequence number belongs to.
       */
      epoch: number;
      event: "tool_executing";
      /**
       * The tool's input.
       */
      input: Json;
      run: RunId;
      /**
       * The last sequence number seen.
       */
      seq: number;
      stream: StreamName;
      thread?: ThreadId;
      /**
       * The tool's name.
       */
      tool: string;
      type: "tool_executing";
    }
  | {
      agent: AgentId;
      /**
       * The call id given in `tool_executing`, if any.
       */
      call_id: string | null;
      /**
       * The stream epoch the sequence number belongs to.
       */
      epoch: number;
      event: "tool_completed";
      /**
       * The tool's output.
       */
      output: Json;
      run: RunId;
      /**
       * The last sequence number seen.
       */
      seq: number;
      stream: StreamName;
      thread?: ThreadId;
      /**
       * The tool's name.
       */
      tool: string;
      type: "tool_completed";
    }
  | {
      agent: AgentId;
      /**
       * The stream epoch the sequence number belongs to.
       */
      epoch: number;
      event: "agent_completed";
      /**
       * The run's result.
       */
      result: Json;
      run: RunId;
      /**
       * The last sequence number seen.
       */
      seq: number;
      stream: StreamName;
      thread?: ThreadId;
      type: "agent_completed";
    }
  | {
      agent: AgentId;
      /**
       * The stream epoch the sequence number belongs to.
       */
      epoch: number;
      /**
       * What went wrong.
       */
      error: string;
      event: "agent_failed";
      run: RunId;
      /**
       * The last sequence number seen.
       */
      seq: number;
      stream: StreamName;
      thread?: ThreadId;
      type: "agent_failed";
    }
  | {
      agent: AgentId;
      /**
       * The stream epoch the sequence number belongs to.
       */
      epoch: number;
      event: "agent_cancelled";
      /**
       * Why, if known.
       */
      reason: string | null;
      run: RunId;
      /**
       * The last sequence number seen.
       */
      seq: number;
      stream: StreamName;
      thread?: ThreadId;
      type: "agent_cancelled";
    }
  | {
      agent: AgentId;
      /**
       * The stream epoch the sequence number belongs to.
       */
      epoch: number;
      run: RunId;
      /**
       * The last sequence number seen.
       */
      seq: number;
      stream: StreamName;
      thread?: ThreadId;
      type: "producer_lost";
    };
/**
 * The agent that produces a run (for display and reports).
 */
export type AgentId = string;

/**
 * A place in a stream: its epoch and the last sequence number seen (0 = nothing yet).
 *
 * Written `<epoch>:<seq>` (`Display` and `FromStr`), the
 * form of the `resume` query parameter a client passes at connect.
 */
export interface Position {
  /**
   * The stream epoch the sequence number belongs to.
   */
  epoch: number;
  /**
   * The last sequence number seen.
   */
  seq: number;
}
/**
 * A client's position on one stream, as sent in `resume`.
 */
export interface StreamPosition {
  /**
   * The stream epoch the sequence number belongs to.
   */
  epoch: number;
  /**
   * The last sequence number seen.
   */
  seq: number;
  /**
   * The stream, as `user:<id>` or `room:<id>`.
   */
  stream: StreamName;
}
/**
 * An application frame a client sends: a `type` the server lists in `[frames] types`, with its `data`; the application answers it with `reply` or `error` when it carries a `ref`.
 */
export interface AppFrame {
  /**
   * The payload, POSTed to the application's backend (`null` when absent).
   */
  data?: Json;
  ref?: Ref;
  /**
   * One of the server's application frame types (never a protocol frame type).
   */
  type: string;
}
