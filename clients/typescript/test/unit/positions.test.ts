import { test } from "node:test";
import assert from "node:assert/strict";
import { LocalStorageStore, Positions, type KeyValueStorage } from "../../src/index.js";

test("a position moves forward within an epoch, never back, and is replaced by another epoch", () => {
  const p = new Positions();
  assert.equal(p.observe("room:a", 1, 5), true);
  assert.equal(p.observe("room:a", 1, 3), false);
  assert.equal(p.observe("room:a", 1, 5), false);
  assert.deepEqual(p.get("room:a"), { epoch: 1, seq: 5 });
  assert.equal(p.observe("room:a", 2, 1), true);
  assert.deepEqual(p.get("room:a"), { epoch: 2, seq: 1 });
});

test("a gap moves the position to the gap's epoch and end", () => {
  const p = new Positions();
  p.observe("user:u", 1, 9);
  p.skip({ type: "gap", stream: "user:u", epoch: 4, from: 1, to: 0, reason: "epoch" });
  assert.deepEqual(p.get("user:u"), { epoch: 4, seq: 0 });
});

test("claiming positions for another user forgets them", () => {
  const p = Positions.from({ user: "alice", streams: { "user:alice": { epoch: 1, seq: 3 } } });
  assert.equal(p.claim("alice"), false);
  assert.deepEqual(p.get("user:alice"), { epoch: 1, seq: 3 });
  assert.equal(p.claim("bob"), true);
  assert.equal(p.get("user:alice"), undefined);
  assert.equal(p.owner, "bob");
});

test("a snapshot round-trips; entries that are not positions are dropped", () => {
  const p = new Positions();
  p.claim("alice");
  p.observe("room:a", 7, 2);
  assert.deepEqual(Positions.from(p.snapshot()).snapshot(), p.snapshot());
  const hostile = Positions.from({
    user: "alice",
    streams: { "room:a": { epoch: 1, seq: -1 }, "room:b": { epoch: "x", seq: 1 } as never, "room:c": { epoch: 1, seq: 2 } },
  });
  assert.deepEqual(hostile.snapshot().streams, { "room:c": { epoch: 1, seq: 2 } });
});

function memoryStorage(): KeyValueStorage & { map: Map<string, string> } {
  const map = new Map<string, string>();
  return {
    map,
    getItem: (k) => map.get(k) ?? null,
    setItem: (k, v) => void map.set(k, v),
    removeItem: (k) => void map.delete(k),
  };
}

test("the localStorage store saves and loads a snapshot under its key, and clears it", () => {
  const storage = memoryStorage();
  const store = new LocalStorageStore("k", storage);
  assert.equal(store.load(), null);
  store.save({ user: "alice", streams: { "user:alice": { epoch: 1, seq: 4 } } });
  assert.deepEqual(new LocalStorageStore("k", storage).load(), { user: "alice", streams: { "user:alice": { epoch: 1, seq: 4 } } });
  store.clear();
  assert.equal(store.load(), null);
});

test("the localStorage store ignores a value that is not a snapshot", () => {
  const storage = memoryStorage();
  const store = new LocalStorageStore("k", storage);
  for (const junk of ["{not json", "42", "null", '{"user":5,"streams":{}}', '{"user":"a"}']) {
    storage.map.set("k", junk);
    assert.equal(store.load(), null, junk);
  }
});

test("the localStorage store needs a storage", () => {
  assert.throws(() => new LocalStorageStore("k"), /no localStorage/);
});
