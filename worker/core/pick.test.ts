import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { poolOf, snapshotOf } from "../../test/fixtures/worker-rules.ts";
import { stickyCandidate } from "../sticky/session.ts";
import type { HealthLens } from "./health.ts";
import { type Choice, pick } from "./pick.ts";

function ruleOf(backendRefs: unknown[], kvPools: Record<string, unknown>) {
  const snapshot = snapshotOf(
    { version: 1, routes: [{ name: "r", rules: [{ backendRefs }] }] },
    kvPools,
  );
  return snapshot.rule(0, 0)!;
}

const host = (p: Choice) =>
  p.kind === "endpoints" ? new URL(p.first.endpoint.origin).hostname.split(".")[0] : p.kind;

describe("pick", () => {
  it("balances endpoints by weight with smooth WRR", () => {
    const rule = ruleOf([{ pool: "p" }], { p: poolOf({ a: 5, b: 1, c: 1 }) });
    expect(Array.from({ length: 14 }, () => host(pick(rule))).join("")).toBe("aabacaa".repeat(2));
  });

  it("balances backendRefs by weight, then endpoints within the pool", () => {
    const rule = ruleOf(
      [
        { pool: "p", weight: 3 },
        { pool: "q", weight: 1 },
      ],
      { p: poolOf({ a: 1, b: 1 }), q: poolOf({ c: 1 }) },
    );
    // refs 3:1 give p p q p; pool p alternates a b.
    expect(Array.from({ length: 8 }, () => host(pick(rule))).join("")).toBe("abcabacb");
  });

  it("sends nothing new to weight 0 or draining endpoints, or weight 0 refs", () => {
    const rule = ruleOf([{ pool: "p" }, { pool: "q", weight: 0 }], {
      p: poolOf({ a: 1, b: 0, c: 1 }, { c: { state: "draining" } }),
      q: poolOf({ d: 1 }),
    });
    const picks = Array.from({ length: 10 }, () => pick(rule));
    expect(new Set(picks.map(host))).toEqual(new Set(["a"]));
    const first = picks[0]!;
    expect(first.kind === "endpoints" && first.candidates().map((c) => c.endpoint.origin)).toEqual([
      "http://a.test",
    ]);
  });

  it("lists the rest of the pool after the choice, then other pools, then lower priorities", () => {
    const rule = ruleOf([{ pool: "p" }, { pool: "q" }, { pool: "dr", priority: 1 }], {
      p: poolOf({ a: 1, b: 1, c: 1 }),
      q: poolOf({ d: 1 }),
      dr: poolOf({ e: 1 }),
    });
    const first = pick(rule); // ref p, endpoint a
    const second = pick(rule); // ref q, endpoint d
    const third = pick(rule); // ref p, endpoint b
    const order = (p: Choice) =>
      p.kind === "endpoints"
        ? p
            .candidates()
            .map((c) => c.endpoint.origin.slice(7, 8))
            .join("")
        : "";
    expect([order(first), order(second), order(third)]).toEqual(["abcde", "dabce", "bcade"]);
  });

  it("answers missing-pool for the share of a ref to an unknown pool", () => {
    const rule = ruleOf([{ pool: "p" }, { pool: "nope" }], { p: poolOf({ a: 1 }) });
    expect(Array.from({ length: 4 }, () => host(pick(rule)))).toEqual([
      "a",
      "missing-pool",
      "a",
      "missing-pool",
    ]);
  });

  it("fails over when the chosen pool has nothing for new traffic, and is unavailable when nothing has", () => {
    const over = ruleOf([{ pool: "empty" }, { pool: "dr", priority: 1 }], {
      empty: { version: 1, endpoints: [] },
      dr: poolOf({ e: 1 }),
    });
    expect(host(pick(over))).toBe("e");
    const none = ruleOf([{ pool: "empty" }], { empty: { version: 1, endpoints: [] } });
    expect(pick(none)).toEqual({ kind: "unavailable", reason: "pool empty has no endpoints" });
    const zero = ruleOf([{ pool: "p", weight: 0 }], { p: poolOf({ a: 1 }) });
    expect(pick(zero)).toEqual({ kind: "weight-zero" });
  });

  it("answers weight-zero only when every backendRef has weight 0, in every priority", () => {
    const rule = ruleOf(
      [
        { pool: "off", weight: 0 },
        { pool: "dr", priority: 1 },
      ],
      {
        off: poolOf({ a: 1 }),
        dr: poolOf({ e: 1 }),
      },
    );
    const dr = rule.tiers[1]!.refs[0]!.pool!;
    // The priority-1 pool is down as well: it is still the one meant to take traffic.
    const allDown: HealthLens = (pool) =>
      pool === dr
        ? { avoided: new Set(), down: new Set([dr.endpoints[0]!.id]), panic: true }
        : undefined;
    expect(host(pick(rule, allDown))).toBe("e");
    const none = ruleOf(
      [
        { pool: "a", weight: 0 },
        { pool: "b", weight: 0, priority: 1 },
      ],
      {
        a: poolOf({ a: 1 }),
        b: poolOf({ b: 1 }),
      },
    );
    expect(pick(none)).toEqual({ kind: "weight-zero" });
  });

  it("lists each endpoint that takes new traffic exactly once, the choice first", () => {
    const weights = fc.dictionary(
      fc.constantFrom("a", "b", "c", "d"),
      fc.integer({ min: 0, max: 3 }),
      { minKeys: 1 },
    );
    fc.assert(
      fc.property(weights, weights, fc.integer({ min: 1, max: 30 }), (p, q, rounds) => {
        const rule = ruleOf([{ pool: "p" }, { pool: "q", priority: 1 }], {
          p: poolOf(p),
          q: poolOf(q),
        });
        const live = new Set(
          [...Object.entries(p), ...Object.entries(q)]
            .filter(([, w]) => w > 0)
            .map(([n]) => `http://${n}.test`),
        );
        for (let i = 0; i < rounds; i++) {
          const choice = pick(rule);
          if (live.size === 0) {
            expect(choice.kind).toBe("unavailable");
            continue;
          }
          expect(choice.kind).toBe("endpoints");
          if (choice.kind !== "endpoints") return;
          const order = choice.candidates().map((c) => c.endpoint.origin);
          expect(order[0]).toBe(choice.first.endpoint.origin);
          expect(new Set(order)).toEqual(live);
          expect(order).toHaveLength(live.size);
        }
      }),
    );
  });

  it("leaves ejected endpoints out of new picks and of the fallbacks", () => {
    const rule = ruleOf([{ pool: "p" }], { p: poolOf({ a: 1, b: 1, c: 1 }) });
    const b = rule.tiers[0]!.refs[0]!.pool!.endpoints[1]!.id;
    const lens: HealthLens = () => ({ avoided: new Set([b]), down: new Set([b]), panic: false });
    const picks = Array.from({ length: 6 }, () => pick(rule, lens));
    expect(picks.map(host).join("")).toBe("acacac");
    const first = picks[0]!;
    expect(first.kind === "endpoints" && first.candidates().map((c) => c.endpoint.origin)).toEqual([
      "http://a.test",
      "http://c.test",
    ]);
  });

  it("sends new traffic to a priority-1 pool only while every priority-0 pool has no healthy endpoint", () => {
    const rule = ruleOf([{ pool: "primary" }, { pool: "dr", priority: 1 }], {
      primary: poolOf({ a: 1, b: 1 }),
      dr: poolOf({ e: 1 }),
    });
    const primary = rule.tiers[0]!.refs[0]!.pool!;
    const ids = primary.endpoints.map((e) => e.id);
    const oneDown = new Set([ids[0]!]);
    expect(host(pick(rule, () => ({ avoided: oneDown, down: oneDown, panic: false })))).toBe("b");
    // Both primary endpoints down: the pool is in panic (avoids none), but the tier is unhealthy.
    const deadPrimary: HealthLens = (pool) =>
      pool === primary ? { avoided: new Set(), down: new Set(ids), panic: true } : undefined;
    expect([pick(rule, deadPrimary), pick(rule, deadPrimary)].map(host)).toEqual(["e", "e"]);
    expect(host(pick(rule))).toBe("a");
  });

  it("puts the sticky endpoint first, even at weight 0 or draining, and keeps the others as fallbacks", () => {
    const rule = ruleOf([{ pool: "p" }], {
      p: poolOf({ a: 1, b: 0, c: 1 }, { c: { state: "draining" } }),
    });
    const [, b, c] = rule.tiers[0]!.refs[0]!.pool!.endpoints;
    for (const endpoint of [b!, c!]) {
      const sticky = stickyCandidate(rule, endpoint.id);
      const choice = pick(rule, undefined, sticky);
      expect(choice.kind === "endpoints" && choice.sticky && choice.first.endpoint).toBe(endpoint);
      expect(
        choice.kind === "endpoints" && choice.candidates().map((x) => x.endpoint.origin),
      ).toEqual([endpoint.origin, "http://a.test"]);
    }
    expect(stickyCandidate(rule, "00000000000000")).toBeUndefined();
    const bDown = new Set([b!.id]);
    expect(
      stickyCandidate(rule, b!.id, () => ({ avoided: bDown, down: bDown, panic: false })),
    ).toBeUndefined();
  });
});
