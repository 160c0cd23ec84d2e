import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { kubeTime, microTime, parseMicroTime } from "./kube-time.ts";

describe("Kubernetes times", () => {
  it("writes MicroTime with exactly six fractional digits, and reads it back", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 4_102_444_800_000 }), (ms) => {
        const text = microTime(ms);
        expect(text).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/);
        expect(parseMicroTime(text)).toBe(ms);
      }),
    );
  });

  it("refuses what the API server's layout refuses", () => {
    for (const text of ["2026-11-29T12:00:00.123Z", "2026-11-29T12:00:00Z", "2026-11-29", 42]) {
      expect(parseMicroTime(text)).toBeUndefined();
    }
    expect(parseMicroTime("2026-11-29T12:00:00.123456+01:00")).toBe(
      Date.parse("2026-11-29T11:00:00.123Z"),
    );
  });

  it("writes Time in whole seconds", () => {
    expect(kubeTime(Date.parse("2026-11-29T12:00:00.999Z"))).toBe("2026-11-29T12:00:00Z");
  });
});
