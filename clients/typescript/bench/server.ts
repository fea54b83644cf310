/**
 * The client in a Chromium tab fed by the real server, end to end: `npm run bench:server` in
 * clients/typescript, after `cargo build --release -p switchboard-server` (the release binary
 * `target/release/switchboard` is used, or `$SWITCHBOARD_BIN`).
 *
 * The server runs with the client frame rate raised so that one connection may publish
 * 100 000 frames at once ({@link SETTINGS}). A Node publisher (a client connection, the `ws`
 * package, {@link Publisher}) publishes into a room that a reader joined: the page, through the
 * client bundle or a bare WebSocket, each with and without batched messages (`batch=1`), or a
 * Node `ws` reader (what the server and the publisher reach without a browser). Two feeds per
 * reader: 10 000 frames/s for 5 s, and 100 000 frames as fast as the publisher may send them.
 * Each frame carries its send time; the reader counts frames, their order, their lag, and the
 * WebSocket messages that carried them (batch sizes: the server batches what waits when its
 * writer wakes).
 */

import { existsSync } from "node:fs";
import { createServer } from "node:http";
import { loadavg } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Page } from "playwright-core";
import WebSocket from "ws";
import { Browser } from "../test/browser/harness.js";
import { TestServer, token } from "../test/support/server.js";
import { Counter, type Counted } from "./counter.js";
import { BUNDLE } from "./feed.js";
import { Publisher, WINDOW, type Published } from "./publisher.js";

/** The server's settings for the bench: the publisher's connection may send 200 000 frames/s. */
const SETTINGS = `[limits]
messages_per_second = 200000
message_burst = 200000
`;

/** Who reads the room. */
type Reader = "node" | "node-batched" | "raw" | "sdk" | "raw-batched" | "sdk-batched";

const NAMES: Record<Reader, string> = {
  node: "Node ws reader",
  "node-batched": "Node ws reader, batch=1",
  raw: "WebSocket + JSON.parse",
  sdk: "SwitchboardClient, batch: false",
  "raw-batched": "WebSocket + JSON.parse, batch=1",
  "sdk-batched": "SwitchboardClient (batch=1, the default)",
};

/** What a reader measured, and how often its connection closed before the end (0 expected). */
interface Read extends Counted {
  readonly closes: number;
}

interface Row {
  readonly reader: Reader;
  readonly rate: number;
  readonly read: Read;
  readonly published: Published;
}

/** A reader that joined its room: the figures once it handled every frame. */
type Joined = () => Promise<Read>;

const PAGE = `<!doctype html><meta charset="utf-8"><title>server bench</title>
<script src="/switchboard.min.js"></script>
<script>
${Counter}
let run = null;
window.start = (mode, url, token, room, frames) => new Promise((joined, failed) => {
  const counter = new Counter(frames, (n) => window.benchHandled(n));
  let live = false, socket = null, client = null, finish;
  run = { counter, closes: 0, done: new Promise((resolve) => (finish = resolve)) };
  const handle = (m) => {
    if (!counter.frame(m.seq, m.data.t)) return;
    finish({ ...counter.result(), closes: run.closes });
    socket?.close();
    client?.close();
  };
  if (mode.startsWith("raw")) {
    socket = new WebSocket(url + "?token=" + token + (mode === "raw-batched" ? "&batch=1" : ""));
    const one = (f) => {
      if (f.type === "message") handle(f);
      else if (f.type === "welcome") socket.send(JSON.stringify({ type: "join", room }));
      else if (f.type === "joined") { live = true; joined(); }
      else failed(new Error("unexpected frame " + JSON.stringify(f)));
    };
    socket.onmessage = (e) => { if (live) counter.message(); const f = JSON.parse(e.data); if (Array.isArray(f)) f.forEach(one); else one(f); };
    socket.onclose = (e) => { if (counter.count < frames) { run.closes++; failed(new Error("closed " + e.code)); } };
  } else {
    // Counts the socket's messages ahead of the client's own listener.
    class Counting extends WebSocket {
      constructor(...args) { super(...args); this.addEventListener("message", () => { if (live) counter.message(); }); }
    }
    client = new Switchboard.SwitchboardClient({ url, token, heartbeat: false, batch: mode === "sdk-batched", WebSocket: Counting });
    client.on("message", handle);
    client.on("disconnected", () => { if (counter.count < frames) run.closes++; });
    client.connect().then(() => client.join(room)).then(() => { live = true; joined(); }, failed);
  }
});
window.finished = () => run.done;
window.sofar = () => ({ ...run.counter.result(), closes: run.closes });
</script>`;

interface BenchWindow {
  start(mode: string, url: string, token: string, room: string, frames: number): Promise<void>;
  finished(): Promise<Read>;
  sofar(): Read;
}

const REPO = fileURLToPath(new URL("../../../../", import.meta.url));
const binary = process.env.SWITCHBOARD_BIN ?? join(REPO, "target", "release", "switchboard");
if (!existsSync(binary)) throw new Error(`no server binary at ${binary}: cargo build --release -p switchboard-server`);
process.env.SWITCHBOARD_BIN = binary; // what TestServer starts

/** Where the page reports what it handled: the current publisher. */
let pageHandled: (count: number) => void = () => {};
let serial = 0;
const loads: number[] = [];

const server = await TestServer.start({ settings: SETTINGS });
const site = createServer((request, response) => {
  if (request.url === "/switchboard.min.js") response.writeHead(200, { "content-type": "text/javascript" }).end(BUNDLE);
  else response.writeHead(200, { "content-type": "text/html" }).end(PAGE);
});
await new Promise<void>((resolve) => site.listen(0, "127.0.0.1", resolve));
const browser = await Browser.launch();
try {
  const page = await browser.open("about:blank");
  await page.exposeFunction("benchHandled", (count: number) => pageHandled(count));
  await page.goto(`http://127.0.0.1:${(site.address() as { port: number }).port}/`);
  console.log(`server: ${binary}, settings: ${SETTINGS.trim().replaceAll("\n", " ")}; publisher window ${WINDOW} frames`);
  console.log(`load average at the start: ${loadavg().map((l) => l.toFixed(2)).join(", ")}`);
  await publishAlone(10_000); // warm up
  const alone = await publishAlone(100_000);
  console.log(`the publisher alone (a room without reader), 100 000 frames unpaced: sent ${Math.round(alone.sentPerSecond)}/s, the server read ${Math.round(alone.readPerSecond)}/s`);
  const rows: Row[] = [];
  printHeader();
  for (const reader of ["node", "node-batched", "raw", "sdk", "raw-batched", "sdk-batched"] as const) {
    await measure(page, reader, 10_000, 0); // warm up
    for (const [frames, rate] of [[50_000, 10_000], [100_000, 0]] as const) {
      const row = await measure(page, reader, frames, rate);
      printRow(row);
      rows.push(row);
    }
  }
  printRatios(rows);
  console.log(`\nload average (1 min) after each measure: ${Math.min(...loads).toFixed(2)}–${Math.max(...loads).toFixed(2)}; at the end: ${loadavg().map((l) => l.toFixed(2)).join(", ")}`);
} finally {
  await browser.close();
  site.close();
  await server.stop();
}

/** Publish `frames` frames at `rate`/s (0: unpaced) into a fresh room that `reader` joined. */
async function measure(page: Page, reader: Reader, frames: number, rate: number): Promise<Row> {
  serial += 1;
  const room = `bench-${serial}`;
  const publisher = await Publisher.join(server.ws, token(`publisher-${serial}`), room);
  try {
    const handled = (count: number): void => publisher.handled(count);
    const reading = reader.startsWith("node")
      ? await joinNode(reader === "node-batched", room, frames, handled)
      : await joinPage(page, reader, room, frames, handled);
    const published = await publisher.publish(frames, rate);
    const read = await reading();
    if (read.frames !== frames || read.closes !== 0) {
      console.error(`${NAMES[reader]}: ${read.frames} of ${frames} frames, ${read.closes} closes`);
    }
    loads.push(loadavg()[0] ?? NaN);
    return { reader, rate, read, published };
  } finally {
    publisher.close();
  }
}

/** Publish `frames` frames as fast as possible into a room without a reader: what the publisher and the server reach alone. */
async function publishAlone(frames: number): Promise<Published> {
  serial += 1;
  const publisher = await Publisher.join(server.ws, token(`publisher-${serial}`), `bench-${serial}`);
  try {
    publisher.handled(Infinity); // no reader: nothing to wait for
    return await publisher.publish(frames, 0);
  } finally {
    publisher.close();
  }
}

/** The page joins `room` as the reader. */
async function joinPage(page: Page, reader: Reader, room: string, frames: number, handled: (count: number) => void): Promise<Joined> {
  pageHandled = handled;
  await page.evaluate(
    ([m, u, t, r, f]) => (window as unknown as BenchWindow).start(m, u, t, r, f),
    [reader, server.ws, token(`reader-${serial}`), room, frames] as const,
  );
  return () =>
    guard(
      page.evaluate(() => (window as unknown as BenchWindow).finished()),
      () => page.evaluate(() => (window as unknown as BenchWindow).sofar()),
    );
}

/** A Node `ws` connection joins `room` as the reader. */
async function joinNode(batched: boolean, room: string, frames: number, handled: (count: number) => void): Promise<Joined> {
  const counter = new Counter(frames, handled);
  const socket = new WebSocket(`${server.ws}?token=${encodeURIComponent(token(`reader-${serial}`))}${batched ? "&batch=1" : ""}`);
  let closes = 0;
  let live = false;
  let finish: (read: Read) => void = () => {};
  const done = new Promise<Read>((resolve) => (finish = resolve));
  await new Promise<void>((joined, failed) => {
    const one = (frame: { type: string; seq: number; data: { t: number } }): void => {
      if (frame.type === "message") {
        if (!counter.frame(frame.seq, frame.data.t)) return;
        finish({ ...counter.result(), closes });
        socket.close();
      } else if (frame.type === "welcome") {
        socket.send(JSON.stringify({ type: "join", room }));
      } else if (frame.type === "joined") {
        live = true;
        joined();
      } else {
        failed(new Error(`unexpected frame ${JSON.stringify(frame)}`));
      }
    };
    socket.on("message", (data: Buffer) => {
      if (live) counter.message();
      const parsed = JSON.parse(data.toString()) as Parameters<typeof one>[0] | Parameters<typeof one>[0][];
      if (Array.isArray(parsed)) parsed.forEach(one);
      else one(parsed);
    });
    socket.on("close", (code) => {
      if (counter.count >= frames) return;
      closes += 1;
      failed(new Error(`closed ${code}`));
    });
  });
  return () => guard(done, async () => ({ ...counter.result(), closes }));
}

/** `done`, or after 2 minutes what was counted so far. */
async function guard(done: Promise<Read>, sofar: () => Promise<Read>): Promise<Read> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), 120_000)));
  const read = await Promise.race([done, late]);
  clearTimeout(timer);
  return read ?? sofar();
}

/** `12 345`. */
function n(x: number): string {
  return Math.round(x).toLocaleString("en").replaceAll(",", " ");
}

function printHeader(): void {
  console.log("\n| reader | feed | frames | handled/s | max lag ms | p99 lag ms | out of order | messages | frames/message | largest | frames alone | in batches of 64 | publisher sent/s | server read/s | held back ms |");
  console.log("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
}

function printRow({ reader, rate, read, published }: Row): void {
  const feed = rate > 0 ? `${n(rate)}/s for ${published.frames / rate} s` : "unpaced";
  const perMessage = read.messages > 0 ? (read.frames / read.messages).toFixed(1) : "–";
  console.log(
    `| ${NAMES[reader]} | ${feed} | ${n(read.frames)} | ${n(read.perSecond)} | ${n(read.maxLagMs)} | ${n(read.p99LagMs)} | ${read.outOfOrder} | ${n(read.messages)} | ${perMessage} | ${read.largestBatch} | ${n(read.framesAlone)} | ${n(read.framesInFullBatches)} | ${n(published.sentPerSecond)} | ${n(published.readPerSecond)} | ${n(published.heldMs)} |`,
  );
}

/** Handled/s of one reader against another, each feed within this run. */
function printRatios(rows: readonly Row[]): void {
  const rate = (reader: Reader, paced: boolean): number => rows.find((r) => r.reader === reader && r.rate > 0 === paced)?.read.perSecond ?? NaN;
  for (const paced of [true, false]) {
    const ratio = (a: Reader, b: Reader): string => (rate(a, paced) / rate(b, paced)).toFixed(2);
    console.log(
      `\n${paced ? "10 000/s" : "unpaced"}: the client with batching handles ${ratio("sdk-batched", "sdk")}x the frames/s of the client without, ${ratio("sdk-batched", "raw")}x the bare socket without batching, ${ratio("sdk-batched", "raw-batched")}x the bare socket with batching; the client without batching ${ratio("sdk", "raw")}x the bare socket without`,
    );
  }
}
