/**
 * Test doubles for unit tests: a manual clock and a scripted WebSocket that records what the
 * client sends and lets the test play the server.
 */

import type {
  ClientFrame,
  SocketCloseEvent,
  SocketEvent,
  SocketMessageEvent,
  Timers,
  WebSocketConstructor,
  WebSocketLike,
} from "../../src/index.js";

/** A clock that moves only when told to. */
export class ManualTimers implements Timers {
  private time = 0;
  private nextId = 1;
  private readonly due = new Map<number, { at: number; callback: () => void }>();

  setTimeout(callback: () => void, ms: number): unknown {
    const id = this.nextId++;
    this.due.set(id, { at: this.time + Math.max(0, ms), callback });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.due.delete(handle as number);
  }

  now(): number {
    return this.time;
  }

  /** Move the clock forward by `ms`, running every callback that falls due, in time order. */
  advance(ms: number): void {
    const end = this.time + ms;
    for (;;) {
      let nextId: number | undefined;
      let next: { at: number; callback: () => void } | undefined;
      for (const [id, entry] of this.due) {
        if (entry.at <= end && (next === undefined || entry.at < next.at)) {
          next = entry;
          nextId = id;
        }
      }
      if (next === undefined || nextId === undefined) break;
      this.due.delete(nextId);
      this.time = next.at;
      next.callback();
    }
    this.time = end;
  }

  /** The delays of the callbacks pending, from now. */
  pending(): number[] {
    return [...this.due.values()].map((e) => e.at - this.time);
  }
}

type Listener = (event: never) => void;

/** One scripted WebSocket. */
export class FakeSocket implements WebSocketLike {
  readonly sent: Record<string, unknown>[] = [];
  closedWith: { code: number | undefined; reason: string | undefined } | null = null;
  private readonly listeners = new Map<string, Listener[]>();

  constructor(readonly url: string) {}

  /** The query parameters of the handshake. */
  get query(): URLSearchParams {
    return new URL(this.url).searchParams;
  }

  send(data: string): void {
    this.sent.push(JSON.parse(data) as Record<string, unknown>);
  }

  close(code?: number, reason?: string): void {
    this.closedWith = { code, reason };
  }

  addEventListener(type: "message", listener: (event: SocketMessageEvent) => void): void;
  addEventListener(type: "close", listener: (event: SocketCloseEvent) => void): void;
  addEventListener(type: "open" | "error", listener: (event: SocketEvent) => void): void;
  addEventListener(type: string, listener: Listener): void {
    const list = this.listeners.get(type) ?? [];
    list.push(listener);
    this.listeners.set(type, list);
  }

  private fire(type: string, event: object): void {
    for (const listener of this.listeners.get(type) ?? []) (listener as (e: object) => void)(event);
  }

  /** The handshake succeeded. */
  open(): void {
    this.fire("open", {});
  }

  /** The server sends a frame. */
  receive(frame: object): void {
    this.fire("message", { data: JSON.stringify(frame) });
  }

  /** The server sends raw text. */
  receiveText(data: unknown): void {
    this.fire("message", { data });
  }

  /** The server (or the network) closes the socket. */
  serverClose(code: number, reason = ""): void {
    this.fire("close", { code, reason });
  }

  /** The frames sent of `type`. */
  sentOf(type: ClientFrame["type"]): Record<string, unknown>[] {
    return this.sent.filter((f) => f.type === type);
  }

  /** The last frame sent. */
  last(): Record<string, unknown> {
    const frame = this.sent[this.sent.length - 1];
    if (frame === undefined) throw new Error("nothing sent");
    return frame;
  }
}

/** A WebSocket constructor that hands out {@link FakeSocket}s and remembers them. */
export function fakeWebSocket(): { WebSocket: WebSocketConstructor; sockets: FakeSocket[] } {
  const sockets: FakeSocket[] = [];
  class Constructor extends FakeSocket {
    constructor(url: string) {
      super(url);
      sockets.push(this);
    }
  }
  return { WebSocket: Constructor, sockets };
}

/** A `welcome` frame for `user`. */
export function welcome(user = "alice", extra: object = {}): object {
  return {
    type: "welcome",
    conn: "0.1.1",
    user,
    heartbeat_ms: 15000,
    stream: `user:${user}`,
    epoch: 1,
    seq: 0,
    ...extra,
  };
}

/** Let pending promise callbacks run. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}
