/**
 * A tiny application backend for the server's webhook (docs/API.md, "Talking to your backend"):
 * a Node HTTP server that verifies each delivery's signature with the JavaScript recipe of
 * docs/API.md ("Verifying a webhook") and answers with what the test's `answer` decides.
 */

import { createHmac, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";

/** The secret the server signs deliveries with (`[webhook] secret`). */
export const WEBHOOK_SECRET = "a-webhook-secret-for-the-client-tests";

/** docs/API.md's recipe, as published: the signature of `timestamp.body` with `secret`. */
function verified(headers: IncomingHttpHeaders, rawBody: Buffer, secret: string, windowSecs = 300): boolean {
  const timestamp = String(headers["x-switchboard-timestamp"] ?? "");
  if (!/^\d+$/.test(timestamp) || Math.abs(Date.now() / 1000 - Number(timestamp)) > windowSecs) return false;
  const expected = createHmac("sha256", secret).update(`${timestamp}.`).update(rawBody).digest();
  return String(headers["x-switchboard-signature"] ?? "")
    .split(",")
    .map((v) => v.trim())
    .filter((v) => v.startsWith("v1="))
    .some((v) => {
      const given = Buffer.from(v.slice(3), "hex");
      return given.length === expected.length && timingSafeEqual(given, expected);
    });
}

/** One `frame` event as the backend received it. */
export interface FrameEvent {
  readonly id: string;
  readonly event: string;
  readonly user: string;
  readonly conn: string;
  readonly type: string;
  readonly data: unknown;
}

/** What the backend answers: an HTTP status and a JSON body (or none). */
export interface BackendAnswer {
  readonly status: number;
  readonly body?: unknown;
}

/** A running backend. */
export class Backend {
  /** Every verified `frame` event, in the order received. */
  readonly frames: FrameEvent[] = [];
  /** Deliveries whose signature did not verify (answered 401). */
  unsigned = 0;

  private constructor(
    private readonly server: Server,
    /** `http://127.0.0.1:port/hook`. */
    readonly url: string,
  ) {}

  /** Listen on an ephemeral port; `answer` decides each frame's answer. */
  static async start(answer: (frame: FrameEvent) => BackendAnswer): Promise<Backend> {
    let backend: Backend | undefined;
    const server = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on("data", (chunk: Buffer) => chunks.push(chunk));
      request.on("end", () => {
        const body = Buffer.concat(chunks);
        if (!verified(request.headers, body, WEBHOOK_SECRET)) {
          if (backend !== undefined) backend.unsigned += 1;
          response.writeHead(401).end();
          return;
        }
        const event = JSON.parse(body.toString("utf8")) as FrameEvent;
        if (event.event !== "frame") {
          response.writeHead(204).end();
          return;
        }
        backend?.frames.push(event);
        const { status, body: reply } = answer(event);
        if (reply === undefined) response.writeHead(status).end();
        else response.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(reply));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    backend = new Backend(server, `http://127.0.0.1:${port}/hook`);
    return backend;
  }

  /** Stop listening and drop open connections: the server then finds no backend there. */
  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
