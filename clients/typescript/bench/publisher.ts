/**
 * The publisher of the end-to-end bench: a client connection of the real server (the `ws`
 * package) that joins a room and sends `publish` frames into it, paced or as fast as it can.
 * Each frame's data carries the time it was sent (`t`), so that the reader records its lag.
 *
 * Flow control: the server closes a reader whose queue holds more than 1 024 frames (4008,
 * docs/PROTOCOL.md §6 "Slow consumers"; the bound is not a setting). A reader that falls behind
 * would be closed, so the publisher never has more than {@link WINDOW} frames published and not
 * yet handled by the reader: the reader reports what it handled ({@link Publisher.handled}) and a
 * publisher that finds the window full waits, and counts how long it waited. A reader that keeps
 * up never holds it back.
 */

import WebSocket from "ws";

/** Frames published and not yet handled by the reader, at most: below the reader's queue bound. */
export const WINDOW = 1000;

/** How long the publisher waits for a reader that handles nothing before it gives up. */
const STALL_MS = 30_000;

/** What the publisher did. */
export interface Published {
  readonly frames: number;
  /** Frames sent per second, from the first to the last. */
  readonly sentPerSecond: number;
  /** Frames per second the server had read, from the first sent to the answer of a `ping` sent after the last. */
  readonly readPerSecond: number;
  /** How long the publisher waited because the reader had {@link WINDOW} frames unhandled. */
  readonly heldMs: number;
}

interface Frame {
  readonly type: string;
  readonly ref?: unknown;
  readonly code?: string;
}

/** A publishing connection, joined to its room. */
export class Publisher {
  private handledSoFar = 0;
  private wake: (() => void) | null = null;
  private readonly replies = new Map<string, (frame: Frame) => void>();

  private constructor(
    private readonly socket: WebSocket,
    private readonly room: string,
  ) {
    socket.on("message", (data: Buffer) => {
      const frame = JSON.parse(data.toString()) as Frame;
      const key = frame.type === "error" ? "error" : String(frame.ref);
      this.replies.get(key)?.(frame);
    });
  }

  /** Connect to `url` (`ws://host/ws`) with `token` and join `room`. */
  static async join(url: string, token: string, room: string): Promise<Publisher> {
    const socket = new WebSocket(`${url}?token=${encodeURIComponent(token)}`);
    await new Promise<void>((resolve, reject) => {
      socket.once("message", () => resolve()); // welcome
      socket.once("error", reject);
      socket.once("close", (code) => reject(new Error(`the publisher was closed (${code}) before welcome`)));
    });
    const publisher = new Publisher(socket, room);
    const joined = await publisher.request({ type: "join", room, ref: "join" });
    if (joined.type !== "joined") throw new Error(`the publisher's join: ${JSON.stringify(joined)}`);
    return publisher;
  }

  /** The reader handled `count` frames so far. */
  handled(count: number): void {
    this.handledSoFar = Math.max(this.handledSoFar, count);
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }

  /**
   * Publish `frames` frames at `rate` per second (0: as fast as the window lets it), then wait
   * for the server to answer a `ping` (it read every frame before).
   */
  async publish(frames: number, rate: number): Promise<Published> {
    let sent = 0;
    let heldMs = 0;
    let failure: Frame | null = null;
    this.replies.set("error", (frame) => (failure = frame));
    const started = performance.now();
    while (sent < frames) {
      if (failure !== null) throw new Error(`the server refused a publish: ${JSON.stringify(failure)}`);
      const due = rate > 0 ? Math.min(frames, Math.floor(((performance.now() - started) * rate) / 1000)) : frames;
      while (sent < due && sent - this.handledSoFar < WINDOW) {
        sent += 1;
        this.socket.send(
          `{"type":"publish","room":${JSON.stringify(this.room)},"event":"tick","data":{"t":${Date.now()},"text":"0123456789abcdef"}}`,
        );
      }
      if (sent === frames) break;
      if (sent - this.handledSoFar >= WINDOW) {
        const waited = performance.now();
        const before = this.handledSoFar;
        let timer: NodeJS.Timeout | undefined;
        await new Promise<void>((resolve) => {
          this.wake = resolve;
          timer = setTimeout(resolve, STALL_MS);
        });
        clearTimeout(timer);
        if (this.handledSoFar === before) throw new Error(`the reader handled nothing for ${STALL_MS} ms (${before} of ${frames} frames)`);
        heldMs += performance.now() - waited;
      } else {
        // Paced: the next frames are due within a millisecond.
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
    }
    const lastSent = performance.now();
    const pong = await this.request({ type: "ping", ref: "end" });
    if (pong.type !== "pong") throw new Error(`the publisher's ping: ${JSON.stringify(pong)}`);
    const read = performance.now();
    return {
      frames,
      sentPerSecond: frames / ((lastSent - started) / 1000),
      readPerSecond: frames / ((read - started) / 1000),
      heldMs,
    };
  }

  close(): void {
    this.socket.close();
  }

  private request(frame: { readonly type: string; readonly ref: string } & Record<string, unknown>): Promise<Frame> {
    return new Promise((resolve) => {
      this.replies.set(frame.ref, (answer) => {
        this.replies.delete(frame.ref);
        resolve(answer);
      });
      this.replies.set("error", resolve);
      this.socket.send(JSON.stringify(frame));
    });
  }
}
