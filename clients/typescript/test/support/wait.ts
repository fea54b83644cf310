/** Waiting for what a client receives, with a hang guard (never a timing assertion). */

import type { ClientEvents, SwitchboardClient } from "../../src/index.js";
import { PATIENCE_MS } from "./server.js";

/** The next `name` event of `client` that satisfies `accept`. */
export function next<K extends keyof ClientEvents>(
  client: SwitchboardClient,
  name: K,
  accept: (event: ClientEvents[K]) => boolean = () => true,
  patienceMs = PATIENCE_MS,
): Promise<ClientEvents[K]> {
  return new Promise((resolve, reject) => {
    const guard = setTimeout(() => {
      off();
      reject(new Error(`no ${String(name)} event within ${patienceMs} ms`));
    }, patienceMs);
    const off = client.on(name, (event) => {
      if (!accept(event)) return;
      clearTimeout(guard);
      off();
      resolve(event);
    });
  });
}

/** Records every event of `name`; `until` waits for a condition on what was recorded. */
export class Recorder<T> {
  readonly seen: T[] = [];
  private waiters: { check: () => boolean; resolve: () => void }[] = [];

  constructor(client: SwitchboardClient, name: keyof ClientEvents, map: (event: never) => T | undefined = (e) => e as T) {
    client.on(name, (event) => {
      const value = map(event as never);
      if (value === undefined) return;
      this.seen.push(value);
      this.waiters = this.waiters.filter((w) => {
        if (!w.check()) return true;
        w.resolve();
        return false;
      });
    });
  }

  /** Resolves once `check(seen)` holds. */
  until(check: (seen: readonly T[]) => boolean, patienceMs = PATIENCE_MS): Promise<void> {
    if (check(this.seen)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const guard = setTimeout(
        () => reject(new Error(`condition not met within ${patienceMs} ms; seen ${JSON.stringify(this.seen)}`)),
        patienceMs,
      );
      this.waiters.push({
        check: () => check(this.seen),
        resolve: () => {
          clearTimeout(guard);
          resolve();
        },
      });
    });
  }
}
