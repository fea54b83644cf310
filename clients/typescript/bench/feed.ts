/**
 * A frame feed for measuring the client in a browser tab: a local HTTP + WebSocket server that
 * speaks just enough of the protocol (`welcome`, then sequenced `message` frames at a given
 * rate), and a page that counts what it receives through the client bundle (`sdk`) or through
 * a bare WebSocket with `JSON.parse` (`raw`, the baseline).
 *
 * With `batch=1` in the handshake (modes `sdk-batched`, `raw-batched`) the feed sends the frames
 * it finds due at one wake-up as the server's writer does (docs/PROTOCOL.md §1, "Batched
 * messages"): one message holding a JSON array of at most 64 frames and 64 KiB, a frame due
 * alone as a plain object.
 *
 * Each frame carries the time it was sent; the page reports how far behind it was (its lag) when
 * it handled each one, so "keeps up" means the lag stays small while frames keep coming.
 */

import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { fileURLToPath } from "node:url";
import type { Page } from "playwright-core";
import WebSocket, { WebSocketServer } from "ws";
import { Counter, type Counted } from "./counter.js";

/** The client's browser bundle (`npm run bundle`). */
export const BUNDLE = readFileSync(fileURLToPath(new URL("../../demo/switchboard.min.js", import.meta.url)), "utf8");

/** How the page handles frames: the client or a bare socket, asking for batched messages or not. */
export type Mode = "sdk" | "raw" | "sdk-batched" | "raw-batched";

/** The server writer's bounds of one batched message: frames per wake-up, bytes. */
const BATCH_FRAMES = 64;
const BATCH_BYTES = 64 * 1024;

/** What a page measured. */
export interface FeedResult extends Counted {
  readonly mode: Mode;
}

const PAGE = `<!doctype html><meta charset="utf-8"><title>feed</title>
<script src="/switchboard.min.js"></script>
<script>
${Counter}
window.measure = (mode, url, frames) => new Promise((resolve) => {
  const counter = new Counter(frames);
  const handle = (m) => {
    if (counter.frame(m.seq, m.data.t)) {
      resolve({ mode, ...counter.result() });
      socket?.close();
      client?.close();
    }
  };
  let socket = null, client = null;
  if (mode.startsWith("raw")) {
    socket = new WebSocket(mode === "raw-batched" ? url + "&batch=1" : url);
    const one = (f) => { if (f.type === "message") handle(f); };
    socket.onmessage = (e) => { const f = JSON.parse(e.data); if (Array.isArray(f)) f.forEach(one); else one(f); };
  } else {
    client = new Switchboard.SwitchboardClient({ url, token: "bench", heartbeat: false, batch: mode === "sdk-batched" });
    client.on("message", handle);
    client.connect();
  }
});
window.process = (mode, frames) => {
  const texts = [];
  for (let seq = 1; seq <= frames; seq++) texts.push(JSON.stringify({ type: "message", stream: "room:bench", epoch: 1, seq,
    room: "bench", from: "feed", event: "tick", data: { t: 0, text: "0123456789abcdef" } }));
  let count = 0;
  const handle = (m) => { count += m.seq > 0 ? 1 : 0; };
  let deliver;
  if (mode === "raw") {
    deliver = (data) => { const f = JSON.parse(data); if (f.type === "message") handle(f); };
  } else {
    let listeners = {};
    class InPage { constructor() { listeners = {}; } addEventListener(type, l) { listeners[type] = l; } send() {} close() {} }
    const client = new Switchboard.SwitchboardClient({ url: "ws://in-page/ws", token: "bench", heartbeat: false, WebSocket: InPage });
    client.on("message", handle);
    client.connect();
    listeners.message({ data: JSON.stringify({ type: "welcome", conn: "0.0.0", user: "bench", heartbeat_ms: 0, stream: "user:bench", epoch: 1, seq: 0 }) });
    deliver = (data) => listeners.message({ data });
  }
  const started = performance.now();
  for (const text of texts) deliver(text);
  const elapsedMs = performance.now() - started;
  return { mode, frames: count, perSecond: count / (elapsedMs / 1000) };
};
</script>`;

/** The feed server. */
export class Feed {
  private constructor(
    private readonly http: Server,
    private readonly wss: WebSocketServer,
    /** `http://127.0.0.1:port`. */
    readonly url: string,
  ) {}

  static async start(): Promise<Feed> {
    const http = createServer((request, response) => {
      if (request.url === "/switchboard.min.js") {
        response.writeHead(200, { "content-type": "text/javascript" }).end(BUNDLE);
      } else {
        response.writeHead(200, { "content-type": "text/html" }).end(PAGE);
      }
    });
    const wss = new WebSocketServer({ server: http, path: "/ws" });
    wss.on("connection", (socket, request) => {
      const query = new URL(request.url ?? "/", "http://feed").searchParams;
      const frames = Number(query.get("frames") ?? 0);
      const rate = Number(query.get("rate") ?? 0);
      const batched = query.get("batch") === "1";
      socket.send(JSON.stringify({ type: "welcome", conn: "0.0.0", user: "bench", heartbeat_ms: 0, stream: "user:bench", epoch: 1, seq: 0 }));
      let seq = 0;
      const frame = (): string =>
        JSON.stringify({ type: "message", stream: "room:bench", epoch: 1, seq: ++seq, room: "bench", from: "feed", event: "tick", data: { t: Date.now(), text: "0123456789abcdef" } });
      // Paced: a batch every 10 ms, as many as the rate allows by then. Unpaced: as fast as the
      // socket drains.
      const started = Date.now();
      const pump = (): void => {
        if (socket.readyState !== socket.OPEN) return;
        const due = rate > 0 ? Math.min(frames, Math.floor(((Date.now() - started) * rate) / 1000)) : frames;
        // Batched: `[`, each frame followed by `,` or `]`.
        let ready: string[] = [];
        let bytes = 1;
        const send = (): void => {
          socket.send(ready.length === 1 ? ready[0]! : `[${ready.join(",")}]`);
          ready = [];
          bytes = 1;
        };
        while (seq < due && socket.bufferedAmount < 1 << 20) {
          const next = frame();
          if (!batched) {
            socket.send(next);
            continue;
          }
          if (ready.length === BATCH_FRAMES || (ready.length > 0 && bytes + next.length + 1 > BATCH_BYTES)) send();
          ready.push(next);
          bytes += next.length + 1;
        }
        if (ready.length > 0) send();
        if (seq < frames) setTimeout(pump, rate > 0 ? 10 : 1);
      };
      pump();
    });
    await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
    const { port } = http.address() as { port: number };
    return new Feed(http, wss, `http://127.0.0.1:${port}`);
  }

  /** Feed `frames` frames at `rate` per second (0: as fast as possible) to a page in `mode`. */
  async measure(page: Page, mode: Mode, frames: number, rate: number): Promise<FeedResult> {
    if (page.url() !== `${this.url}/`) await page.goto(`${this.url}/`);
    const ws = `${this.url.replace("http", "ws")}/ws?frames=${frames}&rate=${rate}`;
    return page.evaluate(
      ([m, u, n]) => (window as unknown as { measure: (m: string, u: string, n: number) => Promise<FeedResult> }).measure(m, u, n),
      [mode, ws, frames] as const,
    );
  }

  /**
   * Feed `frames` frames at `rate` per second to a `ws` client in this Node process: what the
   * feed itself can deliver, to tell a slow page from a slow feed.
   */
  async measureNode(frames: number, rate: number): Promise<{ perSecond: number; maxLagMs: number }> {
    const socket = new WebSocket(`${this.url.replace("http", "ws")}/ws?frames=${frames}&rate=${rate}`);
    return new Promise((resolve) => {
      let count = 0;
      let first = 0;
      let maxLagMs = 0;
      socket.on("message", (data: Buffer) => {
        const frame = JSON.parse(data.toString()) as { type: string; data: { t: number } };
        if (frame.type !== "message") return;
        if (count === 0) first = performance.now();
        count += 1;
        maxLagMs = Math.max(maxLagMs, Date.now() - frame.data.t);
        if (count === frames) {
          socket.close();
          resolve({ perSecond: frames / ((performance.now() - first) / 1000), maxLagMs });
        }
      });
    });
  }

  /**
   * Hand `frames` frames to the client (or to `JSON.parse`) inside the page, without a socket:
   * what the client costs per frame, apart from the browser's WebSocket delivery.
   */
  async processInPage(page: Page, mode: "sdk" | "raw", frames: number): Promise<{ mode: string; frames: number; perSecond: number }> {
    if (page.url() !== `${this.url}/`) await page.goto(`${this.url}/`);
    return page.evaluate(
      ([m, n]) => (window as unknown as { process: (m: string, n: number) => { mode: string; frames: number; perSecond: number } }).process(m, n),
      [mode, frames] as const,
    );
  }

  async stop(): Promise<void> {
    for (const client of this.wss.clients) client.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
    const closed = new Promise<void>((resolve) => this.http.close(() => resolve()));
    this.http.closeAllConnections();
    await closed;
  }
}
