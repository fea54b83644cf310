/**
 * Positions: the last (`epoch`, `seq`) this client received on each stream, kept exactly as
 * docs/PROTOCOL.md §7 step 1 says, and what the client asks for when it reconnects (step 2 and
 * step 3).
 */

import type { GapFrame, Position, StreamName } from "./protocol.js";

/** The positions of one user, as saved by a {@link PositionStore}. */
export interface PositionSnapshot {
  /** The user the positions belong to (from `welcome`); `null` before the first welcome. */
  readonly user: string | null;
  /** Stream name → position. */
  readonly streams: Readonly<Record<string, Position>>;
}

/** The positions of one client. */
export class Positions {
  private user: string | null = null;
  private readonly streams = new Map<string, Position>();
  private changed = false;

  /** Positions restored from a snapshot (a page reload, with a store). */
  static from(snapshot: PositionSnapshot | null): Positions {
    const positions = new Positions();
    if (snapshot !== null) {
      positions.user = snapshot.user;
      for (const [stream, position] of Object.entries(snapshot.streams)) {
        if (isPosition(position)) positions.streams.set(stream, { epoch: position.epoch, seq: position.seq });
      }
    }
    return positions;
  }

  /** The user these positions belong to. */
  get owner(): string | null {
    return this.user;
  }

  /**
   * Take the positions for `user`: if they belonged to another user, forget them all. Returns
   * whether positions of another user were dropped.
   */
  claim(user: string): boolean {
    if (this.user === user) return false;
    const foreign = this.user !== null && this.streams.size > 0;
    this.user = user;
    this.streams.clear();
    this.changed = true;
    return foreign;
  }

  /** The position held on `stream`, if any. */
  get(stream: string): Position | undefined {
    return this.streams.get(stream);
  }

  /**
   * A sequenced frame arrived (a `message` or an agent frame with `stream`): replace the
   * position when the epoch differs or `seq` is larger; never move it backwards (§7 step 1).
   * Returns whether the position moved.
   */
  observe(stream: StreamName, epoch: number, seq: number): boolean {
    const kept = this.streams.get(stream);
    if (kept !== undefined && kept.epoch === epoch && kept.seq >= seq) return false;
    this.streams.set(stream, { epoch, seq });
    this.changed = true;
    return true;
  }

  /** A `gap`: the replay that follows starts after (`gap.epoch`, `gap.to`) (§7 step 1). */
  skip(gap: GapFrame): void {
    this.streams.set(gap.stream, { epoch: gap.epoch, seq: gap.to });
    this.changed = true;
  }

  /** Forget the position on `stream` (the client left the room). */
  forget(stream: string): void {
    if (this.streams.delete(stream)) this.changed = true;
  }

  /** Whether anything changed since the last {@link takeChanged}. */
  takeChanged(): boolean {
    const changed = this.changed;
    this.changed = false;
    return changed;
  }

  /** What a store saves. */
  snapshot(): PositionSnapshot {
    return { user: this.user, streams: Object.fromEntries(this.streams) };
  }
}

function isPosition(value: unknown): value is Position {
  if (typeof value !== "object" || value === null) return false;
  const { epoch, seq } = value as { epoch?: unknown; seq?: unknown };
  return Number.isSafeInteger(epoch) && Number.isSafeInteger(seq) && (seq as number) >= 0;
}
