/**
 * When to reconnect after a close: the rule of the close code (docs/PROTOCOL.md §5) and the
 * delay, exponential with full jitter.
 */

import { ABNORMAL_CLOSE, CLOSE_CODES, type ReconnectRule } from "./protocol.js";

/** The backoff schedule. */
export interface BackoffOptions {
  /** The ceiling of the first backed-off delay, in ms. Default 500. */
  readonly initialMs?: number;
  /** The largest ceiling, in ms. Default 30 000. */
  readonly maxMs?: number;
  /** How much the ceiling grows per failed attempt. Default 2. */
  readonly factor?: number;
}

/** What the client does after a close. */
export interface CloseVerdict {
  readonly code: number;
  readonly label: string;
  readonly rule: ReconnectRule;
}

/** The label and rule of a close `code` (its `reason` text, when the peer sent one, wins). */
export function classifyClose(code: number, reason: string): CloseVerdict {
  const known = CLOSE_CODES.get(code);
  if (known !== undefined) return { code, label: reason || known.label, rule: known.reconnect };
  if (code === ABNORMAL_CLOSE.code) return { code, label: reason || ABNORMAL_CLOSE.label, rule: ABNORMAL_CLOSE.reconnect };
  // A code the protocol does not list (another server in front, a future code): back off.
  return { code, label: reason || "unknown", rule: "backoff" };
}

/**
 * The delays between attempts. `failures` counts attempts since the last connection that
 * reached `welcome`; it resets there.
 */
export class Backoff {
  private readonly initialMs: number;
  private readonly maxMs: number;
  private readonly factor: number;
  private failures = 0;

  constructor(
    options: BackoffOptions = {},
    private readonly random: () => number = Math.random,
  ) {
    this.initialMs = options.initialMs ?? 500;
    this.maxMs = options.maxMs ?? 30_000;
    this.factor = options.factor ?? 2;
  }

  /** A connection reached `welcome`: the next close starts the schedule again. */
  reset(): void {
    this.failures = 0;
  }

  /**
   * The delay before the next attempt under `rule` (never `never`). `at_once` is 0 only for
   * the first attempt after a working connection; once an attempt has failed, every rule backs
   * off (§5 "Reconnect timing").
   */
  next(rule: Exclude<ReconnectRule, "never">): number {
    const failures = this.failures++;
    if (rule === "at_once" && failures === 0) return 0;
    const ceiling = Math.min(this.maxMs, this.initialMs * this.factor ** failures);
    return Math.floor(this.random() * ceiling);
  }
}
