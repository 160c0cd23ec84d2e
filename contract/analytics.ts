/**
 * The worker's Workers Analytics Engine data point: one per proxied request when the optional
 * ANALYTICS binding is set (docs/operations.md, "Traffic across isolates"). `switchyard stats`
 * queries these columns by name; a change here is a change of the contract.
 */

export const ANALYTICS_BINDING = "ANALYTICS";

/** Where each fact sits in the dataset. index1 is the route: Analytics Engine samples per index. */
export const ANALYTICS_COLUMNS = {
  route: "blob1",
  rule: "blob2",
  pool: "blob3",
  endpoint: "blob4",
  status: "blob5",
  colo: "blob6",
  durationMs: "double1",
  tries: "double2",
  statusCode: "double3",
} as const;

export interface RequestFacts {
  route: string;
  rule: string;
  /** Empty when no endpoint answered (a failure of the worker's own: timeout, no backend). */
  pool: string;
  endpoint: string;
  status: number;
  durationMs: number;
  tries: number;
  colo: string;
}

/** An index value is at most 96 bytes. */
export const ANALYTICS_INDEX_MAX_BYTES = 96;

export interface DataPoint {
  indexes: string[];
  blobs: string[];
  doubles: number[];
}

export function dataPoint(facts: RequestFacts): DataPoint {
  return {
    // Route names are ASCII (contract/routes.ts): a character is a byte.
    indexes: [facts.route.slice(0, ANALYTICS_INDEX_MAX_BYTES)],
    blobs: [facts.route, facts.rule, facts.pool, facts.endpoint, String(facts.status), facts.colo],
    doubles: [facts.durationMs, facts.tries, facts.status],
  };
}
