import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { stableHash, TextHash } from "./hash.ts";

describe("TextHash", () => {
  it("gives for a text fed in slices what stableHash gives for it whole", () => {
    fc.assert(
      fc.property(
        fc.string({ unit: "grapheme", maxLength: 200 }),
        fc.array(fc.nat()),
        (text, cuts) => {
          const points = [...new Set(cuts.map((c) => c % (text.length + 1)))].sort((a, b) => a - b);
          const hash = new TextHash();
          let start = 0;
          for (const end of [...points, text.length]) {
            hash.update(text, start, end);
            start = end;
          }
          expect(hash.digest()).toBe(stableHash(text));
        },
      ),
    );
  });

  it("keeps the values ids and generations were made with", () => {
    // Endpoint ids and cookies name endpoints by these: they must not change between versions.
    expect(stableHash("")).toBe("0bdcb81aee8d83");
    expect(stableHash("switchyard")).toBe("0265d89ee245e2");
    expect(stableHash("switchyard", 7)).toBe("1de69d5fbcf721");
  });
});
