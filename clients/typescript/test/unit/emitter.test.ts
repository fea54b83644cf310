import { test } from "node:test";
import assert from "node:assert/strict";
import { Emitter } from "../../src/emitter.js";

interface Events {
  tick: number;
  other: string;
}

class Recording extends Emitter<Events> {
  readonly errors: unknown[] = [];
  fire<K extends keyof Events>(name: K, event: Events[K]): void {
    this.emit(name, event);
  }
  protected override onHandlerError(error: unknown): void {
    this.errors.push(error);
  }
}

test("a handler that throws does not stop the others, and its error is reported", () => {
  const emitter = new Recording();
  const seen: number[] = [];
  emitter.on("tick", () => {
    throw new Error("handler bug");
  });
  emitter.on("tick", (n) => seen.push(n));
  emitter.fire("tick", 1);
  assert.deepEqual(seen, [1]);
  assert.equal((emitter.errors[0] as Error).message, "handler bug");
});

test("on returns an unsubscribe function; once fires a single time", () => {
  const emitter = new Recording();
  const seen: string[] = [];
  const off = emitter.on("other", (s) => seen.push(`on:${s}`));
  emitter.once("other", (s) => seen.push(`once:${s}`));
  emitter.fire("other", "a");
  off();
  emitter.fire("other", "b");
  assert.deepEqual(seen, ["on:a", "once:a"]);
  assert.equal(emitter.has("other"), false);
});
