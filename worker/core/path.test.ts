import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { backendView } from "../../test/fixtures/normalizing-backend.ts";
import { normalizePath } from "./path.ts";

const pathOf = (path: string) => {
  const result = normalizePath(path, "reject");
  return "path" in result ? result.path : result.reject;
};

describe("normalizePath", () => {
  it.each([
    ["/admin", "/admin"],
    ["/%61dmin", "/admin"],
    ["//admin", "/admin"],
    ["/x/../admin", "/admin"],
    ["/x/%2e%2e/admin", "/admin"],
    ["/a/./b//c/", "/a/b/c/"],
    ["/a/..", "/"],
    ["/caf%c3%a9", "/caf%C3%A9"],
    ["/admin;x", "/admin;x"],
  ])("%s is %s", (given, expected) => {
    expect(pathOf(given)).toBe(expected);
  });

  it("refuses, decodes or keeps an escaped slash as it is told", () => {
    expect(normalizePath("/admin%2f", "reject")).toEqual({
      reject: "an escaped slash (%2F or %5C) in the path",
    });
    expect(normalizePath("/x/..%2fadmin", "decode")).toEqual({ path: "/admin" });
    expect(normalizePath("/a%5cb", "decode")).toEqual({ path: "/a/b" });
    expect(normalizePath("/a%2fb", "keep")).toEqual({ path: "/a%2Fb" });
  });

  const paths = fc
    .array(
      fc.constantFrom(
        "a",
        "admin",
        ".",
        "..",
        "",
        "%2e",
        "%2E%2e",
        "%61",
        "%2f",
        "%5C",
        "%25",
        "b;x",
        "%41dmin",
      ),
      { maxLength: 8 },
    )
    .map((segments) => `/${segments.join("/")}`);

  it("is idempotent and leaves no double slash, dot segment or escaped unreserved character", () => {
    fc.assert(
      fc.property(paths, fc.constantFrom("reject", "decode", "keep" as const), (path, mode) => {
        const once = normalizePath(path, mode);
        if (!("path" in once)) return;
        expect(normalizePath(once.path, mode)).toEqual(once);
        expect(once.path).not.toMatch(
          /\/\/|\/\.\.?(\/|$)|%(4[1-9A-F]|5[0-9A]|6[1-9A-F]|7[0-9A]|3[0-9]|2[DE]|5F|7E)/i,
        );
      }),
    );
  });

  it("matches what a normalizing backend sees: /admin is /admin to both, or to neither", () => {
    fc.assert(
      fc.property(paths, fc.constantFrom("reject", "decode" as const), (path, mode) => {
        const result = normalizePath(path, mode);
        if (!("path" in result)) return;
        const guarded = (p: string) => p === "/admin" || p.startsWith("/admin/");
        expect(guarded(result.path)).toBe(guarded(backendView(result.path)));
        expect(backendView(result.path)).toBe(backendView(path));
      }),
    );
  });
});
