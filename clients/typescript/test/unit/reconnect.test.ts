import { test } from "node:test";
import assert from "node:assert/strict";
import { Backoff, classifyClose } from "../../src/index.js";

test("every close code of PROTOCOL.md §5 has its label and rule", () => {
  const table: [number, string, string][] = [
    [1000, "normal", "never"],
    [1001, "shutdown", "backoff"],
    [1003, "binary_frame", "never"],
    [1007, "invalid_utf8", "never"],
    [1008, "protocol_violation", "backoff"],
    [1009, "frame_too_large", "at_once"],
    [1012, "service_restart", "at_once"],
    [4000, "heartbeat_timeout", "at_once"],
    [4001, "evicted", "never"],
    [4002, "disconnected", "never"],
    [4003, "user_limit", "backoff"],
    [4004, "server_full", "backoff"],
    [4005, "token_expired", "at_once"],
    [4008, "slow_consumer", "at_once"],
    [4029, "rate_limited", "backoff"],
  ];
  for (const [code, label, rule] of table) assert.deepEqual(classifyClose(code, ""), { code, label, rule });
});

test("no close frame (1006) and codes the protocol does not list back off; a reason text wins over the label", () => {
  assert.deepEqual(classifyClose(1006, ""), { code: 1006, label: "abnormal", rule: "backoff" });
  assert.deepEqual(classifyClose(4999, ""), { code: 4999, label: "unknown", rule: "backoff" });
  assert.equal(classifyClose(4002, "bye").label, "bye");
});

test("full jitter: every delay lies in [0, ceiling) and the ceiling grows by the factor up to the maximum", () => {
  const low = new Backoff({ initialMs: 100, maxMs: 800, factor: 2 }, () => 0);
  const high = new Backoff({ initialMs: 100, maxMs: 800, factor: 2 }, () => 0.9999);
  assert.deepEqual([1, 2, 3, 4, 5].map(() => low.next("backoff")), [0, 0, 0, 0, 0]);
  assert.deepEqual([1, 2, 3, 4, 5].map(() => high.next("backoff")), [99, 199, 399, 799, 799]);
});

test("at once is at once only for the first attempt after a working connection", () => {
  const b = new Backoff({ initialMs: 100 }, () => 0.5);
  assert.equal(b.next("at_once"), 0);
  assert.equal(b.next("at_once"), 100);
  b.reset();
  assert.equal(b.next("at_once"), 0);
});
