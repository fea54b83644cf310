/**
 * The Server-Sent Events transport in a real Chromium: a page's own `EventSource` reads
 * `GET /sse`, its `fetch` posts frames to `POST /sse/{conn}`, and when the server's stream is
 * dropped (a proxy cuts every connection) the browser reconnects by itself with
 * `Last-Event-ID`, and the server resumes the user stream from it: what was published meanwhile
 * arrives once, in order. The `close` event reaches the page's listener.
 */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import type { Page } from "playwright-core";
import { siteBehindProxy, token } from "./harness.js";

/** What the page keeps of its stream, as the test reads it back. */
interface Seen {
  frames: { type: string; event?: string; conn?: string; ref?: unknown }[];
  closes: { code: number; reason: string }[];
  opens: number;
}

describe("Server-Sent Events in Chromium", () => {
  const site = siteBehindProxy();
  let page: Page;

  const seen = (): Promise<Seen> => page.evaluate(() => (window as unknown as { seen: Seen }).seen);
  const events = async (): Promise<string[]> =>
    (await seen()).frames.filter((f) => f.type === "message").map((f) => f.event ?? "");
  /** Wait until `predicate`, an expression over the page's global `seen`, holds. */
  const waitFor = (predicate: string) => page.waitForFunction(predicate);

  test("an EventSource opens the stream: welcome first, then what is published", async () => {
    // A page of the server's own origin (no CORS involved), then the stream from it.
    page = await site.open("/healthz");
    await page.evaluate((jwt) => {
      const seen = { frames: [] as unknown[], closes: [] as unknown[], opens: 0 };
      (window as unknown as { seen: unknown }).seen = seen;
      const source = new EventSource(`/sse?token=${jwt}`);
      source.onopen = () => (seen.opens += 1);
      source.onmessage = (e: MessageEvent<string>) => seen.frames.push(JSON.parse(e.data));
      source.addEventListener("close", (e) => seen.closes.push(JSON.parse((e as MessageEvent<string>).data)));
      (window as unknown as { source: EventSource }).source = source;
    }, token("alice"));
    await waitFor("seen.frames.length >= 1");
    assert.equal((await seen()).frames[0]?.type, "welcome");
    await site.server.publish({ user: "alice" }, "m1", {});
    await site.server.publish({ user: "alice" }, "m2", {});
    await waitFor("seen.frames.filter((f) => f.type === 'message').length === 2");
    assert.deepEqual(await events(), ["m1", "m2"]);
  });

  test("frames posted with fetch are answered on the stream with their ref", async () => {
    const status = await page.evaluate(async (jwt) => {
      const seen = (window as unknown as { seen: Seen }).seen;
      const welcome = seen.frames.filter((f) => f.type === "welcome").at(-1);
      const response = await fetch(`/sse/${welcome?.conn}?token=${jwt}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ type: "ping", ref: "from-the-page" }),
      });
      return response.status;
    }, token("alice"));
    assert.equal(status, 202);
    await waitFor("seen.frames.some((f) => f.type === 'pong' && f.ref === 'from-the-page')");
  });

  test("survives the server dropping the stream: reconnects with Last-Event-ID, nothing lost, nothing twice", async () => {
    // Another connection of alice, outside the proxy, stays open: what is published while the
    // page is away reaches it, so nothing is kept as pending for the next connection, and the
    // page receives it again only by resuming from its Last-Event-ID.
    const other = new AbortController();
    const elsewhere = await fetch(`${site.server.http}/sse?token=${token("alice")}`, { signal: other.signal });
    assert.equal(elsewhere.status, 200);
    site.proxy.cut();
    for (const n of [3, 4, 5]) {
      const delivery = (await site.server.publish({ user: "alice" }, `m${n}`, {})) as { reached: number };
      assert.ok(delivery.reached >= 1, "reached the other connection");
    }
    site.proxy.unblock();
    await waitFor("seen.frames.filter((f) => f.type === 'welcome').length === 2");
    // A marker published after the reconnect: anything replayed twice would come before it.
    await site.server.publish({ user: "alice" }, "after", {});
    await waitFor("seen.frames.some((f) => f.event === 'after')");
    assert.deepEqual(await events(), ["m1", "m2", "m3", "m4", "m5", "after"]);
    assert.equal((await seen()).opens, 2, "one automatic reconnection");
    other.abort();
  });

  test("the close event reaches the page with its code and reason", async () => {
    await site.server.api("POST", "/users/alice/disconnect");
    await waitFor("seen.closes.length >= 1");
    assert.deepEqual((await seen()).closes, [{ code: 4002, reason: "disconnected" }]);
    // 4002 means "not without new credentials": the page stops the browser's reconnection.
    await page.evaluate(() => (window as unknown as { source: EventSource }).source.close());
  });
});
