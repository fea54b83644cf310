/**
 * Requests: promises with a timeout, and the table of frames sent with a `ref` that wait for
 * their answer on the current connection (docs/PROTOCOL.md §2: `joined`, `left`, `bound`,
 * `pong`, `resumed` and `error` echo the `ref`).
 *
 * Frames without an answer on success (`publish`, application frames when no reply is awaited)
 * are settled by a fence: a `ping` sent after them. The server reads a connection's frames in
 * order and answers in order, so once the `pong` arrives with no `error` for them, they were
 * accepted. Frames sent in the same turn of the event loop share one fence.
 */

import { SwitchboardError } from "./errors.js";
import type { Timers } from "./timers.js";

/** A promise with its settle functions and a timeout; settles once. */
export class Deferred<T> {
  readonly promise: Promise<T>;
  private resolveFn!: (value: T) => void;
  private rejectFn!: (error: SwitchboardError) => void;
  private timer: unknown = undefined;
  private done = false;

  constructor(
    private readonly timers: Timers,
    timeoutMs: number,
    what: string,
    private readonly onSettled?: () => void,
  ) {
    this.promise = new Promise<T>((resolve, reject) => {
      this.resolveFn = resolve;
      this.rejectFn = reject;
    });
    if (Number.isFinite(timeoutMs)) {
      this.timer = timers.setTimeout(
        () => this.reject(new SwitchboardError("timeout", `${what}: no answer within ${timeoutMs} ms`)),
        timeoutMs,
      );
    }
  }

  /** Whether it was resolved or rejected already. */
  get settled(): boolean {
    return this.done;
  }

  resolve(value: T): void {
    if (this.finish()) this.resolveFn(value);
  }

  reject(error: SwitchboardError): void {
    if (this.finish()) this.rejectFn(error);
  }

  private finish(): boolean {
    if (this.done) return false;
    this.done = true;
    if (this.timer !== undefined) this.timers.clearTimeout(this.timer);
    this.onSettled?.();
    return true;
  }
}

/** What waits for the answer to one `ref` on the current connection. */
export interface Pending {
  /** The answer arrived (a frame echoing the `ref`, not an `error`; `pong` for a fence). */
  answer(frame: { readonly type: string }): void;
  /** An `error` frame echoing the `ref`. */
  fail(error: SwitchboardError): void;
  /** The connection closed before the answer. */
  lost(): void;
}

/** Frames sent with a `ref` on the current connection, waiting for their answer. */
export class Requests {
  private nextRef = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly fenced = new Set<number>();
  private fenceBatch: number[] | null = null;

  /**
   * A new `ref`. Refs are never reused by a client, so an answer that arrives late cannot be
   * taken for the answer to a newer frame.
   */
  ref(): number {
    return this.nextRef++;
  }

  /** Wait for the answer to `ref`. */
  expect(ref: number, pending: Pending): void {
    this.pending.set(ref, pending);
  }

  /** Settle what waits for `ref` with `frame` (or `error`). False if nothing waited for it. */
  settle(ref: unknown, frame: { readonly type: string }, error?: SwitchboardError): boolean {
    if (typeof ref !== "number") return false;
    const pending = this.pending.get(ref);
    if (pending === undefined) return false;
    this.pending.delete(ref);
    this.fenced.delete(ref);
    if (error !== undefined) pending.fail(error);
    else pending.answer(frame);
    return true;
  }

  /**
   * Settle `ref` (a frame without an answer on success) at a fence: `pending` gets `answer`
   * at the fence's `pong`, or `fail` at an `error` for `ref`. Returns true if this is the first
   * frame of a batch: the caller then sends the fence ({@link closeFence}) at the end of the
   * turn.
   */
  fence(ref: number, pending: Pending): boolean {
    this.pending.set(ref, pending);
    this.fenced.add(ref);
    if (this.fenceBatch !== null) {
      this.fenceBatch.push(ref);
      return false;
    }
    this.fenceBatch = [ref];
    return true;
  }

  /**
   * Close the current batch: returns the `ref` of the fence's `ping`, whose `pong` settles
   * every frame of the batch still waiting (those that got an `error` were settled by it).
   */
  closeFence(): number {
    const batch = this.fenceBatch ?? [];
    this.fenceBatch = null;
    const ref = this.ref();
    this.expect(ref, {
      answer: (pong) => {
        for (const covered of batch) this.settle(covered, pong);
      },
      fail: () => undefined,
      lost: () => undefined,
    });
    return ref;
  }

  /**
   * Fail every frame that waits for a fence with `error`: after a `rate_limited` error without
   * `ref`, any of them may be the frame the server dropped unread. (Frames with an answer of
   * their own are settled by it, or by their timeout.)
   */
  failFenced(error: SwitchboardError): void {
    for (const ref of [...this.fenced]) this.settle(ref, { type: "error" }, error);
  }

  /** The connection closed: nothing sent on it will be answered. */
  lose(): void {
    const lost = [...this.pending.values()];
    this.pending.clear();
    this.fenced.clear();
    this.fenceBatch = null;
    for (const pending of lost) pending.lost();
  }
}
