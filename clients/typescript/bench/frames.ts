/**
 * How many frames per second the client handles in a Chromium tab, against a bare WebSocket
 * with JSON.parse measured in the same run (the baseline): `npm run bench` in clients/typescript.
 *
 * Two feeds per mode: 10 000 frames/s for 5 s (does the page keep up: small lag throughout),
 * and 100 000 frames as fast as the local socket delivers them (the most it can handle). Each
 * page runs without and with batched messages (`batch=1`: the frames ready together in one
 * WebSocket message, as the server sends them to a client that asks).
 */

import { Browser } from "../test/browser/harness.js";
import { Feed, type FeedResult, type Mode } from "./feed.js";

const NAMES: Record<Mode, string> = {
  raw: "WebSocket + JSON.parse",
  sdk: "SwitchboardClient, batch: false",
  "raw-batched": "WebSocket + JSON.parse, batch=1",
  "sdk-batched": "SwitchboardClient (batch=1, the default)",
};

const browser = await Browser.launch();
const feed = await Feed.start();
try {
  for (const rate of [10_000, 0]) {
    const node = await feed.measureNode(50_000, rate);
    console.log(`the feed to a Node ws client, ${rate ? "10 000/s" : "unpaced"}: ${Math.round(node.perSecond)} frames/s, max lag ${node.maxLagMs} ms`);
  }
  const page = await browser.open("about:blank");
  const results: FeedResult[] = [];
  for (const mode of ["raw", "sdk", "raw-batched", "sdk-batched"] as const) {
    await feed.measure(page, mode, 20_000, 0); // warm up
    results.push(await feed.measure(page, mode, 50_000, 10_000));
    results.push(await feed.measure(page, mode, 100_000, 0));
  }
  console.log("| handler | feed | frames | handled/s | max lag ms | p99 lag ms | out of order |");
  console.log("|---|---|---|---|---|---|---|");
  for (const r of results) {
    const feedName = r.frames === 50_000 ? "10 000/s for 5 s" : "unpaced";
    console.log(`| ${NAMES[r.mode]} | ${feedName} | ${r.frames} | ${Math.round(r.perSecond)} | ${r.maxLagMs} | ${r.p99LagMs} | ${r.outOfOrder} |`);
  }
  const inPage = [];
  for (const mode of ["raw", "sdk"] as const) {
    await feed.processInPage(page, mode, 20_000); // warm up
    inPage.push(await feed.processInPage(page, mode, 200_000));
  }
  console.log("\n| in the page, no socket | frames | handled/s |\n|---|---|---|");
  for (const r of inPage) console.log(`| ${r.mode === "sdk" ? "SwitchboardClient" : "JSON.parse"} | ${r.frames} | ${Math.round(r.perSecond)} |`);
  const unpaced = (mode: Mode) => results.find((r) => r.mode === mode && r.frames === 100_000)?.perSecond ?? NaN;
  const ratio = (a: Mode, b: Mode) => (unpaced(a) / unpaced(b)).toFixed(2);
  console.log(`\nunpaced: the client without batching handles ${ratio("sdk", "raw")}x the frames/s of the bare WebSocket`);
  console.log(`unpaced: the client with batching handles ${ratio("sdk-batched", "raw")}x the frames/s of the bare WebSocket, ${ratio("sdk-batched", "sdk")}x the client without batching, ${ratio("sdk-batched", "raw-batched")}x the bare WebSocket with batching`);
} finally {
  await browser.close();
  await feed.stop();
}
