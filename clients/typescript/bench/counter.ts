/**
 * What a reader of a bench feed records, the same in a browser tab and in Node: the frames it
 * handled, in order or not, how far behind each one was (its lag: handling time minus the send
 * time the frame carries), and how many WebSocket messages carried them (batch sizes).
 *
 * The class is self-contained (no import, no module-level reference) because pages get it as
 * source text: `${Counter}` in a page's script defines the same class there.
 */

/** What a reader measured. */
export interface Counted {
  /** Frames handled. */
  readonly frames: number;
  /** Frames whose `seq` was not the previous one's + 1 (must be 0). */
  readonly outOfOrder: number;
  /** From the first frame to the last. */
  readonly elapsedMs: number;
  /** Frames handled per second. */
  readonly perSecond: number;
  /** The largest delay between sending a frame and handling it. */
  readonly maxLagMs: number;
  /** The 99th percentile of that delay. */
  readonly p99LagMs: number;
  /** WebSocket messages that carried the frames (0 where the reader did not count them). */
  readonly messages: number;
  /** The most frames one message carried. */
  readonly largestBatch: number;
  /** Frames that came alone, one per message. */
  readonly framesAlone: number;
  /** Frames that came in messages of 64 frames (full batches). */
  readonly framesInFullBatches: number;
}

/**
 * Counts `expected` frames. Call {@link message} when a WebSocket message arrives (before its
 * frames are handled), {@link frame} for each frame it carries; every `every` frames `report`
 * is told how many were handled (a publisher's flow control).
 */
export class Counter {
  count = 0;
  private last = 0;
  private outOfOrder = 0;
  private first = 0;
  private finished = 0;
  private readonly lags: Float64Array;
  private messages = 0;
  private inMessage = 0;
  private largestBatch = 0;
  private framesAlone = 0;
  private framesInFullBatches = 0;

  constructor(
    readonly expected: number,
    private readonly report: ((handled: number) => void) | null = null,
    private readonly every = 100,
  ) {
    this.lags = new Float64Array(expected);
  }

  /** A WebSocket message arrived: the frames handled since the previous one were one batch. */
  message(): void {
    this.endBatch();
    this.messages += 1;
  }

  /** Handle one frame; true once the expected number was handled. */
  frame(seq: number, sentAt: number): boolean {
    const now = performance.now();
    if (this.count === 0) this.first = now;
    if (seq !== this.last + 1) this.outOfOrder += 1;
    this.last = seq;
    if (this.count < this.expected) this.lags[this.count] = Date.now() - sentAt;
    this.count += 1;
    this.inMessage += 1;
    if (this.report !== null && this.count % this.every === 0) this.report(this.count);
    if (this.count !== this.expected) return false;
    this.finished = now;
    this.endBatch();
    return true;
  }

  /** The figures so far. */
  result(): Counted {
    const frames = Math.min(this.count, this.expected);
    const elapsedMs = (this.finished || performance.now()) - this.first;
    const sorted = this.lags.slice(0, frames).sort();
    return {
      frames,
      outOfOrder: this.outOfOrder,
      elapsedMs,
      perSecond: frames / (elapsedMs / 1000),
      maxLagMs: sorted[frames - 1] ?? 0,
      p99LagMs: sorted[Math.floor(frames * 0.99)] ?? 0,
      messages: this.messages,
      largestBatch: this.largestBatch,
      framesAlone: this.framesAlone,
      framesInFullBatches: this.framesInFullBatches,
    };
  }

  private endBatch(): void {
    const size = this.inMessage;
    this.inMessage = 0;
    // A reader that does not count messages has no batches.
    if (size === 0 || this.messages === 0) return;
    this.largestBatch = Math.max(this.largestBatch, size);
    if (size === 1) this.framesAlone += 1;
    // 64: the most frames the server's writer puts in one message (docs/PROTOCOL.md §1).
    if (size === 64) this.framesInFullBatches += 64;
  }
}
