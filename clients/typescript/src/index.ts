/**
 * `@switchboard/client`: the Switchboard client for browsers and Node.
 *
 * ```ts
 * import { SwitchboardClient } from "@switchboard/client";
 * const client = new SwitchboardClient({ url: "wss://example.com/ws", token: () => fetchToken() });
 * client.on("message", (m) => console.log(m.event, m.data));
 * await client.connect();
 * await client.join("lobby");
 * ```
 */

export {
  SwitchboardClient,
  type ClientEvents,
  type ClientOptions,
  type ConnectionState,
  type DisconnectedEvent,
  type JoinOptions,
  type RequestOptions,
  type SendOptions,
  type Transport,
} from "./client.js";
export type {
  SocketCloseEvent,
  SocketEvent,
  SocketMessageEvent,
  TokenSource,
  WebSocketConstructor,
  WebSocketLike,
} from "./connection.js";
export type { Handler } from "./emitter.js";
export { SseSocket, sseUrl, type EventSourceConstructor, type EventSourceLike, type FetchLike, type SseOptions } from "./sse.js";
export { SwitchboardError, type ApplicationErrorCode, type ClientErrorCode, type SwitchboardErrorCode } from "./errors.js";
export { Positions, type PositionSnapshot } from "./positions.js";
export * from "./protocol.js";
export { Backoff, classifyClose, type BackoffOptions, type CloseVerdict } from "./reconnect.js";
export {
  RunAssembler,
  type RunAssemblerOptions,
  type RunEnding,
  type RunExtension,
  type RunStatus,
  type RunView,
  type ToolCall,
} from "./runs.js";
export { LocalStorageStore, MemoryStore, type KeyValueStorage, type PositionStore } from "./storage.js";
export type { Timers } from "./timers.js";
