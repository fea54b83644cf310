/**
 * Test doubles of the Server-Sent Events transport for unit tests: a scripted `EventSource` the
 * test plays the server through, and a `fetch` that records each post and answers it when told.
 */

import type { EventSourceConstructor, EventSourceLike, FetchLike } from "../../src/index.js";

/** One scripted `EventSource`. */
export class FakeEventSource implements EventSourceLike {
  closed = false;
  private readonly listeners = new Map<string, ((event: MessageEvent) => void)[]>();

  constructor(readonly url: string) {}

  addEventListener(type: string, listener: (event: MessageEvent) => void): void {
    this.listeners.set(type, [...(this.listeners.get(type) ?? []), listener]);
  }

  close(): void {
    this.closed = true;
  }

  private fire(type: string, data?: string): void {
    for (const listener of this.listeners.get(type) ?? []) listener(new MessageEvent(type, { data }));
  }

  /** The response started. */
  open(): void {
    this.fire("open");
  }

  /** A default event carrying `frame`. */
  receive(frame: object): void {
    this.fire("message", JSON.stringify(frame));
  }

  /** The terminal `close` event. */
  serverClose(code: number, reason: string): void {
    this.fire("close", JSON.stringify({ code, reason }));
  }

  /** A `close` event carrying raw `data`. */
  receiveClose(data: string): void {
    this.fire("close", data);
  }

  /** The stream failed (as `EventSource` reports a refused or ended response). */
  fail(): void {
    this.fire("error");
  }
}

/** An `EventSource` constructor handing out {@link FakeEventSource}s and remembering them. */
export function fakeEventSource(): { EventSource: EventSourceConstructor; sources: FakeEventSource[] } {
  const sources: FakeEventSource[] = [];
  class Constructor extends FakeEventSource {
    constructor(url: string) {
      super(url);
      sources.push(this);
    }
  }
  return { EventSource: Constructor, sources };
}

/** A post the fake `fetch` received, answered when the test says so. */
export interface Post {
  readonly url: string;
  readonly headers: Record<string, string>;
  /** The frames of the body, one per line, parsed. */
  readonly frames: Record<string, unknown>[];
  answer(status: number): void;
  fail(): void;
}

/** A `fetch` that records posts; each waits for the test's answer. */
export function fakeFetch(): { fetch: FetchLike; posts: Post[] } {
  const posts: Post[] = [];
  const fetch: FetchLike = (url, init) =>
    new Promise((resolve, reject) => {
      posts.push({
        url,
        headers: init.headers,
        frames: init.body.split("\n").map((line) => JSON.parse(line) as Record<string, unknown>),
        answer: (status) => resolve({ ok: status >= 200 && status < 300, status }),
        fail: () => reject(new TypeError("fetch failed")),
      });
    });
  return { fetch, posts };
}
