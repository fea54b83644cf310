/** The error the SDK rejects promises with and reports on the `error` event. */

import type { ErrorCode } from "./protocol.js";

/**
 * Codes of the SDK's own (the server's are {@link ErrorCode}):
 * - `timeout`: no answer within the request's timeout;
 * - `disconnected`: the connection closed before the answer (the request may or may not have
 *   been carried out);
 * - `not_connected`: the request needs an open connection and there is none;
 * - `closed`: the client was closed, or stopped reconnecting;
 * - `token`: the token provider failed;
 * - `store`: the position store failed to load or save;
 * - `socket`: the WebSocket reported an error;
 * - `bad_frame`: the server sent a frame that is not a JSON object with a string `type`.
 */
export type ClientErrorCode = "timeout" | "disconnected" | "not_connected" | "closed" | "token" | "store" | "socket" | "bad_frame";

/**
 * A code an application's backend chose when it declined an application frame (1 to 64
 * characters of `[a-z0-9_]`, e.g. `quota_exceeded`; docs/API.md, "The answer"), or the standalone
 * server's `backend_error` when the backend refused it without a valid code of its own.
 */
export type ApplicationErrorCode = string & {};

/** Every code a {@link SwitchboardError} carries: the server's, the SDK's, or the application's. */
export type SwitchboardErrorCode = ErrorCode | ClientErrorCode | "backend_error" | ApplicationErrorCode;

/** A refused or failed request, or a problem of the connection. */
export class SwitchboardError extends Error {
  override readonly name = "SwitchboardError";

  constructor(
    /**
     * The server's error code ({@link ErrorCode}, e.g. `backend_unavailable`), the SDK's
     * ({@link ClientErrorCode}), or, for `SwitchboardClient.send`, the code the
     * application's backend chose.
     */
    readonly code: SwitchboardErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
