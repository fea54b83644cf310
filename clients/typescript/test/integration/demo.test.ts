/** The demo routes of the server: where they exist, and what they refuse. */

import { test } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { SwitchboardClient } from "../../src/index.js";
import { TestServer, token } from "../support/server.js";

async function status(url: string, init: RequestInit = {}): Promise<number> {
  return (await fetch(url, init)).status;
}

const json = { "content-type": "application/json" };

test("on the development credentials, /demo/token signs a token the server accepts", async () => {
  const server = await TestServer.start({ developmentCredentials: true });
  try {
    const response = await fetch(`${server.http}/demo/token`, { method: "POST", headers: json, body: JSON.stringify({ user: "dev" }) });
    assert.equal(response.status, 200);
    const { token: minted } = (await response.json()) as { token: string };
    const client = new SwitchboardClient({ url: server.ws, token: minted, WebSocket });
    assert.equal((await client.connect()).user, "dev");
    client.close();
    for (const body of ['{"user":""}', `{"user":"${"x".repeat(65)}"}`, "not json", '{"user":"a","admin":true}']) {
      assert.equal(await status(`${server.http}/demo/token`, { method: "POST", headers: json, body }), 400, body);
    }
  } finally {
    await server.stop();
  }
});

test("with real credentials there is no token endpoint, and /demo/run needs a valid client token", async () => {
  const server = await TestServer.start();
  try {
    assert.equal(await status(`${server.http}/demo`), 200);
    assert.equal(await status(`${server.http}/demo/switchboard.min.js`), 200);
    assert.equal(await status(`${server.http}/demo/token`, { method: "POST", headers: json, body: '{"user":"x"}' }), 404);
    const run = (authorization?: string, body = "{}") =>
      status(`${server.http}/demo/run`, { method: "POST", headers: { ...json, ...(authorization ? { authorization } : {}) }, body });
    assert.equal(await run(), 401);
    assert.equal(await run(`Bearer ${token("mallory", undefined, "another-secret-of-enough-length")}`), 401);
    assert.equal(await run(`Bearer ${token("alice")}`, '{"unknown":1}'), 400);
    assert.equal(await run(`Bearer ${token("alice")}`, '{"thread":"t","step_ms":1}'), 200);
  } finally {
    await server.stop();
  }
});

test("in staging the demo is off unless a setting enables it", async () => {
  const off = await TestServer.start({ env: { SWITCHBOARD_ENV: "staging" } });
  try {
    assert.equal(await status(`${off.http}/demo`), 404);
    assert.equal(await status(`${off.http}/demo/run`, { method: "POST", headers: json, body: "{}" }), 404);
  } finally {
    await off.stop();
  }
  const on = await TestServer.start({ env: { SWITCHBOARD_ENV: "staging" }, settings: "[demo]\nenabled = true\n" });
  try {
    assert.equal(await status(`${on.http}/demo`), 200);
  } finally {
    await on.stop();
  }
});
