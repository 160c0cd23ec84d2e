import type { PoolDocument, RoutesDocument } from "../contract/index.ts";
import { parsePoolDocument, parseRoutesDocument } from "../contract/index.ts";

/**
 * Synthetic documents of a given size for the benchmarks: route i serves host svc-i.example.com
 * with four rules (an Exact path, two PathPrefixes with a header or a method, a catch-all);
 * every tenth route also takes *.svc-i.example.net. Pools have 100 endpoints each.
 */
export function syntheticRoutes(count: number, pools: number): RoutesDocument {
  const routes = Array.from({ length: count }, (_, i) => ({
    name: `svc-${i}`,
    hostnames:
      i % 10 === 0 ? [`svc-${i}.example.com`, `*.svc-${i}.example.net`] : [`svc-${i}.example.com`],
    rules: [
      {
        matches: [{ path: { type: "Exact", value: "/healthz" } }],
        backendRefs: [{ pool: `pool-${i % pools}` }],
      },
      {
        matches: [
          {
            path: { type: "PathPrefix", value: "/api/v2" },
            headers: [{ name: "x-canary", value: "1" }],
          },
        ],
        backendRefs: [
          { pool: `pool-${(i + 1) % pools}`, weight: 90 },
          { pool: `pool-${(i + 2) % pools}`, weight: 10 },
        ],
      },
      {
        matches: [{ path: { type: "PathPrefix", value: "/api" }, method: "GET" }],
        backendRefs: [{ pool: `pool-${i % pools}` }],
      },
      { backendRefs: [{ pool: `pool-${i % pools}` }] },
    ],
  }));
  const parsed = parseRoutesDocument({ version: 1, routes });
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.problems.slice(0, 3)));
  return parsed.value;
}

/**
 * The benchmarks' one-route document: route "bench" for host x.test, one rule over pool "p"
 * (inline, `pool`), with `rule`'s fields besides its backendRef.
 */
export function oneRouteDocument(pool: unknown, rule: Record<string, unknown> = {}) {
  return {
    version: 1,
    routes: [
      { name: "bench", hostnames: ["x.test"], rules: [{ ...rule, backendRefs: [{ pool: "p" }] }] },
    ],
    pools: { p: pool },
  };
}

export function syntheticPool(index: number, endpoints: number): PoolDocument {
  const parsed = parsePoolDocument({
    version: 1,
    generation: 1,
    updatedAt: "2026-11-25T10:00:00Z",
    endpoints: Array.from({ length: endpoints }, (_, e) => ({
      url: `https://pod-${index}-${e}.svc.example.com`,
      weight: 1 + (e % 3),
      zone: `zone-${e % 3}`,
    })),
  });
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.problems.slice(0, 3)));
  return parsed.value;
}
