import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { LatencyWindows, MIN_SAMPLES } from "./latency.ts";

describe("LatencyWindows", () => {
  it("knows no percentile before MIN_SAMPLES answers", () => {
    const windows = new LatencyWindows();
    for (let i = 0; i < MIN_SAMPLES - 1; i++) windows.record("p", 10);
    expect(windows.percentile("p", 95)).toBeUndefined();
    windows.record("p", 10);
    expect(windows.percentile("p", 95)).toBe(10);
    expect(windows.percentile("other", 95)).toBeUndefined();
  });

  it("gives the nearest-rank percentile of the last 128 answers", () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 10_000 }), { minLength: MIN_SAMPLES, maxLength: 400 }),
        fc.double({ min: 50, max: 99.9, noNaN: true }),
        (times, p) => {
          const windows = new LatencyWindows();
          for (const t of times) windows.record("p", t);
          const recent = times.slice(-128).sort((a, b) => a - b);
          const rank = Math.ceil((p / 100) * recent.length);
          expect(windows.percentile("p", p)).toBe(recent[rank - 1]);
        },
      ),
    );
  });

  it("starts again rather than grow past maxPools", () => {
    const windows = new LatencyWindows(2);
    for (const pool of ["a", "b", "c"])
      for (let i = 0; i < MIN_SAMPLES; i++) windows.record(pool, 1);
    expect(windows.percentile("a", 50)).toBeUndefined();
    expect(windows.percentile("c", 50)).toBe(1);
  });
});
