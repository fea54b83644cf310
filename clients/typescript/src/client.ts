/**
 * The client: the public API over one {@link Connection}. It keeps the positions and resumes
 * exactly as docs/PROTOCOL.md §7 says, re-joins rooms after every reconnect, matches answers
 * to requests by `ref`, assembles agent runs, and emits typed events.
 */

import { Connection, environmentWebSocket, type TokenSource, type WebSocketConstructor } from "./connection.js";
import { Emitter } from "./emitter.js";
import { SwitchboardError } from "./errors.js";
import { Positions } from "./positions.js";
import {
  AGENT_FRAME_TYPES,
  type AgentFrame,
  type BoundFrame,
  type ClientFrame,
  type ErrorFrame,
  type GapFrame,
  type JoinedFrame,
  type Json,
  type LeftFrame,
  type MessageFrame,
  type PresenceFrame,
  PROTOCOL_CLIENT_TYPES,
  type RefreshedFrame,
  type ReplyFrame,
  roomStream,
  type ServerFrame,
  type StreamName,
  type UnknownFrame,
  type UnknownRunFrame,
  type WelcomeFrame,
} from "./protocol.js";
import type { BackoffOptions, CloseVerdict } from "./reconnect.js";
import { Deferred, type Pending, Requests } from "./requests.js";
import { RunAssembler, type RunAssemblerOptions, type RunView } from "./runs.js";
import type { PositionStore } from "./storage.js";
import { environmentEventSource, type EventSourceConstructor, type FetchLike, SseSocket } from "./sse.js";
import { globalTimers, type Timers } from "./timers.js";

/** The transport of the connection: a WebSocket, or Server-Sent Events (docs/PROTOCOL.md §10). */
export type Transport = "websocket" | "sse";

/** Where the client stands. */
export type ConnectionState = "idle" | "connecting" | "connected" | "disconnected" | "closed";

/** Options of a {@link SwitchboardClient}. */
export interface ClientOptions {
  /** The server's WebSocket endpoint, e.g. `wss://example.com/ws`. */
  readonly url: string;
  /** A token, or an async function returning one; called at every connection attempt. */
  readonly token: TokenSource;
  /** A thread to bind to at connect (see {@link SwitchboardClient.bind}). */
  readonly thread?: string | null;
  /** The WebSocket constructor. Default: the environment's (browsers); in Node 20, pass `ws`. */
  readonly WebSocket?: WebSocketConstructor;
  /**
   * `"websocket"` (default): WebSocket only. `"sse"`: Server-Sent Events only (`GET /sse` and
   * `POST /sse/{conn}` beside the `url`'s `/ws`). `"auto"`: WebSocket, and Server-Sent Events for
   * every following attempt once a WebSocket failed before it ever opened (an upgrade refused or
   * broken by a proxy); the `transport` event says so.
   */
  readonly transport?: Transport | "auto";
  /**
   * Ask the server to send the frames that are ready together as one WebSocket message holding
   * a JSON array (`batch=1`, docs/PROTOCOL.md §1): a browser pays per message, so a tab keeps up
   * with several times as many frames. The frames are handled one by one, in order, as if they
   * had come alone. Default true; over Server-Sent Events it does not apply.
   */
  readonly batch?: boolean;
  /** The `EventSource` constructor for Server-Sent Events. Default: the environment's; in Node, the `eventsource` package. */
  readonly EventSource?: EventSourceConstructor;
  /** The `fetch` that posts frames over Server-Sent Events. Default: the environment's. */
  readonly fetch?: FetchLike;
  /** Where positions are kept between page loads. Default: nowhere (memory only). */
  readonly store?: PositionStore;
  /** How often changed positions are saved to the store, at most, in ms. Default 1000. */
  readonly persistIntervalMs?: number;
  /** Timeout of every request (`join`, `leave`, `bind`, `publish`, `send`, `ping`), in ms. Default 10 000. */
  readonly requestTimeoutMs?: number;
  /** Timeout of the promise {@link SwitchboardClient.connect} returns, in ms. Default 30 000. */
  readonly connectTimeoutMs?: number;
  /** The reconnect backoff. */
  readonly backoff?: BackoffOptions;
  /** Probe a silent connection with `ping` and replace it if it stays silent. Default true. */
  readonly heartbeat?: boolean;
  /** Options of the run assembler. */
  readonly runs?: RunAssemblerOptions;
  /** The clock (tests). */
  readonly timers?: Timers;
  /** The jitter's random source in [0, 1) (tests). */
  readonly random?: () => number;
}

/** Options of one request. */
export interface RequestOptions {
  /** Overrides the client's `requestTimeoutMs`. */
  readonly timeoutMs?: number;
}

/** Options of {@link SwitchboardClient.join}. */
export interface JoinOptions extends RequestOptions {
  /**
   * Watch the room's presence (`true`): `joined` lists the members, `presence` events follow,
   * and {@link SwitchboardClient.members} keeps the set. `false`: not even where the server's
   * settings would. Absent: as the server's settings say. Kept for the rejoins after reconnects.
   */
  readonly presence?: boolean;
}

/** Options of {@link SwitchboardClient.send}. */
export interface SendOptions extends RequestOptions {
  /**
   * Wait for the application's `reply` (default `true`): the frame carries a `ref`, and the
   * server answers it with exactly one `reply` or `error` (docs/PROTOCOL.md §2).
   *
   * With `false` (fire and forget) the frame is sent without `ref`: the application's answer is
   * not sent back, and the promise resolves with `undefined` once the server has read the frame
   * (a `ping` fence). A refusal then arrives without `ref`, as an `error` event: the server's
   * (`unknown_type`), or `backend_unavailable` and the backend's own code when the backend did
   * not take the frame.
   */
  readonly awaitReply?: boolean;
}

/** The event `disconnected`. */
export interface DisconnectedEvent {
  /** The close code (1006: no close frame; 0: no socket could be opened). */
  readonly code: number;
  /** The close code's label (§5), or the reason the peer gave. */
  readonly label: string;
  /** Whether the client will reconnect by itself. */
  readonly reconnect: boolean;
  /** In how many ms, when it will. */
  readonly delayMs: number | null;
}

/** The client's events, by name. */
export interface ClientEvents {
  /** Every change of {@link SwitchboardClient.state}. */
  state: ConnectionState;
  /** An attempt to connect begins (1 after a working connection, then 2, 3, ...). */
  connecting: { readonly attempt: number };
  /** `welcome` arrived; `resumed` when the user-stream position was passed at connect. */
  connected: { readonly welcome: WelcomeFrame; readonly resumed: boolean };
  /** The connection closed. */
  disconnected: DisconnectedEvent;
  /** Messages `from`..`to` of `stream` are lost (§3 "gap"). */
  gap: GapFrame;
  /** A problem not tied to a request: an unsolicited `error` frame, a socket error, a bad frame. */
  error: SwitchboardError;
  /** An application message. */
  message: MessageFrame;
  /** An agent-run frame, as received. */
  agent: AgentFrame;
  /** A run's assembled state changed. */
  run: RunView;
  /** A `joined` frame (answers, and joins made by the application). */
  joined: JoinedFrame;
  /** A `left` frame (answers, and removals by the application). */
  left: LeftFrame;
  /** A `bound` frame (answers, and rebinds by the application). */
  bound: BoundFrame;
  /** The server accepted a fresh token (the answer to its `refresh`, or the application's). */
  refreshed: RefreshedFrame;
  /** A user arrived in or left a room this client watches (see {@link JoinOptions.presence}). */
  presence: PresenceFrame;
  /** Every frame received, before the client handles it (frames of unknown types too). */
  frame: ServerFrame | UnknownFrame;
  /** The following attempts use this transport (with `transport: "auto"`, after a failed WebSocket). */
  transport: Transport;
}

interface RoomState {
  /** In the room on the current connection. */
  joined: JoinedFrame | null;
  /** The `ref` of the `join` in flight. */
  joining: number | null;
  waiters: Deferred<JoinedFrame>[];
  /** The `presence` of the join, repeated at every rejoin. */
  presence?: boolean;
  /** The users in the room, for a member that watches presence under the server's cap. */
  members: Set<string> | null;
}

/** A Switchboard client. */
export class SwitchboardClient extends Emitter<ClientEvents> {
  /** The agent runs seen on this client, assembled. */
  readonly runs: RunAssembler;
  private readonly connection: Connection;
  private readonly token: TokenSource;
  private readonly requests = new Requests();
  private readonly rooms = new Map<string, RoomState>();
  private readonly timers: Timers;
  private readonly store: PositionStore | undefined;
  private readonly persistIntervalMs: number;
  private readonly requestTimeoutMs: number;
  private readonly connectTimeoutMs: number;
  private positions = new Positions();
  private loaded = false;
  private thread: string | null;
  private bindWaiters: Deferred<void>[] = [];
  private connectWaiters: Deferred<WelcomeFrame>[] = [];
  private current: WelcomeFrame | null = null;
  private resumeSent = false;
  private persistTimer: unknown = undefined;
  private stateNow: ConnectionState = "idle";
  private transportNow: Transport;
  /** Saves the positions when the page goes away (a reload, a closed tab). */
  private readonly onPageHide = (): void => this.persistNow();

  constructor(options: ClientOptions) {
    super();
    const transport = options.transport ?? "websocket";
    const sse = { EventSource: options.EventSource, fetch: options.fetch };
    if (transport !== "websocket" && (sse.EventSource ?? environmentEventSource()) === undefined) {
      throw new TypeError("no EventSource in this environment: pass one as `EventSource` (in Node, the `eventsource` package)");
    }
    const Sse: WebSocketConstructor = class extends SseSocket {
      constructor(url: string) {
        super(url, sse);
      }
    };
    const WebSocket = transport === "sse" ? Sse : (options.WebSocket ?? environmentWebSocket());
    if (WebSocket === undefined) {
      throw new TypeError("no WebSocket in this environment: pass one as `WebSocket` (in Node 20, the `ws` package)");
    }
    this.transportNow = transport === "sse" ? "sse" : "websocket";
    this.timers = options.timers ?? globalTimers;
    this.store = options.store;
    this.persistIntervalMs = options.persistIntervalMs ?? 1000;
    this.requestTimeoutMs = options.requestTimeoutMs ?? 10_000;
    this.connectTimeoutMs = options.connectTimeoutMs ?? 30_000;
    this.thread = options.thread ?? null;
    this.token = options.token;
    this.runs = new RunAssembler(options.runs);
    this.connection = new Connection(
      {
        url: options.url,
        token: options.token,
        WebSocket,
        fallback: transport === "auto" ? Sse : null,
        backoff: options.backoff ?? {},
        batch: options.batch ?? true,
        heartbeat: options.heartbeat ?? true,
        timers: this.timers,
        random: options.random ?? Math.random,
      },
      {
        handshake: () => this.handshake(),
        connecting: (attempt) => this.onConnecting(attempt),
        frame: (frame) => this.dispatch(frame as ServerFrame | UnknownFrame),
        closed: (verdict, delayMs) => this.onClosed(verdict, delayMs),
        error: (error) => this.emit("error", error),
        fellBack: () => {
          this.transportNow = "sse";
          this.emit("transport", "sse");
        },
      },
    );
  }

  /** The transport of the current (or next) connection attempt. */
  get transport(): Transport {
    return this.transportNow;
  }

  /** Where the client stands. */
  get state(): ConnectionState {
    return this.stateNow;
  }

  /** The `welcome` of the current connection, while connected. */
  get welcome(): WelcomeFrame | null {
    return this.current;
  }

  /** The last position received on `stream` (`user:<id>` or `room:<id>`), if any. */
  position(stream: StreamName): { readonly epoch: number; readonly seq: number } | undefined {
    return this.positions.get(stream);
  }

  /**
   * Connect (and keep reconnecting until {@link close} or a close code that forbids it).
   * Resolves at the next `welcome`; rejects if the client stops, or after `connectTimeoutMs`
   * (the client keeps trying).
   */
  connect(): Promise<WelcomeFrame> {
    const waiter = new Deferred<WelcomeFrame>(this.timers, this.connectTimeoutMs, "connect", () => {
      this.connectWaiters = this.connectWaiters.filter((w) => w !== waiter);
    });
    if (this.current !== null) {
      waiter.resolve(this.current);
      return waiter.promise;
    }
    this.connectWaiters.push(waiter);
    if (!this.connection.active) void this.begin();
    return waiter.promise;
  }

  /**
   * Close the connection with 1000 and stop reconnecting. Rooms, the thread and positions are
   * kept: a later {@link connect} resumes. Pending requests are rejected with `closed`.
   */
  close(): void {
    pageEvents()?.removeEventListener("pagehide", this.onPageHide);
    this.connection.stop(1000, "normal");
    // No socket was open (idle, waiting for a token or for the next attempt): closed all the same.
    if (this.stateNow !== "closed") this.onClosed({ code: 1000, label: "normal", rule: "never" }, null);
  }

  /**
   * Join `room`. Resolves with `joined` (the room's head); the messages missed since the
   * position held for it, if any, follow as `message` events. The room is joined again after
   * every reconnect, with `since` (§7 step 3). Called while disconnected, the join is made at
   * the next connection. Rejects with the server's code (`forbidden`, `too_many_rooms`,
   * `room_full`); the room is then not joined again.
   */
  join(room: string, options: JoinOptions = {}): Promise<JoinedFrame> {
    let state = this.rooms.get(room);
    if (state?.joined) return Promise.resolve(state.joined);
    if (state === undefined) {
      state = { joined: null, joining: null, waiters: [], members: null };
      this.rooms.set(room, state);
    }
    if (options.presence !== undefined) state.presence = options.presence;
    const owner = state;
    const waiter: Deferred<JoinedFrame> = new Deferred(this.timers, this.timeout(options), `join ${room}`, () => {
      owner.waiters = owner.waiters.filter((w) => w !== waiter);
    });
    owner.waiters.push(waiter);
    this.sendJoin(room, owner);
    return waiter.promise;
  }

  /**
   * The users in `room` now, for a room joined with `presence` (the `joined` list, kept up to
   * date by `presence` events); `undefined` while not joined, when not watching, or when the
   * room holds more users than the server lists (`joined` then has only `count`).
   */
  members(room: string): ReadonlySet<string> | undefined {
    return this.rooms.get(room)?.members ?? undefined;
  }

  /**
   * Leave `room`: it is not joined again, and its position is forgotten. Resolves at `left`;
   * rejects with `not_member` if the connection is not in it. Resolves at once when
   * disconnected (the next connection does not join it).
   */
  leave(room: string, options: RequestOptions = {}): Promise<void> {
    const state = this.rooms.get(room);
    this.rooms.delete(room);
    this.positions.forget(roomStream(room));
    const waiter = new Deferred<void>(this.timers, this.timeout(options), `leave ${room}`);
    if (this.current === null) {
      for (const w of state?.waiters ?? []) w.reject(new SwitchboardError("closed", `left ${room} before joining it`));
      waiter.resolve();
      return waiter.promise;
    }
    const ref = this.requests.ref();
    this.connection.send({ type: "leave", room, ref });
    this.requests.expect(ref, {
      answer: () => waiter.resolve(),
      fail: (error) => waiter.reject(error),
      lost: () => waiter.resolve(),
    });
    return waiter.promise;
  }

  /**
   * Bind to `thread` (`null`: unbind). Resolves at `bound`; agent runs in progress on the
   * thread follow (§6 "Late joiners"). The thread is passed at every later connect. Called
   * while disconnected, resolves at the next `welcome`.
   */
  bind(thread: string | null, options: RequestOptions = {}): Promise<void> {
    this.thread = thread;
    const waiter: Deferred<void> = new Deferred(this.timers, this.timeout(options), "bind", () => {
      this.bindWaiters = this.bindWaiters.filter((w) => w !== waiter);
    });
    if (this.current === null) {
      this.bindWaiters.push(waiter);
      return waiter.promise;
    }
    const ref = this.requests.ref();
    this.connection.send({ type: "bind", thread, ref });
    this.requests.expect(ref, {
      answer: () => waiter.resolve(),
      fail: (error) => waiter.reject(error),
      // The next connection passes the thread at connect: resolved at its `welcome`.
      lost: () => this.bindWaiters.push(waiter),
    });
    return waiter.promise;
  }

  /**
   * Publish to the other members of `room` (the sender does not receive it). Resolves once the
   * server has read it without an error (a fence, see requests.ts); rejects with `not_member`
   * (not in the room), `forbidden` (the token does not allow publishing there), with
   * `disconnected` if the connection closed first (it may or may not have been published), or
   * with `not_connected` at once when there is no connection. Not retried.
   */
  publish(room: string, event: string, data: Json = null, options: RequestOptions = {}): Promise<void> {
    return this.fenced(`publish to ${room}`, options, (ref) => ({ type: "publish", room, event, data, ref }));
  }

  /**
   * Send an application frame of `type` (one of the server's `[frames] types`), which the
   * server hands to the application (the standalone server POSTs it to its backend's webhook).
   * By default resolves with the `data` of the application's `reply`; rejects with a
   * {@link SwitchboardError} whose `code` is the application's own (e.g. `quota_exceeded`),
   * `backend_error`, `backend_unavailable` (the backend did not take it: send it again later),
   * the server's (`unknown_type` if it does not accept the type), or the SDK's (`timeout`,
   * `disconnected`, `not_connected`). See {@link SendOptions.awaitReply} for fire and forget.
   */
  send(type: string, data?: Json, options?: SendOptions & { readonly awaitReply?: true }): Promise<Json>;
  send(type: string, data: Json, options: SendOptions & { readonly awaitReply: false }): Promise<undefined>;
  send(type: string, data?: Json, options?: SendOptions): Promise<Json | undefined>;
  send(type: string, data: Json = null, options: SendOptions = {}): Promise<Json | undefined> {
    if (PROTOCOL_CLIENT_TYPES.has(type)) {
      return Promise.reject(new SwitchboardError("invalid_frame", `"${type}" is a protocol frame: use its own method`));
    }
    if (options.awaitReply === false) {
      if (this.current === null) return Promise.reject(new SwitchboardError("not_connected", `send ${type}: not connected`));
      this.connection.send({ type, data });
      return this.ping(options).then(() => undefined);
    }
    return this.request<Json>(`send ${type}`, options, (ref) => ({ type, data, ref }), (frame) => (frame as ReplyFrame).data);
  }

  /**
   * Ask the producer of `run`, one of this user's runs in progress, to cancel it. Resolves
   * when the producer's channel heard the request; the run then ends as the producer decides
   * (`agent_cancelled` when it confirms, seen on {@link SwitchboardClient.runs}). Rejects with
   * `unknown_run` (no such run of this user in progress: another user's run is answered alike),
   * `no_producer` (the run's producer has no channel that could hear it), or
   * `backend_unavailable` (its channel has too many cancels waiting).
   */
  cancel(run: string, options: RequestOptions = {}): Promise<void> {
    return this.request(`cancel ${run}`, options, (ref) => ({ type: "cancel", run, ref }), () => undefined);
  }

  /** Ping the server; resolves with the round trip in ms. Every frame sent before is read by then. */
  ping(options: RequestOptions = {}): Promise<number> {
    const sent = this.timers.now();
    return this.request("ping", options, (ref) => ({ type: "ping", ref }), () => this.timers.now() - sent);
  }

  // -- connecting -------------------------------------------------------------------------

  private async begin(): Promise<void> {
    if (!this.loaded && this.store !== undefined) {
      this.loaded = true;
      try {
        this.positions = Positions.from(await this.store.load());
      } catch (cause) {
        this.emit("error", new SwitchboardError("store", "the position store could not be read", { cause }));
      }
    }
    this.loaded = true;
    if (this.store !== undefined) pageEvents()?.addEventListener("pagehide", this.onPageHide);
    this.connection.start();
  }

  private handshake(): { thread: string | null; resume: { epoch: number; seq: number } | null } {
    const user = this.positions.owner;
    const resume = user === null ? undefined : this.positions.get(`user:${user}`);
    this.resumeSent = resume !== undefined;
    return { thread: this.thread, resume: resume ?? null };
  }

  private onConnecting(attempt: number): void {
    this.setState("connecting");
    this.emit("connecting", { attempt });
  }

  private onWelcome(welcome: WelcomeFrame): void {
    if (this.positions.claim(welcome.user) && this.resumeSent) {
      // The position passed at connect was another user's: what follows is not a replay of
      // this user's stream. Start again without it.
      this.persistNow();
      this.connection.restart();
      return;
    }
    this.current = welcome;
    this.connection.welcomed(welcome.heartbeat_ms);
    this.setState("connected");
    const binds = this.bindWaiters;
    this.bindWaiters = [];
    for (const waiter of binds) waiter.resolve();
    if (!this.resumeSent) this.takeHeadAfterReplay(welcome);
    for (const [room, state] of this.rooms) this.sendJoin(room, state);
    this.emit("connected", { welcome, resumed: this.resumeSent });
    const waiters = this.connectWaiters;
    this.connectWaiters = [];
    for (const waiter of waiters) waiter.resolve(welcome);
  }

  /**
   * A connection opened without a user-stream position: once a `ping` sent after `welcome` is
   * answered, everything replayed at open (pending messages, runs in progress: all at or below
   * the welcome's head) has arrived, and the head becomes the position (§7 step 2). Without
   * it, a client that received nothing on its user stream would reconnect without a position
   * and miss what reached its old, dying connection.
   */
  private takeHeadAfterReplay(welcome: WelcomeFrame): void {
    const ref = this.requests.ref();
    this.connection.send({ type: "ping", ref });
    this.requests.expect(ref, {
      answer: () => this.observe(welcome.stream, welcome.epoch, welcome.seq),
      fail: () => undefined,
      lost: () => undefined,
    });
  }

  private onClosed(verdict: CloseVerdict, delayMs: number | null): void {
    this.current = null;
    this.requests.lose();
    for (const state of this.rooms.values()) {
      state.joined = null;
      state.joining = null;
      state.members = null;
    }
    this.persistNow();
    const reconnect = delayMs !== null;
    this.setState(reconnect ? "disconnected" : "closed");
    this.emit("disconnected", { code: verdict.code, label: verdict.label, reconnect, delayMs });
    if (!reconnect) {
      const error = new SwitchboardError("closed", `the connection closed: ${verdict.code} ${verdict.label}`);
      for (const state of this.rooms.values()) for (const waiter of state.waiters) waiter.reject(error);
      for (const waiter of [...this.bindWaiters, ...this.connectWaiters]) waiter.reject(error);
    }
  }

  // -- frames -------------------------------------------------------------------------------

  private dispatch(frame: ServerFrame | UnknownFrame): void {
    if (this.has("frame")) this.emit("frame", frame);
    const known = frame as ServerFrame;
    switch (known.type) {
      case "welcome":
        return this.onWelcome(known);
      case "message":
        if (known.stream !== undefined && known.epoch !== undefined && known.seq !== undefined) {
          this.observe(known.stream, known.epoch, known.seq);
        }
        return this.emit("message", known);
      case "joined":
        if (!this.requests.settle(known.ref, known) && known.ref === undefined) {
          // The application put this connection in the room: keep it across reconnects.
          const state = this.rooms.get(known.room) ?? { joined: null, joining: null, waiters: [], members: null };
          state.joined = known;
          state.members = roster(known);
          this.rooms.set(known.room, state);
        }
        return this.emit("joined", known);
      case "presence": {
        const members = this.rooms.get(known.room)?.members;
        if (known.event === "join") members?.add(known.user);
        else members?.delete(known.user);
        return this.emit("presence", known);
      }
      case "left":
        if (!this.requests.settle(known.ref, known) && known.ref === undefined) {
          this.rooms.delete(known.room);
          this.positions.forget(roomStream(known.room));
        }
        return this.emit("left", known);
      case "bound":
        if (!this.requests.settle(known.ref, known) && known.ref === undefined) this.thread = known.thread;
        return this.emit("bound", known);
      case "pong":
      case "resumed":
      case "reply":
        this.requests.settle(known.ref, known);
        return;
      case "gap":
        this.positions.skip(known);
        this.schedulePersist();
        return this.emit("gap", known);
      case "error":
        return this.onError(known);
      case "refresh":
        return void this.refresh();
      case "refreshed":
        if (!this.requests.settle(known.ref, known)) this.emit("refreshed", known);
        return;
      default:
        if (AGENT_FRAME_TYPES.has(known.type) || this.runs.handles(known.type)) this.onRunFrame(frame as AgentFrame);
    }
  }

  private onRunFrame(frame: AgentFrame | UnknownRunFrame): void {
    if (typeof frame.run !== "string" || typeof frame.stream !== "string") return;
    this.observe(frame.stream, frame.epoch, frame.seq);
    if (AGENT_FRAME_TYPES.has(frame.type)) this.emit("agent", frame as AgentFrame);
    const view = this.runs.apply(frame);
    if (view !== undefined) this.emit("run", view);
  }

  private onError(frame: ErrorFrame): void {
    const reason = "reason" in frame ? frame.reason : undefined;
    const message = reason === undefined ? frame.message : `${frame.message} (${reason})`;
    const error = new SwitchboardError(frame.code, message);
    if (this.requests.settle(frame.ref, frame, error)) return;
    if (frame.code === "rate_limited") {
      this.requests.failFenced(
        new SwitchboardError("rate_limited", "the server dropped a frame sent about then: this one may not have arrived"),
      );
    }
    this.emit("error", error);
  }

  /**
   * The server asks for a fresh token (`refresh`, §3): call the provider and send it. The answer
   * is `refreshed` (emitted), or an `error` (emitted: the connection is then closed with 4005 at
   * its old expiry, and the client reconnects at once with a token from the provider).
   */
  private async refresh(): Promise<void> {
    const connection = this.current;
    try {
      const token = typeof this.token === "string" ? this.token : await this.token();
      if (this.current !== connection || connection === null) return;
      const ref = this.requests.ref();
      this.requests.expect(ref, {
        answer: (frame) => this.emit("refreshed", frame as RefreshedFrame),
        fail: (error) => this.emit("error", error),
        lost: () => undefined,
      });
      this.connection.send({ type: "refresh", token, ref });
    } catch (cause) {
      this.emit("error", new SwitchboardError("token", "the token provider failed", { cause }));
    }
  }

  // -- requests -----------------------------------------------------------------------------

  private sendJoin(room: string, state: RoomState): void {
    if (this.current === null || state.joining !== null || state.joined !== null) return;
    const since = this.positions.get(roomStream(room));
    const ref = this.requests.ref();
    state.joining = ref;
    const presence = state.presence === undefined ? {} : { presence: state.presence };
    this.connection.send(since === undefined ? { type: "join", room, ...presence, ref } : { type: "join", room, since, ...presence, ref });
    this.requests.expect(ref, {
      answer: (frame) => {
        const joined = frame as JoinedFrame;
        state.joining = null;
        state.joined = joined;
        state.members = roster(joined);
        // Nothing older than the head is replayed after a join without `since` (§7, last
        // paragraph): a safe position, so messages published while disconnected are replayed.
        if (since === undefined) this.observe(joined.stream, joined.epoch, joined.seq);
        const waiters = state.waiters;
        state.waiters = [];
        for (const waiter of waiters) waiter.resolve(joined);
      },
      fail: (error) => {
        state.joining = null;
        if (error.code === "already_live" && since !== undefined) return this.rejoin(room, state);
        if (this.rooms.get(room) === state) this.rooms.delete(room);
        if (state.waiters.length === 0) this.emit("error", error);
        for (const waiter of state.waiters) waiter.reject(error);
      },
      lost: () => {
        state.joining = null;
      },
    });
  }

  /** `already_live` for a room: leave it and join it again with `since` (§7 step 6). */
  private rejoin(room: string, state: RoomState): void {
    const ref = this.requests.ref();
    this.connection.send({ type: "leave", room, ref });
    const again = (): void => this.sendJoin(room, state);
    this.requests.expect(ref, { answer: again, fail: again, lost: () => undefined });
  }

  /** A frame answered by a frame echoing its `ref`. */
  private request<T>(
    what: string,
    options: RequestOptions,
    frame: (ref: number) => ClientFrame,
    value: (answer: { readonly type: string }) => T,
  ): Promise<T> {
    if (this.current === null) return Promise.reject(new SwitchboardError("not_connected", `${what}: not connected`));
    const ref = this.requests.ref();
    const waiter = new Deferred<T>(this.timers, this.timeout(options), what);
    this.connection.send(frame(ref));
    this.requests.expect(ref, this.settles(waiter, value, what));
    return waiter.promise;
  }

  /** A frame without an answer on success: settled by a fence. */
  private fenced(what: string, options: RequestOptions, frame: (ref: number) => ClientFrame): Promise<void> {
    if (this.current === null) return Promise.reject(new SwitchboardError("not_connected", `${what}: not connected`));
    const ref = this.requests.ref();
    const waiter = new Deferred<void>(this.timers, this.timeout(options), what);
    this.connection.send(frame(ref));
    if (this.requests.fence(ref, this.settles(waiter, () => undefined, what))) {
      const connection = this.current;
      queueMicrotask(() => {
        if (this.current === connection) this.connection.send({ type: "ping", ref: this.requests.closeFence() });
      });
    }
    return waiter.promise;
  }

  private settles<T>(waiter: Deferred<T>, value: (answer: { readonly type: string }) => T, what: string): Pending {
    return {
      answer: (frame) => waiter.resolve(value(frame)),
      fail: (error) => waiter.reject(error),
      lost: () => waiter.reject(new SwitchboardError("disconnected", `${what}: the connection closed before the answer`)),
    };
  }

  private timeout(options: RequestOptions): number {
    return options.timeoutMs ?? this.requestTimeoutMs;
  }

  // -- positions ----------------------------------------------------------------------------

  private observe(stream: StreamName, epoch: number, seq: number): void {
    if (this.positions.observe(stream, epoch, seq)) this.schedulePersist();
  }

  private schedulePersist(): void {
    if (this.store === undefined || this.persistTimer !== undefined) return;
    this.persistTimer = this.timers.setTimeout(() => this.persistNow(), this.persistIntervalMs);
  }

  /** Save the positions now if they changed. */
  private persistNow(): void {
    if (this.persistTimer !== undefined) this.timers.clearTimeout(this.persistTimer);
    this.persistTimer = undefined;
    if (this.store === undefined || !this.positions.takeChanged()) return;
    try {
      const saved = this.store.save(this.positions.snapshot());
      if (saved instanceof Promise) saved.catch((cause: unknown) => this.storeFailed(cause));
    } catch (cause) {
      this.storeFailed(cause);
    }
  }

  private storeFailed(cause: unknown): void {
    this.emit("error", new SwitchboardError("store", "the position store could not save", { cause }));
  }

  private setState(state: ConnectionState): void {
    if (this.stateNow === state) return;
    this.stateNow = state;
    this.emit("state", state);
  }
}

/** The page's events (`window`), in a browser. */
function pageEvents():
  | { addEventListener(type: string, listener: () => void): void; removeEventListener(type: string, listener: () => void): void }
  | undefined {
  const page = globalThis as { addEventListener?: unknown; removeEventListener?: unknown };
  return typeof page.addEventListener === "function" && typeof page.removeEventListener === "function"
    ? (page as ReturnType<typeof pageEvents>)
    : undefined;
}

/** The member set a `joined` frame lists, if it lists one. */
function roster(joined: JoinedFrame): Set<string> | null {
  return joined.members === undefined ? null : new Set(joined.members);
}
