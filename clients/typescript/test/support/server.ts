/**
 * The real `switchboard` binary, started by a test: on an ephemeral port (or a given one),
 * with test credentials and optional settings (TOML), plus a client of its backend API and
 * tokens signed like the server's (HS256).
 *
 * The binary is `target/debug/switchboard` of the repository (build it with
 * `cargo build -p switchboard-server`), or `$SWITCHBOARD_BIN`.
 */

import { spawn, type ChildProcess } from "node:child_process";
import { createHmac } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const SECRET = "a-test-secret-that-is-long-enough-for-staging";
export const API_KEY = "test-api-key-of-at-least-32-characters";
/** How long anything may take before a test gives up: a hang guard, not a timing assertion. */
export const PATIENCE_MS = 20_000;

const REPO = fileURLToPath(new URL("../../../../../", import.meta.url));

/** The server binary the tests run. */
export function serverBinary(): string {
  return process.env.SWITCHBOARD_BIN ?? join(REPO, "target", "debug", "switchboard");
}

/** Options of a test server. */
export interface ServerOptions {
  /** Settings file contents (TOML), e.g. `[history]\nmax_messages = 3`. */
  readonly settings?: string;
  /** `host:port` to listen on; default an ephemeral port. */
  readonly listen?: string;
  /** Extra environment (`SWITCHBOARD_*`). */
  readonly env?: Readonly<Record<string, string>>;
  /** Use the development credentials instead of the test ones. */
  readonly developmentCredentials?: boolean;
}

/** A running server process. */
export class TestServer {
  private constructor(
    private readonly child: ChildProcess,
    /** `127.0.0.1:port`. */
    readonly address: string,
    private readonly options: ServerOptions,
    /** Everything it wrote to stderr, for failure messages. */
    readonly log: string[],
  ) {}

  /** Start the binary and wait until it announces its address. */
  static async start(options: ServerOptions = {}): Promise<TestServer> {
    const dir = mkdtempSync(join(tmpdir(), "switchboard-test-"));
    const args = ["serve", "--listen", options.listen ?? "127.0.0.1:0", "--shards", "2"];
    if (options.settings !== undefined) {
      const file = join(dir, "switchboard.toml");
      writeFileSync(file, options.settings);
      args.push("--config", file);
    }
    const env: NodeJS.ProcessEnv = { ...process.env, RUST_LOG: "warn", ...options.env };
    delete env.SWITCHBOARD_CONFIG;
    if (options.developmentCredentials) {
      delete env.SWITCHBOARD_AUTH_SECRET;
      delete env.SWITCHBOARD_API_KEY;
    } else {
      env.SWITCHBOARD_AUTH_SECRET = SECRET;
      env.SWITCHBOARD_API_KEY = API_KEY;
    }
    const child = spawn(serverBinary(), args, { env, stdio: ["ignore", "ignore", "pipe"] });
    const log: string[] = [];
    const address = await new Promise<string>((resolve, reject) => {
      const guard = setTimeout(() => reject(new Error(`no address announced:\n${log.join("")}`)), PATIENCE_MS);
      child.on("error", (e) => {
        clearTimeout(guard);
        reject(new Error(`cannot start ${serverBinary()} (cargo build -p switchboard-server): ${e.message}`));
      });
      child.on("exit", (code) => {
        clearTimeout(guard);
        reject(new Error(`the server exited (${code}) before listening:\n${log.join("")}`));
      });
      child.stderr?.setEncoding("utf8");
      child.stderr?.on("data", (chunk: string) => {
        log.push(chunk);
        const found = /switchboard listening on http:\/\/([0-9.]+:[0-9]+)/.exec(log.join(""));
        if (found?.[1] !== undefined) {
          clearTimeout(guard);
          resolve(found[1]);
        }
      });
    });
    child.removeAllListeners("exit");
    return new TestServer(child, address, options, log);
  }

  /** `http://address`. */
  get http(): string {
    return `http://${this.address}`;
  }

  /** The client endpoint. */
  get ws(): string {
    return `ws://${this.address}/ws`;
  }

  /** The port it listens on. */
  get port(): number {
    return Number(this.address.split(":")[1]);
  }

  /** Stop it with SIGTERM (graceful: clients get 1001) and wait for it to exit. */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => this.child.once("exit", () => resolve()));
    this.child.kill("SIGTERM");
    await exited;
  }

  /** Stop it, then start a new process with the same options on the same port. */
  async restart(): Promise<TestServer> {
    await this.stop();
    return TestServer.start({ ...this.options, listen: this.address });
  }

  /** A backend API call; throws on a status other than 2xx. */
  async api(method: string, path: string, body?: unknown): Promise<unknown> {
    const response = await fetch(`${this.http}/api${path}`, {
      method,
      headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
    return JSON.parse(text) as unknown;
  }

  /** `POST /api/publish`. */
  publish(to: unknown, event: string, data: unknown): Promise<unknown> {
    return this.api("POST", "/publish", { to, event, data });
  }

  /** `POST /api/runs/{user}/{run}/events`. */
  runEvent(user: string, run: string, event: Record<string, unknown>): Promise<unknown> {
    return this.api("POST", `/runs/${encodeURIComponent(user)}/${encodeURIComponent(run)}/events`, event);
  }

  /** The ids of the user's connections (`GET /api/users/{user}`). */
  async connections(user: string): Promise<string[]> {
    const presence = (await this.api("GET", `/users/${encodeURIComponent(user)}`)) as { connections: { id: string }[] };
    return presence.connections.map((c) => c.id);
  }
}

function base64url(data: string | Buffer): string {
  return Buffer.from(data).toString("base64url");
}

/** A client token for `user` signed with the test secret, as `switchboard token` mints it. */
export function token(user: string, rooms?: readonly string[], secret = SECRET, ttlSecs = 600): string {
  const iat = Math.floor(Date.now() / 1000);
  const header = base64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const claims = base64url(JSON.stringify({ sub: user, iat, exp: iat + ttlSecs, ...(rooms ? { rooms } : {}) }));
  const signature = createHmac("sha256", secret).update(`${header}.${claims}`).digest("base64url");
  return `${header}.${claims}.${signature}`;
}
