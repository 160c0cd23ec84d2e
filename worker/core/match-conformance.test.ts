import { describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { type HttpRoute, parseRoutesDocument } from "../../contract/index.ts";
import { compileMatcher } from "./match.ts";
import { referenceMatch } from "./match-reference.ts";
import { requestView } from "./request.ts";

/**
 * The matching of Gateway API's conformance HTTPRoutes (HTTPRouteMatching,
 * …MatchingAcrossRoutes, …PathMatchOrder, …ExactPathMatching, …HeaderMatching,
 * …QueryParamMatching, …MethodMatching): each route's `hostnames` and `rules` as the suite's
 * manifests have them, a backendRef `{ name, port }` read as the pool of that name, and every
 * request the suite sends with the backend (or the 404) it expects. The matcher and the
 * reference matcher its property tests compare it with must both answer as the suite does.
 */

interface Expected {
  host?: string;
  /** The path, with its query as the suite writes it. */
  path: string;
  method?: string;
  headers?: Record<string, string>;
  /** The infra backend the suite expects, or 404. */
  backend: string | 404;
}

/** The routes of a conformance manifest, its backendRefs' names taken as pool names. */
function routesOf(manifest: string): HttpRoute[] {
  const routes = parseAllDocuments(manifest).map((document) => {
    const { metadata, spec } = document.toJS() as {
      metadata: { name: string };
      spec: { hostnames?: string[]; rules: { backendRefs: { name: string }[] }[] };
    };
    return {
      name: metadata.name,
      ...(spec.hostnames ? { hostnames: spec.hostnames } : {}),
      rules: spec.rules.map((rule) => ({
        ...rule,
        backendRefs: rule.backendRefs.map((ref) => ({ pool: ref.name })),
      })),
    };
  });
  const parsed = parseRoutesDocument({ version: 1, routes });
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.problems));
  return parsed.value.routes;
}

function backendOf(routes: HttpRoute[], request: Expected): string | 404 {
  const [path, search = ""] = request.path.split("?") as [string, string?];
  const view = requestView({
    host: request.host ?? "conformance.test",
    path,
    method: request.method ?? "GET",
    headers: request.headers ?? {},
    query: Object.fromEntries(new URLSearchParams(search)),
  });
  const found = compileMatcher(routes).match(view);
  const reference = referenceMatch(routes, view);
  expect(reference && { routeIndex: reference.routeIndex, ruleIndex: reference.ruleIndex }).toEqual(
    found && { routeIndex: found.routeIndex, ruleIndex: found.ruleIndex },
  );
  if (!found) return 404;
  return routes[found.routeIndex]?.rules[found.ruleIndex]?.backendRefs[0]?.pool ?? 404;
}

/** A case as the suite would name it: `POST example.com/path {"version":"one"} → v1`. */
function title(request: Expected): string {
  const headers = request.headers ? ` ${JSON.stringify(request.headers)}` : "";
  return `${request.method ?? "GET"} ${request.host ?? ""}${request.path}${headers} → ${request.backend}`;
}

function suite(name: string, manifest: string, cases: Expected[]): void {
  describe(name, () => {
    const routes = routesOf(manifest);
    it.each(cases.map((request) => ({ request, title: title(request) })))(
      "$title",
      ({ request }) => {
        expect(backendOf(routes, request)).toBe(request.backend);
      },
    );
  });
}

const v1 = "infra-backend-v1";
const v2 = "infra-backend-v2";
const v3 = "infra-backend-v3";

suite(
  "HTTPRouteMatching",
  `
metadata: { name: matching }
spec:
  rules:
  - matches:
    - path: { type: PathPrefix, value: / }
    - headers: [{ name: version, value: one }]
    backendRefs: [{ name: infra-backend-v1, port: 8080 }]
  - matches:
    - path: { type: PathPrefix, value: /v2 }
    - headers: [{ name: version, value: two }]
    backendRefs: [{ name: infra-backend-v2, port: 8080 }]
`,
  [
    { path: "/", backend: v1 },
    { path: "/example", backend: v1 },
    { path: "/", headers: { Version: "one" }, backend: v1 },
    { path: "/v2", backend: v2 },
    { path: "/v2/example", backend: v2 },
    { path: "/", headers: { Version: "two" }, backend: v2 },
  ],
);

suite(
  "HTTPRouteMatchingAcrossRoutes",
  `
metadata: { name: matching-part1 }
spec:
  hostnames: [example.com, example.net]
  rules:
  - matches:
    - path: { type: PathPrefix, value: / }
    - headers: [{ name: version, value: one }]
    backendRefs: [{ name: infra-backend-v1, port: 8080 }]
---
metadata: { name: matching-part2 }
spec:
  hostnames: [example.com]
  rules:
  - matches:
    - path: { type: PathPrefix, value: /v2 }
    - headers: [{ name: version, value: two }]
    backendRefs: [{ name: infra-backend-v2, port: 8080 }]
`,
  [
    { host: "example.com", path: "/", backend: v1 },
    { host: "example.com", path: "/example", backend: v1 },
    { host: "example.net", path: "/example", backend: v1 },
    { host: "example.com", path: "/example", headers: { Version: "one" }, backend: v1 },
    { host: "example.com", path: "/v2", backend: v2 },
    // v2's matches are limited to example.com.
    { host: "example.net", path: "/v2", backend: v1 },
    { host: "example.com", path: "/v2/example", backend: v2 },
    { host: "example.com", path: "/", headers: { Version: "two" }, backend: v2 },
  ],
);

suite(
  "HTTPRoutePathMatchOrder",
  `
metadata: { name: path-matching-order }
spec:
  rules:
  - matches: [{ path: { type: Exact, value: /match } }]
    backendRefs: [{ name: infra-backend-v1, port: 8080 }]
  - matches: [{ path: { type: Exact, value: /match/exact } }]
    backendRefs: [{ name: infra-backend-v2, port: 8080 }]
  - matches: [{ path: { type: Exact, value: /match/exact/one } }]
    backendRefs: [{ name: infra-backend-v3, port: 8080 }]
  - matches: [{ path: { type: PathPrefix, value: /match/ } }]
    backendRefs: [{ name: infra-backend-v3, port: 8080 }]
  - matches: [{ path: { type: PathPrefix, value: /match/prefix/ } }]
    backendRefs: [{ name: infra-backend-v1, port: 8080 }]
  - matches: [{ path: { type: PathPrefix, value: /match/prefix/one } }]
    backendRefs: [{ name: infra-backend-v2, port: 8080 }]
`,
  [
    { path: "/match/exact/one", backend: v3 },
    { path: "/match/exact", backend: v2 },
    { path: "/match", backend: v1 },
    { path: "/match/prefix/one/any", backend: v2 },
    { path: "/match/prefix/any", backend: v1 },
    { path: "/match/any", backend: v3 },
  ],
);

suite(
  "HTTPRouteExactPathMatching",
  `
metadata: { name: exact-matching }
spec:
  rules:
  - matches: [{ path: { type: Exact, value: /one } }]
    backendRefs: [{ name: infra-backend-v1, port: 8080 }]
  - matches: [{ path: { type: Exact, value: /two } }]
    backendRefs: [{ name: infra-backend-v2, port: 8080 }]
`,
  [
    { path: "/one", backend: v1 },
    { path: "/two", backend: v2 },
    { path: "/", backend: 404 },
    { path: "/one/example", backend: 404 },
    { path: "/two/", backend: 404 },
    { path: "/Two", backend: 404 },
  ],
);

suite(
  "HTTPRouteHeaderMatching",
  `
metadata: { name: header-matching }
spec:
  rules:
  - matches: [{ headers: [{ name: version, value: one }] }]
    backendRefs: [{ name: infra-backend-v1, port: 8080 }]
  - matches: [{ headers: [{ name: version, value: two }] }]
    backendRefs: [{ name: infra-backend-v2, port: 8080 }]
  - matches: [{ headers: [{ name: version, value: two }, { name: color, value: orange }] }]
    backendRefs: [{ name: infra-backend-v1, port: 8080 }]
  - matches:
    - headers: [{ name: color, value: blue }]
    - headers: [{ name: color, value: green }]
    backendRefs: [{ name: infra-backend-v1, port: 8080 }]
  - matches:
    - headers: [{ name: color, value: red }]
    - headers: [{ name: color, value: yellow }]
    backendRefs: [{ name: infra-backend-v2, port: 8080 }]
`,
  [
    { path: "/", headers: { Version: "one" }, backend: v1 },
    { path: "/", headers: { Version: "two" }, backend: v2 },
    { path: "/", headers: { Version: "two", Color: "orange" }, backend: v1 },
    { path: "/", headers: { Version: "two", Color: "blue" }, backend: v2 },
    { path: "/", headers: { Color: "orange" }, backend: 404 },
    { path: "/", headers: { "Some-Other-Header": "one" }, backend: 404 },
    { path: "/", headers: { Color: "blue" }, backend: v1 },
    { path: "/", headers: { Color: "green" }, backend: v1 },
    { path: "/", headers: { Color: "red" }, backend: v2 },
    { path: "/", headers: { Color: "yellow" }, backend: v2 },
    { path: "/", headers: { Color: "purple" }, backend: 404 },
  ],
);

suite(
  "HTTPRouteQueryParamMatching",
  `
metadata: { name: query-param-matching }
spec:
  rules:
  - matches: [{ queryParams: [{ name: animal, value: whale }] }]
    backendRefs: [{ name: infra-backend-v1, port: 8080 }]
  - matches: [{ queryParams: [{ name: animal, value: dolphin }] }]
    backendRefs: [{ name: infra-backend-v2, port: 8080 }]
  - matches:
    - queryParams: [{ name: animal, value: dolphin }, { name: color, value: blue }]
    - queryParams: [{ name: ANIMAL, value: Whale }]
    backendRefs: [{ name: infra-backend-v3, port: 8080 }]
  - matches:
    - path: { type: PathPrefix, value: /path1 }
      queryParams: [{ name: animal, value: whale }]
    backendRefs: [{ name: infra-backend-v1, port: 8080 }]
  - matches:
    - headers: [{ name: version, value: one }]
      queryParams: [{ name: animal, value: whale }]
    backendRefs: [{ name: infra-backend-v2, port: 8080 }]
  - matches:
    - path: { type: PathPrefix, value: /path2 }
      headers: [{ name: version, value: two }]
      queryParams: [{ name: animal, value: whale }]
    backendRefs: [{ name: infra-backend-v3, port: 8080 }]
  - matches:
    - path: { type: PathPrefix, value: /path3 }
      queryParams: [{ name: animal, value: shark }]
    - path: { type: PathPrefix, value: /path4 }
      headers: [{ name: version, value: three }]
      queryParams: [{ name: animal, value: kraken }]
    backendRefs: [{ name: infra-backend-v1, port: 8080 }]
  - matches: [{ path: { type: PathPrefix, value: /path5 } }]
    backendRefs: [{ name: infra-backend-v1, port: 8080 }]
  - matches: [{ queryParams: [{ name: animal, value: hydra }] }]
    backendRefs: [{ name: infra-backend-v2, port: 8080 }]
  - matches: [{ headers: [{ name: version, value: four }] }]
    backendRefs: [{ name: infra-backend-v3, port: 8080 }]
`,
  [
    { path: "/?animal=whale", backend: v1 },
    { path: "/?animal=dolphin", backend: v2 },
    { path: "/?animal=dolphin&color=blue", backend: v3 },
    { path: "/?ANIMAL=Whale", backend: v3 },
    { path: "/?animal=whale&otherparam=irrelevant", backend: v1 },
    { path: "/?animal=dolphin&color=yellow", backend: v2 },
    { path: "/?color=blue", backend: 404 },
    { path: "/?animal=dog", backend: 404 },
    { path: "/?animal=whaledolphin", backend: 404 },
    { path: "/", backend: 404 },
    { path: "/path1?animal=whale", backend: v1 },
    { path: "/?animal=whale", headers: { version: "one" }, backend: v2 },
    { path: "/path2?animal=whale", headers: { version: "two" }, backend: v3 },
    { path: "/path3?animal=shark", backend: v1 },
    { path: "/path4?animal=kraken", headers: { version: "three" }, backend: v1 },
    { path: "/?animal=shark", backend: 404 },
    { path: "/path4?animal=kraken", backend: 404 },
    { path: "/path5?animal=hydra", backend: v1 },
    { path: "/?animal=hydra", headers: { version: "four" }, backend: v3 },
  ],
);

suite(
  "HTTPRouteMethodMatching",
  `
metadata: { name: method-matching }
spec:
  rules:
  - matches: [{ method: POST }]
    backendRefs: [{ name: infra-backend-v1, port: 8080 }]
  - matches: [{ method: GET }]
    backendRefs: [{ name: infra-backend-v2, port: 8080 }]
  - matches:
    - path: { type: PathPrefix, value: /path1 }
      method: GET
    backendRefs: [{ name: infra-backend-v1, port: 8080 }]
  - matches:
    - headers: [{ name: version, value: one }]
      method: PUT
    backendRefs: [{ name: infra-backend-v2, port: 8080 }]
  - matches:
    - path: { type: PathPrefix, value: /path2 }
      headers: [{ name: version, value: two }]
      method: POST
    backendRefs: [{ name: infra-backend-v3, port: 8080 }]
  - matches:
    - path: { type: PathPrefix, value: /path3 }
      method: PATCH
    - path: { type: PathPrefix, value: /path4 }
      headers: [{ name: version, value: three }]
      method: DELETE
    backendRefs: [{ name: infra-backend-v1, port: 8080 }]
  - matches: [{ path: { type: PathPrefix, value: /path5 } }]
    backendRefs: [{ name: infra-backend-v1, port: 8080 }]
  - matches: [{ method: PATCH }]
    backendRefs: [{ name: infra-backend-v2, port: 8080 }]
  - matches: [{ headers: [{ name: version, value: four }] }]
    backendRefs: [{ name: infra-backend-v3, port: 8080 }]
`,
  [
    { method: "POST", path: "/", backend: v1 },
    { method: "GET", path: "/", backend: v2 },
    { method: "HEAD", path: "/", backend: 404 },
    { method: "GET", path: "/path1", backend: v1 },
    { method: "PUT", path: "/", headers: { version: "one" }, backend: v2 },
    { method: "POST", path: "/path2", headers: { version: "two" }, backend: v3 },
    { method: "PATCH", path: "/path3", backend: v1 },
    { method: "DELETE", path: "/path4", headers: { version: "three" }, backend: v1 },
    { method: "PUT", path: "/", backend: 404 },
    { method: "DELETE", path: "/path4", backend: 404 },
    { method: "PATCH", path: "/path5", backend: v1 },
    { method: "PATCH", path: "/", headers: { version: "four" }, backend: v2 },
  ],
);
