/**
 * The server's operations dashboard (`/dashboard`) in a real Chromium, against the server
 * binary with traffic running: signing in with the API key, the figures it shows against
 * `GET /api/stats` within one refresh, a user look-up, a disconnect that closes the user's
 * client, and a wrong key refused. Everything is read from the page's DOM.
 */

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import type { Page } from "playwright-core";
import { SwitchboardClient } from "../../src/index.js";
import { next } from "../support/wait.js";
import { API_KEY, Browser, TestServer, dataValue, token } from "./harness.js";

interface Stats {
  connections: number;
  users: number;
  rooms: number;
  threads: number;
  runs_active: number;
  counters: { messages_out: number; publishes: number; messages_in: number };
}

describe("the operations dashboard", () => {
  let server: TestServer;
  let browser: Browser;
  let page: Page;
  const clients: SwitchboardClient[] = [];
  let traffic: ReturnType<typeof setInterval> | undefined;

  const connect = async (user: string, thread?: string): Promise<SwitchboardClient> => {
    const client = new SwitchboardClient({ url: server.ws, token: async () => token(user), WebSocket, ...(thread ? { thread } : {}) });
    await client.connect();
    await client.join("lobby");
    clients.push(client);
    return client;
  };

  before(async () => {
    server = await TestServer.start();
    await connect("alice", "t-1");
    await connect("bob");
    await connect("carol");
    // Traffic for the whole test: a room message every 50 ms, a run kept in progress.
    traffic = setInterval(() => void server.publish({ room: "lobby" }, "tick", { at: Date.now() }).catch(() => {}), 50);
    await server.runEvent("alice", "run-1", { event: "agent_started", agent: "helper", thread: "t-1" });
    browser = await Browser.launch();
  });
  after(async () => {
    clearInterval(traffic);
    for (const client of clients) client.close();
    await browser?.close();
    await server?.stop();
  });

  const stats = async (): Promise<Stats> => (await server.api("GET", "/stats")) as Stats;

  test("signs in with the API key and goes live; the session cookie is out of the page's reach", async () => {
    page = await browser.open(`${server.http}/dashboard`);
    await page.waitForSelector("#login-form");
    await page.fill("#api-key", API_KEY);
    await page.click("#sign-in");
    await page.waitForSelector("#status[data-state=live]");
    assert.equal(await page.inputValue("#api-key"), "", "the key is not kept in the form");
    assert.equal(await page.evaluate(() => document.cookie), "", "HttpOnly: scripts cannot read the session");
    assert.equal(await page.locator("#board").getAttribute("data-nodes"), "1");
  });

  test("shows the figures of /api/stats as of its latest refresh", async () => {
    const before = await stats();
    const fetchedAt = Date.now();
    // A refresh sampled after that answer.
    await page.waitForFunction((t) => Number(document.getElementById("board")?.dataset.at) > t, fetchedAt);
    const shown = {
      connections: await dataValue(page, "#connections"),
      users: await dataValue(page, "#users"),
      rooms: await dataValue(page, "#rooms"),
      threads: await dataValue(page, "#threads"),
      runs_active: await dataValue(page, "#runs-active"),
      messages_out: await dataValue(page, "#messages-out"),
      publishes: await dataValue(page, "#publishes"),
    };
    const afterwards = await stats();
    // Gauges that the traffic leaves alone: exactly the API's.
    for (const gauge of ["connections", "users", "rooms", "threads", "runs_active"] as const) {
      assert.equal(shown[gauge], before[gauge], gauge);
      assert.equal(afterwards[gauge], before[gauge], `${gauge} did not move meanwhile`);
    }
    assert.deepEqual([shown.connections, shown.users, shown.threads, shown.runs_active], [3, 3, 1, 1]);
    // Counters the traffic moves: between the answer before and the answer after.
    for (const counter of ["messages_out", "publishes"] as const) {
      assert.ok(before.counters[counter] <= shown[counter] && shown[counter] <= afterwards.counters[counter], `${counter}: ${before.counters[counter]} <= ${shown[counter]} <= ${afterwards.counters[counter]}`);
    }
    assert.ok(shown.publishes > 0, "the traffic is counted");
    assert.ok((await dataValue(page, "#rate-messages-out")) > 0, "a rate is shown while traffic runs");
    // The health bands add up to the connections, and the node's row says the same.
    const bands = await page.locator("#health .bar").evaluateAll((bars) => bars.map((b) => Number(b.getAttribute("data-value"))));
    assert.equal(bands.length, 5);
    assert.equal(bands.reduce((a, b) => a + b, 0), shown.connections);
    assert.equal(await page.locator("#nodes tbody tr").count(), 1);
    assert.equal(await page.locator("#nodes tbody tr").getAttribute("data-connections"), String(shown.connections));
    assert.equal(await page.locator("#budgets .meter[data-name='history bytes']").count(), 1);
  });

  test("looks a user up and disconnects them: their client is closed with 4002", async () => {
    const carol = clients[2]!;
    const ids = await server.connections("carol");
    assert.equal(ids.length, 1);
    await page.fill("#lookup-user", "carol");
    await page.press("#lookup-user", "Enter");
    await page.waitForSelector("#lookup-summary[data-user=carol][data-connections='1']");
    assert.equal(await page.locator("#lookup-connections tbody tr").getAttribute("data-conn"), ids[0]);
    const closed = next(carol, "disconnected");
    await page.click("#disconnect");
    const event = await closed;
    assert.deepEqual([event.code, event.reconnect], [4002, false]);
    await page.waitForSelector("#disconnect-result[data-closed='1']");
    await page.waitForSelector("#lookup-summary[data-user=carol][data-connections='0']");
    assert.deepEqual(await server.connections("carol"), []);
    // The next refresh counts one connection fewer.
    await page.waitForFunction(() => document.getElementById("connections")?.dataset.value === "2");
  });

  test("refuses a wrong key and shows nothing", async () => {
    const fresh = await Browser.launch();
    try {
      const other = await fresh.open(`${server.http}/dashboard`);
      await other.fill("#api-key", "not-the-api-key");
      await other.click("#sign-in");
      await other.waitForSelector("#login-error:has-text('401')");
      assert.equal(await other.locator("#board").isHidden(), true);
      assert.equal(await other.locator("#status").getAttribute("data-state"), "signed-out");
      // Its feed is refused too: no session cookie.
      const refused = await other.evaluate(
        () =>
          new Promise<number>((resolve) => {
            const socket = new WebSocket(`ws://${location.host}/dashboard/feed`);
            socket.onmessage = () => resolve(-1);
            socket.onclose = (event) => resolve(event.code);
          }),
      );
      assert.equal(refused, 1006, "the handshake is refused");
    } finally {
      await fresh.close();
    }
  });
});
