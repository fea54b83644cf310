/** The clock the client schedules with: the global timers, or a manual one in tests. */

/** Schedules callbacks. `now` is in milliseconds. */
export interface Timers {
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  now(): number;
}

/** The environment's timers. */
export const globalTimers: Timers = {
  setTimeout: (callback, ms) => globalThis.setTimeout(callback, ms),
  clearTimeout: (handle) => globalThis.clearTimeout(handle as ReturnType<typeof globalThis.setTimeout>),
  now: () => (typeof performance !== "undefined" ? performance.now() : Date.now()),
};
