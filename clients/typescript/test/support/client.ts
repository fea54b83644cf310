/**
 * The client the integration tests drive: Node's `ws` as its WebSocket, a fresh token for its
 * user at every connect, and reconnects quick enough for a test to wait for.
 */

import WebSocket from "ws";
import { SwitchboardClient, type ClientOptions } from "../../src/index.js";
import { token } from "./server.js";

/** A client of `url` (a test server's `ws`) for `user`; `options` override the defaults. */
export function testClient(url: string, user: string, options: Partial<ClientOptions> = {}): SwitchboardClient {
  return new SwitchboardClient({
    url,
    token: async () => token(user),
    WebSocket,
    backoff: { initialMs: 20, maxMs: 200 },
    ...options,
  });
}
