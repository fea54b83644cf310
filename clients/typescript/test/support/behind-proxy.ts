/**
 * A test server with a proxy in front of it that the test can cut, shared by the tests of one
 * `describe`: `const net = serverBehindProxy();` starts both before those tests and stops them
 * after. Clients that must lose their connection connect through `net.proxy`.
 */

import { after, before } from "node:test";
import { CutProxy } from "./proxy.js";
import { TestServer } from "./server.js";

/** What a suite starts before its tests and stops after them. */
export interface Fixture {
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** Start `fixture` before the tests of the calling `describe` and stop it after them. */
export function forTheSuite<F extends Fixture>(fixture: F): F {
  before(() => fixture.start());
  after(() => fixture.stop());
  return fixture;
}

/** The server and the proxy in front of it (set once the suite's `before` ran). */
export class ServerBehindProxy implements Fixture {
  server!: TestServer;
  proxy!: CutProxy;

  async start(): Promise<void> {
    this.server = await TestServer.start();
    this.proxy = await CutProxy.start(this.server.address);
  }

  async stop(): Promise<void> {
    await this.proxy?.stop();
    await this.server?.stop();
  }
}

/** A {@link ServerBehindProxy} for the tests of the calling `describe`. */
export function serverBehindProxy(): ServerBehindProxy {
  return forTheSuite(new ServerBehindProxy());
}
