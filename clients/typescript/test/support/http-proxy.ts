/**
 * An HTTP proxy that refuses WebSocket upgrades (502, as a proxy that does not speak them) and
 * forwards every other request to the server, streaming both ways, so `GET /sse` and
 * `POST /sse/{conn}` work through it. A test can cut it: every response in flight is destroyed
 * (the client sees its stream fail) and new requests are answered 502 until it is unblocked.
 */

import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from "node:http";

export class UpgradeRefusingProxy {
  private blocked = false;
  /** How many upgrades it refused. */
  refusedUpgrades = 0;

  private constructor(
    private readonly server: Server,
    /** `127.0.0.1:port` of the proxy. */
    readonly address: string,
    private readonly inFlight: Set<ServerResponse>,
  ) {}

  /** A proxy to `target` (`host:port`) on an ephemeral port. */
  static async start(target: string): Promise<UpgradeRefusingProxy> {
    const [host, port] = target.split(":");
    const inFlight = new Set<ServerResponse>();
    let proxy: UpgradeRefusingProxy | undefined;
    const server = createServer((req: IncomingMessage, res: ServerResponse) => {
      if (proxy === undefined || proxy.blocked) {
        res.writeHead(502).end();
        return;
      }
      inFlight.add(res);
      res.on("close", () => inFlight.delete(res));
      const upstream = request(
        { host, port: Number(port), method: req.method, path: req.url, headers: req.headers },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          res.flushHeaders();
          answer.pipe(res);
          res.on("close", () => answer.destroy());
        },
      );
      upstream.on("error", () => res.destroy());
      req.pipe(upstream);
    });
    server.on("upgrade", (_req, socket) => {
      if (proxy !== undefined) proxy.refusedUpgrades += 1;
      socket.end("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port: listening } = server.address() as { port: number };
    proxy = new UpgradeRefusingProxy(server, `127.0.0.1:${listening}`, inFlight);
    return proxy;
  }

  /** The client endpoint through the proxy (its WebSocket upgrades are refused). */
  get ws(): string {
    return `ws://${this.address}/ws`;
  }

  /** Destroy every response in flight and answer 502 until {@link unblock}. */
  cut(): void {
    this.blocked = true;
    for (const res of this.inFlight) res.destroy();
    this.inFlight.clear();
  }

  /** Forward requests again. */
  unblock(): void {
    this.blocked = false;
  }

  /** Stop listening and destroy every response in flight. */
  async stop(): Promise<void> {
    this.cut();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
