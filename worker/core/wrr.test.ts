import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { balancer, SmoothWrr } from "./wrr.ts";

function sequence(weights: number[], picks: number, names = "abcdefghij"): string {
  const wrr = new SmoothWrr(weights);
  return Array.from({ length: picks }, () => names[wrr.next()] ?? "-").join("");
}

describe("SmoothWrr", () => {
  it("gives nginx's sequence for 5,1,1, twice around", () => {
    expect(sequence([5, 1, 1], 14)).toBe("aabacaa".repeat(2));
  });

  it("never picks weight 0 and gives -1 when nothing has weight", () => {
    expect(sequence([0, 2, 0, 1], 6)).toBe("bdbbdb");
    expect(new SmoothWrr([0, 0]).next()).toBe(-1);
    expect(new SmoothWrr([]).next()).toBe(-1);
  });

  it("skips peers that are not eligible", () => {
    const wrr = new SmoothWrr([1, 1, 1]);
    expect([0, 1, 2, 3].map(() => wrr.next((i) => i !== 1))).toEqual([0, 2, 0, 2]);
  });

  it("gives each peer exactly its weight in every cycle of total-weight picks", () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 20 }), { minLength: 1, maxLength: 8 }),
        (weights) => {
          const total = weights.reduce((a, b) => a + b, 0);
          fc.pre(total > 0);
          const wrr = new SmoothWrr(weights);
          for (let cycle = 0; cycle < 3; cycle++) {
            const counts = weights.map(() => 0);
            for (let i = 0; i < total; i++) {
              const picked = wrr.next();
              counts[picked] = (counts[picked] ?? 0) + 1;
            }
            expect(counts).toEqual(weights);
          }
        },
      ),
    );
  });

  it("interleaves: a peer with weight w never waits more than ceil(total/w) picks", () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 10 }), { minLength: 2, maxLength: 6 }),
        (weights) => {
          const total = weights.reduce((a, b) => a + b, 0);
          const wrr = new SmoothWrr(weights);
          const last = weights.map(() => -1);
          for (let i = 0; i < 2 * total; i++) {
            const picked = wrr.next();
            const gap = i - (last[picked] as number);
            expect(gap).toBeLessThanOrEqual(
              Math.ceil(total / (weights[picked] as number)) + weights.length,
            );
            last[picked] = i;
          }
        },
      ),
    );
  });

  it("walks the precomputed cycle exactly as nginx's step-by-step algorithm picks", () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 50 }), { minLength: 1, maxLength: 10 }),
        fc.integer({ min: 1, max: 300 }),
        (weights, picks) => {
          const fast = new SmoothWrr(weights);
          const slow = new SmoothWrr(weights);
          for (let i = 0; i < picks; i++) expect(fast.next()).toBe(slow.next(() => true));
        },
      ),
    );
  });
});

describe("the shared single-peer balancer", () => {
  it("picks as a SmoothWrr of one peer does, for any weight and eligibility", () => {
    fc.assert(
      fc.property(fc.nat(1_000_000), fc.array(fc.option(fc.boolean())), (weight, asks) => {
        const shared = balancer([weight]);
        const own = new SmoothWrr([weight]);
        for (const ask of asks) {
          const eligible = ask === null ? undefined : () => ask;
          expect(shared.next(eligible)).toBe(own.next(eligible));
        }
      }),
    );
  });
});
