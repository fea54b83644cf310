/**
 * Presence against the real server: a client that joins with `presence: true` hears each user
 * arrive and leave once (not once per tab), keeps the member set, and asks again after the
 * socket is cut, so its rejoin lists who came meanwhile.
 */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { SwitchboardClient, type PresenceFrame } from "../../src/index.js";
import { serverBehindProxy } from "../support/behind-proxy.js";
import { testClient } from "../support/client.js";
import { Recorder, next } from "../support/wait.js";

/** The members the client holds for `room`, sorted (`undefined`: it holds none). */
function members(c: SwitchboardClient, room: string): string[] | undefined {
  const set = c.members(room);
  return set === undefined ? undefined : [...set].sort();
}

describe("presence", () => {
  const net = serverBehindProxy();

  test("a watcher hears a user with two tabs arrive once and leave once, and keeps the member set", async () => {
    const alice = testClient(net.server.ws, "alice");
    const heard = new Recorder<string>(alice, "presence", (p: PresenceFrame) => `${p.event}:${p.user}`);
    await alice.connect();
    const joined = await alice.join("study", { presence: true });
    assert.equal(joined.count, 1, "alice alone");
    await heard.until((h) => h.includes("join:alice"));

    const tabs = [testClient(net.server.ws, "bob"), testClient(net.server.ws, "bob")];
    for (const tab of tabs) {
      await tab.connect();
      const plain = await tab.join("study");
      assert.equal(plain.members, undefined, "a member that does not watch gets no list");
    }
    await heard.until((h) => h.includes("join:bob"));
    assert.deepEqual(members(alice, "study"), ["alice", "bob"]);

    tabs[0]!.close();
    tabs[1]!.close();
    await heard.until((h) => h.includes("leave:bob"));
    assert.deepEqual(heard.seen, ["join:alice", "join:bob", "leave:bob"], "once per user, not per tab");
    assert.deepEqual(members(alice, "study"), ["alice"]);
    alice.close();
  });

  test("after the socket is cut, the rejoin asks for presence again and lists who came meanwhile", async () => {
    const dana = testClient(net.proxy.ws, "dana");
    await dana.connect();
    await dana.join("garden", { presence: true });
    await dana.ping();

    const disconnected = next(dana, "disconnected");
    net.proxy.cut();
    assert.equal((await disconnected).reconnect, true);
    assert.equal(members(dana, "garden"), undefined, "no member set while disconnected");

    const erin = testClient(net.server.ws, "erin");
    await erin.connect();
    await erin.join("garden");

    const rejoined = next(dana, "joined", (j) => j.room === "garden");
    net.proxy.unblock();
    const joined = await rejoined;
    assert.deepEqual([...(joined.members ?? [])].sort(), ["dana", "erin"], "the rejoin watched presence again");
    assert.deepEqual(members(dana, "garden"), ["dana", "erin"]);

    const left = next(dana, "presence", (p) => p.event === "leave" && p.user === "erin");
    erin.close();
    await left;
    assert.deepEqual(members(dana, "garden"), ["dana"]);
    dana.close();
  });

  test("presence false does not watch: no list, no presence events", async () => {
    const hal = testClient(net.server.ws, "hal");
    const halHeard = new Recorder<string>(hal, "presence", (p: PresenceFrame) => `${p.event}:${p.user}`);
    await hal.connect();
    await hal.join("quiet", { presence: true });
    const fay = testClient(net.server.ws, "fay");
    const heard = new Recorder<PresenceFrame>(fay, "presence");
    await fay.connect();
    const joined = await fay.join("quiet", { presence: false });
    assert.equal(joined.members, undefined);
    assert.equal(joined.count, undefined);

    const gus = testClient(net.server.ws, "gus");
    await gus.connect();
    await gus.join("quiet");
    // Hal, who watches, hears gus arrive; fay, who does not, hears nothing up to her pong.
    await halHeard.until((h) => h.includes("join:gus"));
    await fay.ping();
    assert.equal(fay.members("quiet"), undefined);
    assert.deepEqual(heard.seen, []);
    for (const c of [gus, fay, hal]) c.close();
  });
});
