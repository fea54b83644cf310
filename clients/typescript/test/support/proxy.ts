/**
 * A TCP proxy between clients and a server that a test can cut: every connection through it is
 * destroyed at once (the client sees its socket fail, with no close frame), and while it is
 * blocked, new connections are refused. The server is left alone.
 */

import { createConnection, createServer, type Server, type Socket } from "node:net";

export class CutProxy {
  private blocked = false;

  private constructor(
    private readonly server: Server,
    /** `127.0.0.1:port` of the proxy. */
    readonly address: string,
    private readonly pairs: Set<[Socket, Socket]>,
  ) {}

  /** A proxy to `target` (`host:port`) on an ephemeral port. */
  static async start(target: string): Promise<CutProxy> {
    const [host, port] = target.split(":");
    const pairs = new Set<[Socket, Socket]>();
    let proxy: CutProxy | undefined;
    const server = createServer((client) => {
      if (proxy === undefined || proxy.blocked) {
        client.resetAndDestroy();
        return;
      }
      const upstream = createConnection({ host, port: Number(port) });
      const pair: [Socket, Socket] = [client, upstream];
      pairs.add(pair);
      const end = (): void => {
        pairs.delete(pair);
        client.destroy();
        upstream.destroy();
      };
      client.on("error", end).on("close", end);
      upstream.on("error", end).on("close", end);
      client.pipe(upstream);
      upstream.pipe(client);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port: listening } = server.address() as { port: number };
    proxy = new CutProxy(server, `127.0.0.1:${listening}`, pairs);
    return proxy;
  }

  /** The client endpoint through the proxy. */
  get ws(): string {
    return `ws://${this.address}/ws`;
  }

  /** Destroy every connection through the proxy and refuse new ones until {@link unblock}. */
  cut(): void {
    this.blocked = true;
    for (const [client, upstream] of this.pairs) {
      client.resetAndDestroy();
      upstream.destroy();
    }
    this.pairs.clear();
  }

  /** Accept connections again. */
  unblock(): void {
    this.blocked = false;
  }

  /** Stop listening and destroy every connection. */
  async stop(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
