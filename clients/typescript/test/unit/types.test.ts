import { test } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { SwitchboardClient, type WebSocketConstructor } from "../../src/index.js";

// Checked by the compiler: the `ws` package and the browser's WebSocket both fit the client.
const fromWs: WebSocketConstructor = WebSocket;
const fromBrowser: WebSocketConstructor | undefined = (globalThis as { WebSocket?: typeof globalThis.WebSocket }).WebSocket;

test("without a WebSocket in the environment (Node 20), the client asks for one by name", { skip: fromBrowser !== undefined }, () => {
  assert.throws(() => new SwitchboardClient({ url: "ws://x/ws", token: "t" }), /pass one as `WebSocket` \(in Node 20, the `ws` package\)/);
  assert.doesNotThrow(() => new SwitchboardClient({ url: "ws://x/ws", token: "t", WebSocket: fromWs }));
});
