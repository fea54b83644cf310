/**
 * Storage of positions, so that a page reload resumes too: the adapter interface, an in-memory
 * store and a `localStorage` store.
 */

import type { PositionSnapshot } from "./positions.js";

/**
 * Where a client keeps its positions between page loads. `load` is called once, before the
 * first connection; `save` after positions changed (at most every `persistIntervalMs`, and at
 * every disconnect and close). Both may be synchronous or return a promise.
 */
export interface PositionStore {
  load(): PositionSnapshot | null | Promise<PositionSnapshot | null>;
  save(snapshot: PositionSnapshot): void | Promise<void>;
}

/** The part of the Web Storage API the `localStorage` store uses. */
export interface KeyValueStorage {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

/** Keeps the last snapshot in memory (for tests, or to share positions between clients). */
export class MemoryStore implements PositionStore {
  private snapshot: PositionSnapshot | null = null;

  load(): PositionSnapshot | null {
    return this.snapshot;
  }

  save(snapshot: PositionSnapshot): void {
    this.snapshot = snapshot;
  }
}

/**
 * Keeps the positions in `localStorage` (or any {@link KeyValueStorage}) under `key`, as JSON.
 * A value that is not a snapshot (another program's, or a corrupted one) is ignored: the client
 * then connects without positions.
 */
export class LocalStorageStore implements PositionStore {
  private readonly storage: KeyValueStorage;

  constructor(
    private readonly key = "switchboard:positions",
    storage?: KeyValueStorage,
  ) {
    const fallback = (globalThis as { localStorage?: KeyValueStorage }).localStorage;
    const chosen = storage ?? fallback;
    if (chosen === undefined) throw new Error("LocalStorageStore: no localStorage in this environment");
    this.storage = chosen;
  }

  load(): PositionSnapshot | null {
    const text = this.storage.getItem(this.key);
    if (text === null) return null;
    try {
      const value: unknown = JSON.parse(text);
      return isSnapshot(value) ? value : null;
    } catch {
      return null;
    }
  }

  save(snapshot: PositionSnapshot): void {
    this.storage.setItem(this.key, JSON.stringify(snapshot));
  }

  /** Forget the saved positions (at sign-out). */
  clear(): void {
    this.storage.removeItem(this.key);
  }
}

function isSnapshot(value: unknown): value is PositionSnapshot {
  if (typeof value !== "object" || value === null) return false;
  const { user, streams } = value as { user?: unknown; streams?: unknown };
  return (user === null || typeof user === "string") && typeof streams === "object" && streams !== null;
}
