/**
 * The client in a Chromium tab fed 10 000 frames/s by a local WebSocket server: every frame is
 * handled, in order. The rates are reported (`npm run bench` measures them fully), not asserted.
 */

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import type { Page } from "playwright-core";
import { Feed } from "../../bench/feed.js";
import { Browser } from "./harness.js";

let browser: Browser;
let feed: Feed;
let page: Page;

before(async () => {
  browser = await Browser.launch();
  feed = await Feed.start();
  page = await browser.open("about:blank");
});
after(async () => {
  await browser?.close();
  await feed?.stop();
});

test("fed 10 000 frames/s for 2 s, the client in the tab handles every frame, in order", async (t) => {
  const result = await feed.measure(page, "sdk", 20_000, 10_000);
  assert.equal(result.frames, 20_000);
  assert.equal(result.outOfOrder, 0);
  t.diagnostic(`handled ${Math.round(result.perSecond)} frames/s; lag max ${result.maxLagMs} ms, p99 ${result.p99LagMs} ms`);
});

test("handed frames in the page without a socket, the client handles each once", async (t) => {
  const result = await feed.processInPage(page, "sdk", 50_000);
  assert.equal(result.frames, 50_000);
  t.diagnostic(`processed ${Math.round(result.perSecond)} frames/s in the page`);
});
