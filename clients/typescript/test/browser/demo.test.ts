/**
 * The demo page in a real Chromium, served by the server binary: it connects with the client
 * bundle, receives a room message and a whole agent run, and survives the loss of its socket
 * (resuming, nothing lost, nothing twice) — all read from the page's DOM.
 */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import type { Page } from "playwright-core";
import { siteBehindProxy, texts, token } from "./harness.js";

describe("the demo page", () => {
  const site = siteBehindProxy();
  let page: Page;

  const messages = (): Promise<string[]> => texts(page, "#messages li");
  const waitForMessage = (text: string) =>
    page.waitForFunction((t) => [...document.querySelectorAll("#messages li")].some((li) => li.textContent?.includes(t)), text);

  test("connects with a token typed in and joins the room", async () => {
    page = await site.open("/demo");
    await page.fill("#user", "alice");
    await page.fill("#token", token("alice"));
    await page.click("#connect");
    await page.waitForSelector("#state[data-state=connected]");
    await page.waitForSelector("#chat[data-joined=lobby]");
  });

  test("receives a room message published through the API", async () => {
    await site.server.publish({ room: "lobby" }, "chat", { text: "hello from the API" });
    await waitForMessage("hello from the API");
    assert.deepEqual(await messages(), ["chat: hello from the API"]);
  });

  test("shows a whole scripted agent run: thinking, paired tool calls, the answer", async () => {
    await page.click("#run");
    const run = page.locator(".run[data-status=completed]");
    await run.waitFor();
    assert.deepEqual(await run.locator(".tools li").evaluateAll((lis) => lis.map((li) => [li.getAttribute("data-tool"), li.getAttribute("data-status")])), [
      ["weather", "completed"],
      ["wind", "completed"],
    ]);
    assert.match((await run.locator(".tools li").first().textContent()) ?? "", /sunny/);
    assert.equal(await run.locator(".thinking").textContent(), "Sunny and warm; checking the wind as well.");
    assert.match((await run.locator(".ending").textContent()) ?? "", /^Answer: Light clothes/);
  });

  test("survives a dropped socket: what was published meanwhile arrives once, in order, and a run in flight completes", async () => {
    await page.click("#run");
    await page.waitForSelector(".run[data-status=running] .tools li");
    const runs = await page.locator(".run").count();
    site.proxy.cut();
    await page.waitForSelector("#state[data-state=disconnected]");
    for (const n of [1, 2, 3]) await site.server.publish({ room: "lobby" }, "chat", { text: `while away ${n}` });
    await site.server.publish({ user: "alice" }, "notice", { text: "for alice while away" });
    site.proxy.unblock();
    await page.waitForSelector("#state[data-state=connected][data-connections='2']");
    // A marker published after the reconnect: anything replayed twice would come before it.
    await site.server.publish({ room: "lobby" }, "chat", { text: "after the reconnect" });
    await waitForMessage("after the reconnect");
    await page.waitForFunction((n) => document.querySelectorAll(".run").length === n && document.querySelectorAll(".run[data-status=running]").length === 0, runs);
    // The user stream is replayed right after welcome, then each room as it is joined again.
    assert.deepEqual((await messages()).slice(1), [
      "notice: for alice while away",
      "chat: while away 1",
      "chat: while away 2",
      "chat: while away 3",
      "chat: after the reconnect",
    ]);
    assert.match((await page.locator("#last-close").textContent()) ?? "", /last close: 1006/);
    assert.equal(await page.locator(".run[data-status=completed]").count(), runs);
  });

  test("resumes after a page reload from the positions it kept in localStorage", async () => {
    await page.reload();
    await site.server.publish({ room: "lobby" }, "chat", { text: "during the reload" });
    await site.server.publish({ user: "alice" }, "notice", { text: "for alice during the reload" });
    await page.fill("#user", "alice");
    await page.fill("#token", token("alice"));
    await page.click("#connect");
    await page.waitForSelector("#chat[data-joined=lobby]");
    await site.server.publish({ room: "lobby" }, "chat", { text: "after the reload" });
    await waitForMessage("after the reload");
    assert.deepEqual(await messages(), ["notice: for alice during the reload", "chat: during the reload", "chat: after the reload"]);
    assert.match((await texts(page, "#log li")).join("\n"), /connected as alice \(resumed\)/);
  });
});
