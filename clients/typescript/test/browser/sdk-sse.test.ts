/**
 * The client bundle over Server-Sent Events only, in a real Chromium: the page's own
 * `EventSource` and `fetch` carry the connection (`transport: "sse"`), a room is joined and
 * receives messages, and when a proxy cuts the stream the client reconnects by itself with its
 * positions: what was published meanwhile arrives once, in order. A page of another origin
 * reads and posts to the server across origins, as its CORS answers allow.
 */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import type { Page } from "playwright-core";
import { siteBehindProxy, token } from "./harness.js";

const BUNDLE = new URL("../../../demo/switchboard.min.js", import.meta.url);

/** What the page keeps, as the test reads it back. */
interface Seen {
  messages: string[];
  connected: { resumed: boolean; transport: string }[];
  disconnected: number[];
}

describe("the client bundle over Server-Sent Events in Chromium", () => {
  const site = siteBehindProxy();
  let page: Page;

  const seen = (): Promise<Seen> => page.evaluate(() => (window as unknown as { seen: Seen }).seen);
  const waitFor = async (predicate: string): Promise<void> => {
    try {
      await page.waitForFunction(predicate);
    } catch (error) {
      throw new Error(`${predicate}: never held; the page saw ${JSON.stringify(await seen())}\n${site.browser.console.join("\n")}`, { cause: error });
    }
  };

  test("connects over EventSource and fetch, joins a room and receives its messages", async () => {
    page = await site.open("/healthz");
    await page.addScriptTag({ content: readFileSync(BUNDLE, "utf8") });
    await page.evaluate(async (jwt) => {
      const seen = { messages: [] as string[], connected: [] as unknown[], disconnected: [] as number[] };
      (window as unknown as { seen: unknown }).seen = seen;
      const { SwitchboardClient } = (window as unknown as { Switchboard: typeof import("../../src/index.js") }).Switchboard;
      const client = new SwitchboardClient({
        url: `ws://${location.host}/ws`,
        token: jwt,
        transport: "sse",
        backoff: { initialMs: 20, maxMs: 200 },
      });
      client.on("message", (m) => seen.messages.push(`${m.room}:${m.seq}:${m.event}`));
      client.on("connected", (c) => seen.connected.push({ resumed: c.resumed, transport: client.transport }));
      client.on("disconnected", (d) => seen.disconnected.push(d.code));
      (window as unknown as { client: unknown }).client = client;
      await client.connect();
      await client.join("lobby");
    }, token("alice"));
    await site.server.publish({ room: "lobby" }, "m1", {});
    await waitFor("seen.messages.length === 1");
    assert.deepEqual((await seen()).messages, ["lobby:1:m1"]);
    assert.deepEqual((await seen()).connected, [{ resumed: false, transport: "sse" }]);
  });

  test("a cut stream is reconnected by the client: what was published meanwhile arrives once, in order", async () => {
    site.proxy.cut();
    await waitFor("seen.disconnected.length >= 1");
    for (const n of [2, 3, 4]) await site.server.publish({ room: "lobby" }, `m${n}`, {});
    site.proxy.unblock();
    await waitFor("seen.connected.length >= 2");
    await page.evaluate(() => (window as unknown as { client: { ping(): Promise<number> } }).client.ping());
    await site.server.publish({ room: "lobby" }, "after", {});
    await waitFor("seen.messages.some((m) => m.endsWith(':after'))");
    const { messages, disconnected } = await seen();
    assert.deepEqual(messages, ["lobby:1:m1", "lobby:2:m2", "lobby:3:m3", "lobby:4:m4", "lobby:5:after"]);
    // The cut, then any attempts refused while the proxy was blocked: all without a close event.
    assert.ok(disconnected.length >= 1 && disconnected.every((code) => code === 1006), `${disconnected}`);
    assert.deepEqual((await seen()).connected.at(-1), { resumed: true, transport: "sse" });
  });

  test("a page of another origin connects straight to the server across origins", async () => {
    // The page comes from the proxy's origin; the client goes to the server's own port.
    const other = await site.open("/healthz");
    await other.addScriptTag({ content: readFileSync(BUNDLE, "utf8") });
    await other.evaluate(
      async ([jwt, server]) => {
        const messages: string[] = [];
        (window as unknown as { messages: string[] }).messages = messages;
        const { SwitchboardClient } = (window as unknown as { Switchboard: typeof import("../../src/index.js") }).Switchboard;
        const client = new SwitchboardClient({ url: `ws://${server}/ws`, token: jwt, transport: "sse" });
        client.on("message", (m) => messages.push(`${m.room}:${m.event}`));
        await client.connect();
        await client.join("cors");
      },
      [token("bob"), site.server.address] as const,
    );
    assert.notEqual(new URL(other.url()).host, site.server.address, "the page's origin is not the server's");
    await site.server.publish({ room: "cors" }, "across", {});
    await other.waitForFunction("messages.length === 1");
    assert.deepEqual(await other.evaluate(() => (window as unknown as { messages: string[] }).messages), ["cors:across"]);
  });
});
