import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseDuration } from "./duration.ts";

describe("parseDuration", () => {
  it.each([
    ["500ms", 500],
    ["10s", 10_000],
    ["5m", 300_000],
    ["1h", 3_600_000],
    ["1h30m", 5_400_000],
    ["0s", 0],
    ["1m500ms", 60_500],
  ])("%s is %d ms", (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each(["", "10", "1.5s", "-1s", "10S", "1d", "123456s", "1s1s1s1s1s", " 1s"])(
    "refuses %j",
    (text) => {
      expect(parseDuration(text)).toBeUndefined();
    },
  );

  it("adds up every part", () => {
    const unit = fc.constantFrom(["h", 3_600_000], ["m", 60_000], ["s", 1_000], ["ms", 1]);
    const part = fc.tuple(fc.integer({ min: 0, max: 99_999 }), unit);
    fc.assert(
      fc.property(fc.array(part, { minLength: 1, maxLength: 4 }), (parts) => {
        const text = parts.map(([n, [u]]) => `${n}${u}`).join("");
        const ms = parts.reduce((sum, [n, [, factor]]) => sum + n * (factor as number), 0);
        expect(parseDuration(text)).toBe(ms);
      }),
    );
  });
});
