import {
  type PoolDocument,
  parsePoolDocument,
  parseRoutesDocument,
  type RoutesDocument,
} from "../../contract/index.ts";
import { poolSpec } from "./pool-spec.ts";
import { compileSnapshot, type Snapshot } from "./snapshot.ts";

/** Test helper: a validated routes document, or a thrown error listing its problems. */
export function routesDoc(input: unknown): RoutesDocument {
  const parsed = parseRoutesDocument(input);
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.problems));
  return parsed.value;
}

export function poolDoc(input: unknown): PoolDocument {
  const parsed = parsePoolDocument(input);
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.problems));
  return parsed.value;
}

export function snapshotOf(
  routes: unknown,
  kvPools: Record<string, unknown> = {},
  local = true,
): Snapshot {
  return compileSnapshot({
    generation: "test",
    routes: routesDoc(routes),
    kvPools: new Map(
      Object.entries(kvPools).map(([name, doc]) => [name, poolSpec(name, poolDoc(doc), "kv")]),
    ),
    local,
  });
}

/** A pool of `http://<name>.test` endpoints with the given weights. */
export function poolOf(
  weights: Record<string, number>,
  extra: Record<string, Record<string, unknown>> = {},
) {
  return {
    version: 1,
    endpoints: Object.entries(weights).map(([name, weight]) => ({
      url: `http://${name}.test`,
      weight,
      ...extra[name],
    })),
  };
}
