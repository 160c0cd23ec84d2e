import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type HttpRoute, parseRoutesDocument } from "../../contract/index.ts";
import { compileMatcher } from "../../worker/core/match.ts";
import { referenceMatch } from "../../worker/core/match-reference.ts";
import { normalizePath } from "../../worker/core/path.ts";
import { requestView } from "../../worker/core/request.ts";
import { backendView } from "../fixtures/normalizing-backend.ts";
import { RUNS } from "./runs.ts";

/**
 * Hostnames and paths as clients send them — percent-encoded, with dot segments and doubled
 * slashes, very long, in any Unicode — against the slow reference matcher: the compiled matcher
 * agrees with it on every request and never throws.
 */

const segment = fc.oneof(
  fc.constantFrom(
    "a",
    "api",
    "v1",
    "..",
    ".",
    "",
    "%2e%2e",
    "%2F",
    "%41",
    "caf%C3%A9",
    "é",
    "日本",
  ),
  fc.string({ maxLength: 8 }).map((s) => encodeURIComponent(s)),
);
const path = fc
  .array(segment, { maxLength: 8 })
  .map((parts) => `/${parts.join("/")}`)
  .chain((p) =>
    fc.oneof(
      fc.constant(p),
      fc.nat(6_000).map((n) => `${p}/${"x".repeat(n)}`),
    ),
  );

const routes: HttpRoute[] = (() => {
  const parsed = parseRoutesDocument({
    version: 1,
    routes: [
      {
        name: "exact",
        hostnames: ["a.example.com"],
        rules: [
          {
            matches: [{ path: { type: "Exact", value: "/api/v1" } }],
            backendRefs: [{ pool: "p" }],
          },
        ],
      },
      {
        name: "prefix",
        hostnames: ["*.example.com"],
        rules: [
          {
            matches: [{ path: { type: "PathPrefix", value: "/api" } }],
            backendRefs: [{ pool: "p" }],
          },
        ],
      },
      {
        name: "dots",
        rules: [
          {
            matches: [{ path: { type: "PathPrefix", value: "/a/.." } }],
            backendRefs: [{ pool: "p" }],
          },
        ],
      },
      {
        name: "regex",
        rules: [
          {
            matches: [
              { path: { type: "RegularExpression", value: "/(a|%2e%2e|caf%C3%A9)(/.*)?" } },
            ],
            backendRefs: [{ pool: "p" }],
          },
        ],
      },
      { name: "any", hostnames: ["b.test"], rules: [{ backendRefs: [{ pool: "p" }] }] },
    ],
  });
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.problems));
  return parsed.value.routes;
})();

describe("paths and hosts, fuzzed against the reference matcher", () => {
  const matcher = compileMatcher(routes);
  it("agrees with the reference on percent-encoded, dotted, long and Unicode requests", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.constantFrom(
            "a.example.com",
            "x.a.example.com",
            "A.EXAMPLE.COM.",
            "b.test:8443",
            "[::1]",
          ),
          fc.domain(),
          fc.string({ maxLength: 20 }),
        ),
        path,
        fc.constantFrom("GET", "POST"),
        (host, p, method) => {
          const request = requestView({ host, path: p, method });
          const found = matcher.match(request);
          const expected = referenceMatch(routes, request);
          expect(
            found && {
              routeIndex: found.routeIndex,
              ruleIndex: found.ruleIndex,
              matchIndex: found.matchIndex,
            },
          ).toEqual(expected);
        },
      ),
      { numRuns: RUNS },
    );
  });
});

describe("paths, normalized as the worker does, against a normalizing backend", () => {
  /** Rules of unreserved characters, as guards are written: /admin blocked, /api/v1, /pub/. */
  const guards = (() => {
    const parsed = parseRoutesDocument({
      version: 1,
      routes: [
        {
          name: "g",
          rules: [
            {
              matches: [{ path: { type: "PathPrefix", value: "/admin" } }],
              backendRefs: [{ pool: "p" }],
            },
            {
              matches: [{ path: { type: "Exact", value: "/api/v1" } }],
              backendRefs: [{ pool: "p" }],
            },
            {
              matches: [{ path: { type: "PathPrefix", value: "/pub/" } }],
              backendRefs: [{ pool: "p" }],
            },
            { backendRefs: [{ pool: "p" }] },
          ],
        },
      ],
    });
    if (!parsed.ok) throw new Error(JSON.stringify(parsed.problems));
    return compileMatcher(parsed.value.routes);
  })();
  const ruleOf = (p: string) => guards.match(requestView({ host: "h", path: p }))?.ruleIndex;
  /** Byte strings of the characters paths are made of, escapes among them. */
  const bytes = fc
    .array(
      fc.oneof(
        fc.constantFrom("/", "//", ".", "..", "%", "%2", ";", "\\", "admin", "api", "v1", "pub"),
        fc.integer({ min: 0, max: 255 }).map((b) => `%${b.toString(16).padStart(2, "0")}`),
        fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c)),
      ),
      { maxLength: 24 },
    )
    .map((parts) => `/${parts.join("")}`);

  it("picks the rule a normalizing backend would route the forwarded path to", () => {
    fc.assert(
      fc.property(bytes, fc.constantFrom("reject", "decode" as const), (raw, mode) => {
        // What the URL parser leaves of it (request.url): no raw "?", "#" or space, and a raw
        // backslash read as a slash, as in every http(s) URL.
        const path = raw.replace(/[?#\s]/g, "").replace(/\\/g, "/");
        const result = normalizePath(path, mode);
        if (!("path" in result)) return;
        expect(ruleOf(result.path)).toBe(ruleOf(backendView(result.path)));
      }),
      { numRuns: RUNS * 4 },
    );
  });
});
