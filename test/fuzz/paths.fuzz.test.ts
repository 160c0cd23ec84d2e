import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type HttpRoute, parseRoutesDocument } from "../../contract/index.ts";
import { compileMatcher } from "../../worker/core/match.ts";
import { referenceMatch } from "../../worker/core/match-reference.ts";
import { requestView } from "../../worker/core/request.ts";
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
