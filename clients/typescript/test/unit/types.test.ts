import { test } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import type { WebSocketConstructor } from "../../src/index.js";

test("the ws package and the browser's WebSocket are both WebSocket constructors the client accepts", () => {
  // Checked by the compiler: both assignments type-check.
  const node: WebSocketConstructor = WebSocket;
  const browser: WebSocketConstructor | undefined = (globalThis as { WebSocket?: typeof globalThis.WebSocket }).WebSocket;
  assert.equal(typeof node, "function");
  assert.ok(browser === undefined || typeof browser === "function");
});
