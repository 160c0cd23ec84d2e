import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  EJECT_BASE_MS,
  EJECT_MAX_MS,
  HealthRegistry,
  healthKey,
  MIN_REQUESTS,
  WINDOW_MS,
} from "./health.ts";

const pool = (n: number, name = "p") => ({
  name,
  endpoints: Array.from({ length: n }, (_, i) => ({ id: `e${i}` })),
});

/** `times` outcomes of one endpoint of pool "p" at `now`; true when one of them ejected it. */
function serve(health: HealthRegistry, id: string, now: number, failed: boolean, times: number) {
  let ejected = false;
  for (let i = 0; i < times; i++)
    ejected = health.record(healthKey("p", id), failed, now) || ejected;
  return ejected;
}
const fail = (health: HealthRegistry, id: string, now: number, times = MIN_REQUESTS) =>
  serve(health, id, now, true, times);

describe("HealthRegistry", () => {
  it("ejects only past a minimum volume: 10 requests in 10 s, half of them failed", () => {
    const health = new HealthRegistry();
    expect(fail(health, "e0", 0, MIN_REQUESTS - 1)).toBe(false);
    expect(health.isEjected(healthKey("p", "e0"), 0)).toBe(false);
    expect(fail(health, "e0", 0, 1)).toBe(true);
    expect(health.isEjected(healthKey("p", "e0"), EJECT_BASE_MS - 1)).toBe(true);
    expect(health.isEjected(healthKey("p", "e0"), EJECT_BASE_MS)).toBe(false);
    expect(health.allHealthy).toBe(true);
  });

  it("keeps nothing for successes until a failure, and forgets an endpoint whose window passed clean", () => {
    const health = new HealthRegistry();
    serve(health, "e0", 0, false, 5);
    expect(health.keepsAny).toBe(false); // so the exchange need not record a success at all
    fail(health, "e0", 0, 1);
    expect(health.keepsAny).toBe(true);
    serve(health, "e0", WINDOW_MS, false, 1);
    expect(health.keepsAny).toBe(false);
  });

  it("does not eject at a failure ratio under one half, nor for failures spread over windows", () => {
    const health = new HealthRegistry();
    for (let i = 0; i < 40; i++) health.record(healthKey("p", "e0"), i % 3 === 0, 0);
    expect(health.isEjected(healthKey("p", "e0"), 0)).toBe(false);
    for (let w = 0; w < 5; w++) fail(health, "e1", w * WINDOW_MS, MIN_REQUESTS - 1);
    expect(health.isEjected(healthKey("p", "e1"), 5 * WINDOW_MS)).toBe(false);
  });

  it("keeps health per pool: an endpoint failing in one pool is not down in another", () => {
    const health = new HealthRegistry();
    fail(health, "e0", 0);
    expect(health.poolHealth(pool(3, "p"), 0).down).toEqual(new Set(["e0"]));
    expect(health.poolHealth(pool(3, "q"), 0).down).toEqual(new Set());
  });

  it("ejects for longer each time, up to 300 s", () => {
    const health = new HealthRegistry();
    let now = 0;
    const durations: number[] = [];
    for (let i = 0; i < 12; i++) {
      fail(health, "e0", now);
      const until = health.view(healthKey("p", "e0"), now).ejectedUntil as number;
      durations.push(until - now);
      now = until;
      health.isEjected(healthKey("p", "e0"), now);
    }
    expect(durations.slice(0, 4)).toEqual([30_000, 60_000, 90_000, 120_000]);
    expect(Math.max(...durations)).toBe(EJECT_MAX_MS);
  });

  it("never ejects a one-endpoint pool, nor more than half of a pool", () => {
    const health = new HealthRegistry();
    const one = pool(1);
    fail(health, "e0", 0);
    expect(health.isEjected(healthKey("p", "e0"), 0)).toBe(true); // down…
    expect(health.avoids("e0", one, 0)).toBe(false); // …but still used: it is all there is
    const five = pool(5);
    for (const id of ["e1"]) fail(health, id, 0);
    expect([...health.poolHealth(five, 0).avoided]).toEqual(["e0", "e1"]);
    fail(health, "e2", 0); // three of five down: panic, use all
    expect(health.poolHealth(five, 0)).toEqual({
      avoided: new Set(),
      down: new Set(["e0", "e1", "e2"]),
      panic: true,
    });
  });

  it("has new traffic avoid at most half of any pool whatever the outcomes", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 8 }),
        fc.array(fc.tuple(fc.nat(7), fc.boolean(), fc.nat(2_000)), { maxLength: 300 }),
        (n, events) => {
          const health = new HealthRegistry();
          const members = pool(n);
          let now = 0;
          for (const [who, failed, dt] of events) {
            now += dt;
            health.record(healthKey("p", `e${who % n}`), failed, now);
            expect(health.poolHealth(members, now).avoided.size).toBeLessThanOrEqual(
              Math.floor(n / 2),
            );
          }
        },
      ),
    );
  });
});
