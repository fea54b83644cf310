/**
 * The connection: one WebSocket at a time, opened with a fresh token at every attempt, parsed
 * into frames (a message holding a JSON array is several frames, in order: docs/PROTOCOL.md §1,
 * "Batched messages"), closed and reopened by the close code's rule (docs/PROTOCOL.md §5) with
 * exponential backoff and full jitter, and watched for silence.
 *
 * It knows nothing of rooms, positions or requests: the client tells it what to put in the
 * handshake and handles the frames.
 */

import { SwitchboardError } from "./errors.js";
import { type ClientFrame, handshakeUrl, type Position } from "./protocol.js";
import { Backoff, type BackoffOptions, type CloseVerdict, classifyClose } from "./reconnect.js";
import type { Timers } from "./timers.js";

/** An `open`/`error` event of a WebSocket (unused fields). */
export type SocketEvent = object;

/** A `message` event of a WebSocket: text frames carry a string. */
export interface SocketMessageEvent {
  readonly data: unknown;
}

/** A `close` event of a WebSocket. */
export interface SocketCloseEvent {
  readonly code: number;
  readonly reason: string;
}

/**
 * What the client needs of a WebSocket: the browser's `WebSocket` and the `ws` package's both
 * qualify.
 */
export interface WebSocketLike {
  send(data: string): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: "message", listener: (event: SocketMessageEvent) => void): void;
  addEventListener(type: "close", listener: (event: SocketCloseEvent) => void): void;
  addEventListener(type: "open" | "error", listener: (event: SocketEvent) => void): void;
}

/** A WebSocket constructor (`globalThis.WebSocket`, or `ws`'s default export in Node). */
export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** A token, or a function that returns one (called at every connection attempt). */
export type TokenSource = string | (() => string | Promise<string>);

/** How the connection is set up. */
export interface ConnectionSettings {
  readonly url: string;
  readonly token: TokenSource;
  readonly WebSocket: WebSocketConstructor;
  /**
   * The socket to use instead once `WebSocket` failed before it ever opened (an upgrade refused
   * or broken by a proxy); `null`: none.
   */
  readonly fallback: WebSocketConstructor | null;
  readonly backoff: BackoffOptions;
  /** Ask the server for several frames per message when they are ready together (`batch=1`). */
  readonly batch: boolean;
  readonly heartbeat: boolean;
  readonly timers: Timers;
  readonly random: () => number;
}

/** What the connection tells its owner. */
export interface ConnectionHooks {
  /** What the next handshake carries. */
  handshake(): { readonly thread: string | null; readonly resume: Position | null };
  /** An attempt begins. */
  connecting(attempt: number): void;
  /** A frame arrived: a JSON object with a string `type`. */
  frame(frame: { readonly type: string }): void;
  /** The socket closed: reconnecting after `delayMs`, or not at all (`null`). */
  closed(verdict: CloseVerdict, delayMs: number | null): void;
  /** Something went wrong that does not close the connection by itself. */
  error(error: SwitchboardError): void;
  /** The following attempts use the fallback socket. */
  fellBack(): void;
}

/** The close a silent connection gets from the client's side (§1 "Heartbeat"). */
const SILENT: CloseVerdict = { code: 4000, label: "heartbeat_timeout", rule: "at_once" };

/** The WebSocket of the environment, if it has one (browsers, Node ≥ 22). */
export function environmentWebSocket(): WebSocketConstructor | undefined {
  return (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
}

/** One WebSocket at a time, reopened by the close code's rule. */
export class Connection {
  private readonly backoff: Backoff;
  private socket: WebSocketLike | null = null;
  /** Increases with every socket: events of an older one are ignored. */
  private generation = 0;
  private attempt = 0;
  private running = false;
  private reconnectTimer: unknown = undefined;
  private heartbeatTimer: unknown = undefined;
  private heard = false;
  private probed = false;
  /** The socket constructor of the next attempts. */
  private Socket: WebSocketConstructor;
  /** Whether a socket of the first constructor ever opened: then it is never given up. */
  private everOpened = false;

  constructor(
    private readonly settings: ConnectionSettings,
    private readonly hooks: ConnectionHooks,
  ) {
    this.backoff = new Backoff(settings.backoff, settings.random);
    this.Socket = settings.WebSocket;
  }

  /** Whether it is trying to be connected (started and not stopped). */
  get active(): boolean {
    return this.running;
  }

  /** Start connecting, if not already. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.backoff.reset();
    void this.open();
  }

  /** Close the socket with `code` and stop reconnecting. */
  stop(code = 1000, label = "normal"): void {
    this.running = false;
    this.cancelReconnect();
    this.drop(code, label);
  }

  /** Close the socket and open a new one (at once, unless attempts failed already). */
  restart(): void {
    this.drop(1000, "normal");
  }

  /** `welcome` arrived: the next close starts the backoff schedule again; watch for silence. */
  welcomed(heartbeatMs: number): void {
    this.attempt = 0;
    this.backoff.reset();
    if (this.settings.heartbeat && heartbeatMs > 0) this.watch(heartbeatMs);
  }

  /** Write a frame; false if there is no socket to write it to. */
  send(frame: ClientFrame): boolean {
    if (this.socket === null) return false;
    try {
      this.socket.send(JSON.stringify(frame));
      return true;
    } catch (cause) {
      this.hooks.error(new SwitchboardError("socket", "the WebSocket refused a frame", { cause }));
      return false;
    }
  }

  private async open(): Promise<void> {
    const generation = ++this.generation;
    this.attempt += 1;
    this.hooks.connecting(this.attempt);
    let token: string;
    try {
      token = typeof this.settings.token === "string" ? this.settings.token : await this.settings.token();
    } catch (cause) {
      if (generation !== this.generation || !this.running) return;
      this.hooks.error(new SwitchboardError("token", "the token provider failed", { cause }));
      this.closed(generation, { code: 0, label: "token", rule: "backoff" });
      return;
    }
    if (generation !== this.generation || !this.running) return;
    const handshake = this.hooks.handshake();
    let socket: WebSocketLike;
    try {
      const params = { token, ...handshake, batch: this.settings.batch };
      socket = new this.Socket(handshakeUrl(this.settings.url, params));
    } catch (cause) {
      this.hooks.error(new SwitchboardError("socket", "the WebSocket could not be created", { cause }));
      this.fallBackIfNeverOpened();
      this.closed(generation, { code: 0, label: "socket", rule: "backoff" });
      return;
    }
    this.socket = socket;
    socket.addEventListener("open", () => {
      if (generation === this.generation) this.everOpened = true;
    });
    socket.addEventListener("message", (event) => {
      if (generation === this.generation) this.receive(generation, event.data);
    });
    socket.addEventListener("close", (event) => {
      if (generation !== this.generation) return;
      this.fallBackIfNeverOpened();
      this.closed(generation, classifyClose(event.code, event.reason));
    });
    socket.addEventListener("error", () => {
      if (generation === this.generation) this.hooks.error(new SwitchboardError("socket", "WebSocket error"));
    });
  }

  /** The first socket failed and none of its kind ever opened: use the fallback from now on. */
  private fallBackIfNeverOpened(): void {
    const fallback = this.settings.fallback;
    if (this.everOpened || fallback === null || this.Socket === fallback) return;
    this.Socket = fallback;
    this.hooks.fellBack();
  }

  /**
   * Hand the frames of a text message of the socket of `generation` over, parsed: the message
   * itself, or each element of a JSON array in order (while that socket is still the current
   * one: a frame may close it). Anything else, an empty array too, is reported and skipped.
   */
  private receive(generation: number, data: unknown): void {
    this.heard = true;
    if (typeof data !== "string") {
      this.hooks.error(new SwitchboardError("bad_frame", "a frame that is not text"));
      return;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(data);
    } catch {
      this.hooks.error(new SwitchboardError("bad_frame", "a frame that is not JSON"));
      return;
    }
    if (!Array.isArray(parsed)) {
      this.deliver(parsed);
      return;
    }
    if (parsed.length === 0) {
      this.hooks.error(new SwitchboardError("bad_frame", "a batch without frames"));
      return;
    }
    for (const frame of parsed as unknown[]) {
      if (generation !== this.generation) return;
      this.deliver(frame);
    }
  }

  /** Hand one parsed frame over if it is an object with a string `type`; else report it. */
  private deliver(frame: unknown): void {
    if (typeof frame !== "object" || frame === null || typeof (frame as { type?: unknown }).type !== "string") {
      this.hooks.error(new SwitchboardError("bad_frame", "a frame without a string `type`"));
      return;
    }
    this.hooks.frame(frame as { readonly type: string });
  }

  /** The socket of `generation` closed (or failed before it opened). */
  private closed(generation: number, verdict: CloseVerdict): void {
    if (generation !== this.generation) return;
    this.generation += 1;
    this.socket = null;
    this.unwatch();
    if (!this.running || verdict.rule === "never") {
      this.running = false;
      this.hooks.closed(verdict, null);
      return;
    }
    const delay = this.backoff.next(verdict.rule);
    this.hooks.closed(verdict, delay);
    this.reconnectTimer = this.settings.timers.setTimeout(() => {
      this.reconnectTimer = undefined;
      if (this.running) void this.open();
    }, delay);
  }

  /** Close the current socket from this side, without waiting for its close event. */
  private drop(code: number, label: string): void {
    const socket = this.socket;
    if (socket === null) {
      this.generation += 1;
      return;
    }
    this.closed(this.generation, { code, label, rule: this.running ? "at_once" : "never" });
    try {
      socket.close(code, label);
    } catch {
      // Already closing: nothing more to do.
    }
  }

  private cancelReconnect(): void {
    if (this.reconnectTimer !== undefined) this.settings.timers.clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
  }

  /**
   * Every `intervalMs`: if nothing arrived since the last tick, send a `ping`; if nothing
   * arrived by the next tick either, the connection is dead (a half-open TCP connection a
   * browser cannot see): close it and reconnect at once.
   */
  private watch(intervalMs: number): void {
    this.unwatch();
    this.heard = true;
    this.probed = false;
    const tick = (): void => {
      if (this.heard) {
        this.heard = false;
        this.probed = false;
      } else if (!this.probed) {
        this.probed = true;
        this.send({ type: "ping" });
      } else {
        this.heartbeatTimer = undefined;
        const socket = this.socket;
        this.closed(this.generation, SILENT);
        socket?.close(SILENT.code, SILENT.label);
        return;
      }
      this.heartbeatTimer = this.settings.timers.setTimeout(tick, intervalMs);
    };
    this.heartbeatTimer = this.settings.timers.setTimeout(tick, intervalMs);
  }

  private unwatch(): void {
    if (this.heartbeatTimer !== undefined) this.settings.timers.clearTimeout(this.heartbeatTimer);
    this.heartbeatTimer = undefined;
  }
}
