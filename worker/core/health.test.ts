import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { EJECT_BASE_MS, EJECT_MAX_MS, FAILURES_TO_EJECT, HealthRegistry } from "./health.ts";

const pool = (n: number) => ({ endpoints: Array.from({ length: n }, (_, i) => ({ id: `e${i}` })) });

function fail(health: HealthRegistry, id: string, now: number, times = FAILURES_TO_EJECT) {
  let ejected = false;
  for (let i = 0; i < times; i++) ejected = health.recordFailure(id, now) || ejected;
  return ejected;
}

describe("HealthRegistry", () => {
  it("ejects after 5 consecutive failures and lets the endpoint back after 30 s", () => {
    const health = new HealthRegistry();
    expect(fail(health, "e0", 0, 4)).toBe(false);
    expect(health.isEjected("e0", 0)).toBe(false);
    expect(fail(health, "e0", 0, 1)).toBe(true);
    expect(health.isEjected("e0", EJECT_BASE_MS - 1)).toBe(true);
    expect(health.isEjected("e0", EJECT_BASE_MS)).toBe(false);
    expect(health.allHealthy).toBe(true);
  });

  it("a success resets the count of consecutive failures", () => {
    const health = new HealthRegistry();
    fail(health, "e0", 0, 4);
    health.recordSuccess("e0");
    expect(fail(health, "e0", 0, 4)).toBe(false);
  });

  it("ejects for longer each time, up to 300 s", () => {
    const health = new HealthRegistry();
    let now = 0;
    const durations: number[] = [];
    for (let i = 0; i < 12; i++) {
      fail(health, "e0", now);
      const until = health.view("e0", now).ejectedUntil as number;
      durations.push(until - now);
      now = until;
      health.isEjected("e0", now);
    }
    expect(durations.slice(0, 4)).toEqual([30_000, 60_000, 90_000, 120_000]);
    expect(Math.max(...durations)).toBe(EJECT_MAX_MS);
  });

  it("never ejects a one-endpoint pool, nor more than half of a pool", () => {
    const health = new HealthRegistry();
    const one = pool(1);
    fail(health, "e0", 0);
    expect(health.isEjected("e0", 0)).toBe(true); // down…
    expect(health.avoids("e0", one, 0)).toBe(false); // …but still used: it is all there is
    const five = pool(5);
    for (const id of ["e0", "e1"]) fail(health, id, 0);
    expect([...health.poolHealth(five, 0).avoided]).toEqual(["e0", "e1"]);
    fail(health, "e2", 0); // three of five down: panic, use all
    expect(health.poolHealth(five, 0)).toEqual({
      avoided: new Set(),
      down: new Set(["e0", "e1", "e2"]),
      panic: true,
    });
  });

  it("uses every endpoint when more than half are ejected (panic)", () => {
    const health = new HealthRegistry();
    const four = pool(4);
    fail(health, "e0", 0);
    fail(health, "e1", 0);
    expect(health.avoids("e0", four, 1)).toBe(true);
    const shrunk = { endpoints: four.endpoints.slice(0, 3) }; // the pool lost an endpoint
    expect(health.avoids("e0", shrunk, 1)).toBe(false);
  });

  it("has new traffic avoid at most half of any pool whatever the failures", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 8 }),
        fc.array(fc.tuple(fc.nat(7), fc.nat(100_000)), { maxLength: 200 }),
        (n, events) => {
          const health = new HealthRegistry();
          const members = pool(n);
          let now = 0;
          for (const [who, dt] of events) {
            now += dt;
            health.recordFailure(`e${who % n}`, now);
            expect(health.poolHealth(members, now).avoided.size).toBeLessThanOrEqual(
              Math.floor(n / 2),
            );
          }
        },
      ),
    );
  });
});
