/**
 * Test doubles of the Server-Sent Events transport for unit tests: a scripted `EventSource` the
 * test plays the server through, and a `fetch` that records each post and answers it when told.
 */

import type { EventSourceConstructor, EventSourceLike, FetchLike } from "../../src/index.js";

/** One scripted `EventSource`. */
export class FakeEventSource implements EventSourceLike {
  onopen: ((event: unknown) => void) | null = null;
  onmessage: ((event: { readonly data: unknown }) => void) | null = null;
  onerror: ((event: unknown) => void) | null = null;
  closed = false;
  private readonly closeListeners: ((event: { readonly data: unknown }) => void)[] = [];

  constructor(readonly url: string) {}

  addEventListener(_type: "close", listener: (event: { readonly data: unknown }) => void): void {
    this.closeListeners.push(listener);
  }

  close(): void {
    this.closed = true;
  }

  /** The response started. */
  open(): void {
    this.onopen?.({});
  }

  /** A default event carrying `frame`. */
  receive(frame: object): void {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }

  /** The terminal `close` event. */
  serverClose(code: number, reason: string): void {
    for (const listener of this.closeListeners) listener({ data: JSON.stringify({ code, reason }) });
  }

  /** The stream failed (as `EventSource` reports a refused or ended response). */
  fail(): void {
    this.onerror?.({});
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
