/**
 * Cancel against the real server: a producer holds the server's producer channel
 * (`/api/producer`, a WebSocket with the API key); the run's user asks to cancel; the producer
 * hears it and confirms with `agent_cancelled`, which the client's run view shows. Another
 * user's cancel, and a cancel of a run started over HTTP, are refused with their codes.
 */

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { SwitchboardClient, SwitchboardError } from "../../src/index.js";
import { testClient } from "../support/client.js";
import { API_KEY, PATIENCE_MS, TestServer } from "../support/server.js";
import { next } from "../support/wait.js";

/** A producer channel: sends events, collects what the server sends it. */
class Producer {
  readonly received: Record<string, unknown>[] = [];
  private constructor(private readonly socket: WebSocket) {
    socket.on("message", (data) => this.received.push(JSON.parse(String(data)) as Record<string, unknown>));
  }

  static async open(server: TestServer): Promise<Producer> {
    const socket = new WebSocket(`ws://${server.address}/api/producer`, { headers: { authorization: `Bearer ${API_KEY}` } });
    await new Promise<void>((resolve, reject) => {
      socket.once("open", () => resolve());
      socket.once("error", reject);
    });
    return new Producer(socket);
  }

  send(event: Record<string, unknown>): void {
    this.socket.send(JSON.stringify(event));
  }

  /** The first frame received that satisfies `accept`, waiting for it (hang guard only). */
  async frame(accept: (f: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> {
    const deadline = Date.now() + PATIENCE_MS;
    for (;;) {
      const found = this.received.find(accept);
      if (found !== undefined) return found;
      if (Date.now() > deadline) throw new Error(`no such frame; received ${JSON.stringify(this.received)}`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  close(): void {
    this.socket.close();
  }
}

describe("cancel", () => {
  let server: TestServer;
  before(async () => {
    server = await TestServer.start();
  });
  after(async () => {
    await server.stop();
  });

  const client = (user: string): SwitchboardClient => testClient(server.ws, user);

  test("the run's user cancels, its producer hears it and confirms, and the run view ends cancelled", async () => {
    const producer = await Producer.open(server);
    const ivy = client("ivy");
    await ivy.connect();
    const started = next(ivy, "run", (r) => r.run === "r-cancel" && r.status === "running");
    producer.send({ ref: 1, user: "ivy", run: "r-cancel", event: "agent_started", agent: "helper" });
    await producer.frame((f) => f.type === "ack" && f.ref === 1);
    await started;

    await ivy.cancel("r-cancel");
    const heard = await producer.frame((f) => f.type === "cancel");
    assert.deepEqual(heard, { type: "cancel", user: "ivy", run: "r-cancel" });

    const ended = next(ivy, "run", (r) => r.run === "r-cancel" && r.status === "cancelled");
    producer.send({ ref: 2, user: "ivy", run: "r-cancel", event: "agent_cancelled", reason: "asked by the user" });
    const view = await ended;
    assert.deepEqual(view.ending, { kind: "cancelled", reason: "asked by the user" });

    await assert.rejects(ivy.cancel("r-cancel"), (e: SwitchboardError) => e.code === "unknown_run", "the run has ended");
    producer.close();
    ivy.close();
  });

  test("another user's run is unknown_run, a run over HTTP is no_producer", async () => {
    const producer = await Producer.open(server);
    producer.send({ ref: 1, user: "jon", run: "r-jon", event: "agent_started", agent: "helper" });
    await producer.frame((f) => f.type === "ack" && f.ref === 1);
    await server.runEvent("kim", "r-http", { event: "agent_started", agent: "helper" });

    const kim = client("kim");
    await kim.connect();
    await assert.rejects(kim.cancel("r-jon"), (e: SwitchboardError) => e.code === "unknown_run");
    await assert.rejects(kim.cancel("r-nothing"), (e: SwitchboardError) => e.code === "unknown_run");
    await assert.rejects(kim.cancel("r-http"), (e: SwitchboardError) => e.code === "no_producer");
    assert.equal(producer.received.filter((f) => f.type === "cancel").length, 0, "the producer heard no cancel");
    producer.close();
    kim.close();
  });
});
