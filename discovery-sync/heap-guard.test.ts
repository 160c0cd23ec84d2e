import { describe, expect, it } from "vitest";
import { HeapGuard } from "./heap-guard.ts";

describe("HeapGuard", () => {
  it("is quiet below the line and counts only what a full collection leaves", () => {
    let used = 50;
    let collections = 0;
    const guard = new HeapGuard({
      read: () => ({ usedBytes: used, limitBytes: 100 }),
      collect: () => {
        collections++;
        used = 60; // garbage gone: live data is below the line
      },
    });
    expect(guard.over()).toBeUndefined();
    expect(collections).toBe(0);
    used = 90;
    expect(guard.over()).toBeUndefined();
    expect(collections).toBe(1);
  });

  it("says over when live data stays past 75 % of the limit", () => {
    const guard = new HeapGuard({
      read: () => ({ usedBytes: 76, limitBytes: 100 }),
      collect: () => {},
    });
    expect(guard.over()).toEqual({ usedBytes: 76, limitBytes: 100 });
  });
});
