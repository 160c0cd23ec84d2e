import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  cookieValue,
  DEFAULT_MAX_LIFETIME_S,
  defaultCookieName,
  endpointRef,
  importStickyKey,
  MAX_COOKIE_LENGTH,
  readSticky,
  type StickyRead,
  sessionSettings,
  setCookieHeader,
  signSticky,
  type VerifiedCookies,
} from "./cookie.ts";

const scope = { name: "c", routeName: "shop", ruleName: "api" };

const limits = { absoluteTimeoutS: 3600, idleTimeoutS: 600 };

/** The text with one character replaced by another a cookie could hold. */
const oneCharChanged = (text: string) =>
  fc
    .tuple(fc.nat(text.length - 1), fc.constantFrom(..."0123456789abcdefxyzXYZ-_."))
    .filter(([at, ch]) => text[at] !== ch)
    .map(([at, ch]) => text.slice(0, at) + ch + text.slice(at + 1));

describe("sticky cookie codec", async () => {
  const key = await importStickyKey("current secret");
  const previous = await importStickyKey("previous secret");
  const value = {
    endpointRef: await endpointRef(key, "0123456789abcd"),
    issuedAt: 1_800_000_000,
    lastSeen: 1_800_000_100,
  };

  it("reads back what it signed, and never contains more than a keyed reference and times", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.stringMatching(/^[0-9a-f]{14}$/),
        fc.integer({ min: 0, max: 2 ** 40 }),
        fc.nat(1000),
        async (endpointId, issuedAt, idle) => {
          const v = {
            endpointRef: await endpointRef(key, endpointId),
            issuedAt,
            lastSeen: issuedAt + idle,
          };
          const text = await signSticky(v, scope, key);
          expect(text).not.toContain(endpointId);
          expect(text.length).toBeLessThanOrEqual(MAX_COOKIE_LENGTH);
          expect(
            await readSticky(text, scope, [key], v.lastSeen, {
              absoluteTimeoutS: undefined,
              idleTimeoutS: undefined,
            }),
          ).toEqual({ ok: true, value: v, keyIndex: 0 });
        },
      ),
      { numRuns: 50 },
    );
  });

  it("refuses any change to a signed cookie", async () => {
    const text = await signSticky(value, scope, key);
    await fc.assert(
      fc.asyncProperty(oneCharChanged(text), async (changed) => {
        const read = await readSticky(changed, scope, [key], value.lastSeen, limits);
        expect(read.ok).toBe(false);
      }),
      { numRuns: 100 },
    );
  });

  it("remembers only genuine cookies, per rule, and still checks their times (property)", async () => {
    const text = await signSticky(value, scope, key);
    const verified: VerifiedCookies = new Map();
    expect((await readSticky(text, scope, [key], value.lastSeen, limits, verified)).ok).toBe(true);
    expect(verified.size).toBe(1);
    await fc.assert(
      fc.asyncProperty(oneCharChanged(text), async (changed) => {
        const read = await readSticky(changed, scope, [key], value.lastSeen, limits, verified);
        expect(read.ok).toBe(false);
      }),
      { numRuns: 100 },
    );
    expect(verified.size).toBe(1);
    // Remembered by value: the same rule in a new snapshot (a new scope object) reads it at once.
    const again = readSticky(text, { ...scope }, [key], value.lastSeen, limits, verified);
    expect(again).not.toBeInstanceOf(Promise);
    expect((again as StickyRead).ok).toBe(true);
    // Remembered for this rule only: the same value on another rule is checked, and refused.
    const other = { ...scope, ruleName: "web" };
    expect((await readSticky(text, other, [key], value.lastSeen, limits, verified)).ok).toBe(false);
    // A remembered cookie past its idle timeout is still expired.
    const late = value.lastSeen + limits.idleTimeoutS;
    expect(await readSticky(text, scope, [key], late, limits, verified)).toEqual({
      ok: false,
      reason: "expired",
    });
  });

  it("refuses a cookie of another rule, an expired, an idle and an oversized one", async () => {
    const text = await signSticky(value, scope, key);
    for (const other of [
      { ...scope, name: "other" },
      { ...scope, ruleName: "web" },
      { ...scope, routeName: "shop-api", ruleName: "" },
    ]) {
      expect(await readSticky(text, other, [key], value.lastSeen, limits)).toEqual({
        ok: false,
        reason: "tampered",
      });
    }
    expect(await readSticky(text, scope, [key], value.issuedAt + 3600, limits)).toEqual({
      ok: false,
      reason: "expired",
    });
    expect(await readSticky(text, scope, [key], value.lastSeen + 600, limits)).toEqual({
      ok: false,
      reason: "expired",
    });
    expect(
      await readSticky(
        `${text}${"x".repeat(MAX_COOKIE_LENGTH)}`,
        scope,
        [key],
        value.lastSeen,
        limits,
      ),
    ).toEqual({ ok: false, reason: "oversized" });
    expect(await readSticky("garbage", scope, [key], value.lastSeen, limits)).toEqual({
      ok: false,
      reason: "malformed",
    });
  });

  it("honours a cookie signed with the previous secret and says so", async () => {
    const text = await signSticky(value, scope, previous);
    expect(await readSticky(text, scope, [key, previous], value.lastSeen, limits)).toMatchObject({
      ok: true,
      keyIndex: 1,
    });
    expect(await readSticky(text, scope, [key], value.lastSeen, limits)).toEqual({
      ok: false,
      reason: "tampered",
    });
  });

  it("names endpoints by a keyed reference: without the key, the id cannot be recognised", async () => {
    const ref = await endpointRef(key, "0123456789abcd");
    expect(ref).toMatch(/^[A-Za-z0-9_-]{16}$/);
    expect(await endpointRef(previous, "0123456789abcd")).not.toBe(ref);
    expect(await endpointRef(key, "0123456789abce")).not.toBe(ref);
  });

  it("gives each rule its own default cookie name, and every cookie a lifetime", () => {
    expect(defaultCookieName("x", "y-z")).not.toBe(defaultCookieName("x-y", "z"));
    expect(defaultCookieName("shop", "api")).toMatch(/^sy-[0-9a-f]{12}$/);
    expect(sessionSettings({}, "shop", "api").limits).toEqual({
      absoluteTimeoutS: DEFAULT_MAX_LIFETIME_S,
      idleTimeoutS: undefined,
    });
    expect(sessionSettings({ idleTimeout: "30m" }, "shop", "api").limits).toEqual({
      absoluteTimeoutS: undefined,
      idleTimeoutS: 1800,
    });
  });

  it("finds its cookie among others and writes the attributes", () => {
    expect(cookieValue("a=1; sy-shop-api=v.1.2.x; b=2", "sy-shop-api")).toBe("v.1.2.x");
    expect(cookieValue("a=1", "sy-shop-api")).toBeUndefined();
    expect(setCookieHeader("n", "v", { secure: true, maxAgeS: 60 })).toBe(
      "n=v; Path=/; HttpOnly; SameSite=Lax; Secure; Max-Age=60",
    );
    expect(setCookieHeader("n", "v", { secure: false, maxAgeS: undefined })).toBe(
      "n=v; Path=/; HttpOnly; SameSite=Lax",
    );
  });
});
