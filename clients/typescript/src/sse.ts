/**
 * The connection over Server-Sent Events (docs/PROTOCOL.md §10), shaped as a WebSocket so the
 * client runs over it unchanged: the server's frames come from an `EventSource` on `GET /sse`,
 * the client's frames are posted to `POST /sse/{conn}`.
 *
 * It never lets the `EventSource` reconnect by itself: every end of the stream is a `close`
 * (the server's code, or 1006), and the client reconnects with `resume=` from its own positions,
 * so there is one resume logic for both transports.
 */

import type { SocketCloseEvent, SocketEvent, SocketMessageEvent, WebSocketLike } from "./connection.js";
import { BATCH_PARAMETER } from "./protocol.js";

/** What the socket needs of an `EventSource` (the browser's, or the `eventsource` package's). */
export interface EventSourceLike {
  addEventListener(type: "open" | "error" | "message" | "close", listener: (event: MessageEvent) => void): void;
  close(): void;
}

/** An `EventSource` constructor. */
export type EventSourceConstructor = new (url: string) => EventSourceLike;

/** What the socket needs of `fetch`. */
export type FetchLike = (
  url: string,
  init: { method: "POST"; headers: Record<string, string>; body: string },
) => Promise<{ readonly ok: boolean; readonly status: number }>;

/** Options of an {@link SseSocket}. */
export interface SseOptions {
  /** Default: `globalThis.EventSource` (browsers); in Node, the `eventsource` package. */
  readonly EventSource?: EventSourceConstructor;
  /** Default: `globalThis.fetch`. */
  readonly fetch?: FetchLike;
}

/** Frames per `POST /sse/{conn}`, the server's limit. */
const SSE_FRAMES_PER_POST = 64;
/** Bytes per post beyond which the next frame goes in the next post (the default `max_frame_bytes`). */
const SSE_BYTES_PER_POST = 64 * 1024;
/** The close of a stream that ended without the server's `close` event, or of a refused post. */
const ABNORMAL = 1006;

/** The `EventSource` of the environment, if it has one (browsers). */
export function environmentEventSource(): EventSourceConstructor | undefined {
  return (globalThis as { EventSource?: EventSourceConstructor }).EventSource;
}

/**
 * The `/sse` URL of a WebSocket handshake URL: `ws(s)://host/…/ws?q` → `http(s)://host/…/sse?q`,
 * without `batch` (each event carries one frame).
 */
export function sseUrl(handshake: string): URL {
  const url = new URL(handshake);
  url.protocol = url.protocol === "wss:" ? "https:" : url.protocol === "ws:" ? "http:" : url.protocol;
  url.pathname = url.pathname.replace(/\/ws\/?$/, "/sse");
  url.searchParams.delete(BATCH_PARAMETER);
  return url;
}

type Listeners = {
  open: ((event: SocketEvent) => void)[];
  error: ((event: SocketEvent) => void)[];
  message: ((event: SocketMessageEvent) => void)[];
  close: ((event: SocketCloseEvent) => void)[];
};

/** A {@link WebSocketLike} over `EventSource` and `fetch`. */
export class SseSocket implements WebSocketLike {
  private readonly source: EventSourceLike;
  private readonly fetch: FetchLike;
  private readonly token: string | null;
  private readonly base: URL;
  private readonly listeners: Listeners = { open: [], error: [], message: [], close: [] };
  /** `welcome.conn`, once the first frame arrived. */
  private conn: string | null = null;
  private readonly queue: string[] = [];
  private posting = false;
  private scheduled = false;
  private done = false;

  constructor(url: string, options: SseOptions = {}) {
    const EventSource = options.EventSource ?? environmentEventSource();
    const fetch = options.fetch ?? (globalThis as { fetch?: FetchLike }).fetch;
    if (EventSource === undefined) throw new TypeError("no EventSource in this environment: pass one as `EventSource`");
    if (fetch === undefined) throw new TypeError("no fetch in this environment: pass one as `fetch`");
    // Called as a plain function: a browser's `fetch` refuses any `this` but the window.
    this.fetch = (url, init) => fetch(url, init);
    const stream = sseUrl(url);
    this.token = stream.searchParams.get("token");
    this.base = new URL(stream.pathname, stream);
    this.source = new EventSource(stream.toString());
    this.source.addEventListener("open", () => {
      if (!this.done) this.dispatch("open", {});
    });
    this.source.addEventListener("message", (event) => {
      if (this.done) return;
      if (this.conn === null) this.learnConn(event.data);
      this.dispatch("message", { data: event.data });
    });
    this.source.addEventListener("close", (event) => {
      if (this.done) return;
      let code = ABNORMAL;
      let reason = "";
      try {
        const close = JSON.parse(String(event.data)) as { code?: unknown; reason?: unknown };
        if (typeof close.code === "number") code = close.code;
        if (typeof close.reason === "string") reason = close.reason;
      } catch {
        // A close event we cannot read ends the connection all the same.
      }
      this.finish(code, reason);
    });
    // Without a `close` event first, the stream failed (refused, cut, or ended early).
    this.source.addEventListener("error", () => {
      if (this.done) return;
      this.dispatch("error", {});
      this.finish(ABNORMAL, "");
    });
  }

  addEventListener(type: "message", listener: (event: SocketMessageEvent) => void): void;
  addEventListener(type: "close", listener: (event: SocketCloseEvent) => void): void;
  addEventListener(type: "open" | "error", listener: (event: SocketEvent) => void): void;
  addEventListener(type: keyof Listeners, listener: (event: never) => void): void {
    (this.listeners[type] as unknown[]).push(listener);
  }

  /** Queue a frame; frames sent in the same tick are posted together, in order. */
  send(data: string): void {
    if (this.done) throw new Error("the event stream is closed");
    this.queue.push(data);
    this.schedule();
  }

  /** End the stream (the server closes the connection as the client's). */
  close(code = 1000, reason = ""): void {
    if (this.done) return;
    this.finish(code, reason);
  }

  private learnConn(data: unknown): void {
    try {
      const frame = JSON.parse(String(data)) as { type?: unknown; conn?: unknown };
      if (frame.type === "welcome" && typeof frame.conn === "string") {
        this.conn = frame.conn;
        this.schedule();
      }
    } catch {
      // Not JSON: the client reports it when it reads the frame.
    }
  }

  /** Post the queue at the end of this tick, once the connection id is known and no post is in flight. */
  private schedule(): void {
    if (this.scheduled || this.posting || this.conn === null || this.queue.length === 0) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      void this.post();
    });
  }

  private async post(): Promise<void> {
    if (this.done || this.posting || this.conn === null || this.queue.length === 0) return;
    let count = 0;
    let bytes = 0;
    while (count < this.queue.length && count < SSE_FRAMES_PER_POST) {
      const size = (this.queue[count] as string).length + 1;
      if (count > 0 && bytes + size > SSE_BYTES_PER_POST) break;
      bytes += size;
      count += 1;
    }
    const body = this.queue.splice(0, count).join("\n");
    const headers: Record<string, string> = { "content-type": "application/x-ndjson" };
    if (this.token !== null) headers.authorization = `Bearer ${this.token}`;
    this.posting = true;
    let failed: string | null = null;
    try {
      const response = await this.fetch(new URL(encodeURIComponent(this.conn), `${this.base}/`).toString(), {
        method: "POST",
        headers,
        body,
      });
      if (!response.ok) failed = `post refused with ${response.status}`;
    } catch {
      failed = "post failed";
    }
    this.posting = false;
    if (this.done) return;
    if (failed !== null) {
      // Frames may be lost: end the connection, the client reconnects and resumes.
      this.dispatch("error", {});
      this.finish(ABNORMAL, failed);
      return;
    }
    this.schedule();
  }

  private finish(code: number, reason: string): void {
    this.done = true;
    this.queue.length = 0;
    this.source.close();
    this.dispatch("close", { code, reason });
  }

  private dispatch<K extends keyof Listeners>(type: K, event: Parameters<Listeners[K][number]>[0]): void {
    for (const listener of [...this.listeners[type]]) (listener as (e: typeof event) => void)(event);
  }
}
