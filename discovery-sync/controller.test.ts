import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Controller, type SourceLike } from "./controller.ts";
import type { ApplyResult, KvWriter } from "./kv-writer.ts";
import { createMetrics } from "./metrics.ts";
import type { ServiceRecord, SliceRecord } from "./model.ts";
import type { Put } from "./plan.ts";

/** The reconcile loop's scheduling on an injected clock (fake timers): no sockets, no waiting. */

const service = (name: string): ServiceRecord => ({
  namespace: "shop",
  name,
  type: "ClusterIP",
  ports: [{ name: "http", port: 80, protocol: "TCP" }],
});

const slice = (name: string, addresses: string[]): SliceRecord => ({
  namespace: "shop",
  name: `${name}-1`,
  service: name,
  addressType: "IPv4",
  ports: [{ name: "http", port: 8080, appProtocol: undefined }],
  endpoints: addresses.map((address) => ({
    address,
    state: "ready",
    nodeName: undefined,
    zone: undefined,
    pod: undefined,
  })),
  detail: "e",
});

function world() {
  const services = new Map<string, ServiceRecord>();
  const slices = new Map<string, SliceRecord[]>();
  const source: SourceLike = {
    healthy: true,
    view: () => ({ services: services.values(), slicesByService: slices, nodes: undefined }),
    serviceView: (key) => ({ service: services.get(key), slices: slices.get(key) ?? [] }),
    nodes: () => undefined,
    requireNodes: () => true,
  };
  const applies: { at: number; keys: string[] }[] = [];
  let answer: (puts: readonly Put[]) => Partial<ApplyResult> = () => ({});
  const writer: KvWriter = {
    listOwnedCandidates: async () => ({ keys: [], requests: 1 }),
    apply: async (puts) => {
      applies.push({ at: Date.now(), keys: puts.map((p) => p.key) });
      return {
        written: puts.map((p) => p.key),
        deleted: [],
        failed: [],
        requests: 1,
        ...answer(puts),
      };
    },
  };
  const controller = new Controller({
    source,
    writer,
    owner: "default",
    poolPrefix: undefined,
    allowMassDelete: false,
    resyncMs: 300_000,
    batchWindowMs: 600,
    emptyGraceMs: 30_000,
    isLeader: () => true,
    signal: () => undefined,
    now: () => Date.now(),
    random: () => 0,
    log: pino({ level: "silent" }),
    metrics: createMetrics(),
  });
  const set = (name: string, addresses: string[]) => {
    services.set(`shop/${name}`, service(name));
    slices.set(`shop/${name}`, [slice(name, addresses)]);
    controller.signal(`shop/${name}`);
  };
  return { controller, applies, set, answer: (f: typeof answer) => (answer = f) };
}

beforeEach(() => {
  vi.useFakeTimers({ now: 0 });
});
afterEach(async () => {
  vi.useRealTimers();
});

describe("the reconcile loop's schedule", () => {
  it("writes the first change at once and merges what comes within the window into one write", async () => {
    const w = world();
    w.set("a", ["10.0.0.1"]);
    await vi.advanceTimersByTimeAsync(1);
    expect(w.applies).toEqual([{ at: 0, keys: ["pool:shop/a:http"] }]);
    for (let i = 2; i <= 6; i++) {
      w.set(i % 2 ? "a" : "b", [`10.0.0.${i}`]);
      await vi.advanceTimersByTimeAsync(100);
    }
    await vi.advanceTimersByTimeAsync(1_000);
    // b's changes go out when the window opens; a was written at 0, so its next write waits for
    // its one-second slot and then for the window after b's write: four changes, two writes.
    expect(w.applies).toEqual([
      { at: 0, keys: ["pool:shop/a:http"] },
      { at: 600, keys: ["pool:shop/b:http"] },
      { at: 1_200, keys: ["pool:shop/a:http"] },
    ]);
    await w.controller.stop();
  });

  it("backs off exponentially after a failed write and retries the failed keys together", async () => {
    const w = world();
    let failing = 2;
    w.answer((puts) =>
      failing-- > 0
        ? { written: [], failed: puts.map((p) => ({ key: p.key, reason: "500" })) }
        : {},
    );
    w.set("a", ["10.0.0.1"]);
    w.set("b", ["10.0.0.2"]);
    await vi.advanceTimersByTimeAsync(5_000);
    // random() = 0: half of 1 s, then half of 2 s.
    expect(w.applies.map((a) => a.at)).toEqual([0, 600, 1_600]);
    expect(w.applies.every((a) => a.keys.length === 2)).toBe(true);
    await w.controller.stop();
  });

  it("waits as long as a 429's Retry-After asks, when that is longer than its back-off", async () => {
    const w = world();
    let limited = true;
    w.answer((puts) => {
      if (!limited) return {};
      limited = false;
      return {
        written: [],
        failed: puts.map((p) => ({ key: p.key, reason: "429" })),
        retryAfterMs: 3_000,
      };
    });
    w.set("a", ["10.0.0.1"]);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(w.applies.map((a) => a.at)).toEqual([0, 3_000]);
    await w.controller.stop();
  });
});
