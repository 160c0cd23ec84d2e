import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { parse as parseToml } from "smol-toml";
import { ANALYTICS_BINDING, ANALYTICS_COLUMNS as C, NAME_PATTERN } from "../contract/index.ts";
import { ROOT } from "./wrangler.ts";

/**
 * `switchyard stats`: traffic across every isolate and location, from the worker's Analytics
 * Engine data points (contract/analytics.ts) through the Analytics Engine SQL API. Per route,
 * pool and endpoint: requests a second, the share of 5xx answers, p50/p99 latency and retries.
 */

export interface StatsQuery {
  dataset: string;
  sinceSeconds: number;
  route?: string;
}

export interface StatsRow {
  route: string;
  pool: string;
  endpoint: string;
  requests: number;
  requestsPerSecond: number;
  errorRatio: number;
  p50Ms: number;
  p99Ms: number;
  retries: number;
}

/** Analytics Engine keeps data points for three months. */
export const STATS_MAX_SECONDS = 90 * 86_400;
const DATASET = /^[A-Za-z0-9_]+$/;

/** The query; every name in it has been checked against a pattern (the API takes raw SQL). */
export function statsSql({ dataset, sinceSeconds, route }: StatsQuery): string {
  if (!DATASET.test(dataset)) throw new Error(`not a dataset name: ${JSON.stringify(dataset)}`);
  if (route !== undefined && !NAME_PATTERN.test(route))
    throw new Error(`not a route name: ${JSON.stringify(route)}`);
  if (!Number.isInteger(sinceSeconds) || sinceSeconds < 1 || sinceSeconds > STATS_MAX_SECONDS)
    throw new Error(`the window must be 1 s to 90 days, got ${sinceSeconds} s`);
  const weight = "_sample_interval";
  return [
    `SELECT ${C.route} AS route, ${C.pool} AS pool, ${C.endpoint} AS endpoint,`,
    `  SUM(${weight}) AS requests,`,
    `  sumIf(${weight}, ${C.statusCode} >= 500) AS errors,`,
    `  SUM(${weight} * if(${C.tries} > 1, ${C.tries} - 1, 0)) AS retries,`,
    `  quantileExactWeighted(0.5, ${C.durationMs}, ${weight}) AS p50,`,
    `  quantileExactWeighted(0.99, ${C.durationMs}, ${weight}) AS p99`,
    `FROM ${dataset}`,
    `WHERE timestamp > now() - INTERVAL '${sinceSeconds}' SECOND${
      route === undefined ? "" : ` AND ${C.route} = '${route}'`
    }`,
    "GROUP BY route, pool, endpoint",
    "ORDER BY route, requests DESC",
    "FORMAT JSON",
  ].join("\n");
}

/** Rows of the JSON answer; 64-bit integers come quoted, so every number is read with Number. */
export function statsRows(answer: unknown, sinceSeconds: number): StatsRow[] {
  const data = (answer as { data?: unknown })?.data;
  if (!Array.isArray(data)) throw new Error("the SQL API answered without a data array");
  return data.map((raw: Record<string, unknown>) => {
    const requests = Number(raw.requests);
    const errors = Number(raw.errors);
    return {
      route: String(raw.route),
      pool: String(raw.pool),
      endpoint: String(raw.endpoint),
      requests,
      requestsPerSecond: requests / sinceSeconds,
      errorRatio: requests === 0 ? 0 : errors / requests,
      p50Ms: Number(raw.p50),
      p99Ms: Number(raw.p99),
      retries: Number(raw.retries),
    };
  });
}

export function formatStats(rows: StatsRow[]): string[] {
  if (rows.length === 0) return ["no requests in this window"];
  const header = ["route", "pool", "endpoint", "req/s", "5xx", "p50 ms", "p99 ms", "retries"];
  const cells = rows.map((r) => [
    r.route || "(no route)",
    r.pool || "(none)",
    r.endpoint || "(none)",
    r.requestsPerSecond < 10 ? r.requestsPerSecond.toFixed(2) : r.requestsPerSecond.toFixed(0),
    `${(r.errorRatio * 100).toFixed(1)}%`,
    r.p50Ms.toFixed(0),
    r.p99Ms.toFixed(0),
    String(r.retries),
  ]);
  const widths = header.map((h, i) =>
    Math.max(h.length, ...cells.map((c) => (c[i] as string).length)),
  );
  const line = (cols: string[]) =>
    cols
      .map((c, i) => (i < 3 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number)))
      .join("  ");
  return [line(header), ...cells.map(line)];
}

/** The dataset bound as ANALYTICS in wrangler.toml, for this environment (or the top level). */
export async function datasetOf(
  env: string | undefined,
  file = join(ROOT, "wrangler.toml"),
): Promise<string> {
  const config = parseToml(await readFile(file, "utf8")) as {
    analytics_engine_datasets?: { binding?: string; dataset?: string }[];
    env?: Record<string, { analytics_engine_datasets?: { binding?: string; dataset?: string }[] }>;
  };
  const section = env === undefined ? config : config.env?.[env];
  if (env !== undefined && !section) throw new Error(`wrangler.toml has no [env.${env}]`);
  const bound = section?.analytics_engine_datasets?.find((d) => d.binding === ANALYTICS_BINDING);
  if (!bound?.dataset)
    throw new Error(
      `wrangler.toml binds no ${ANALYTICS_BINDING} dataset${env === undefined ? "" : ` in [env.${env}]`}: ` +
        'enable it (docs/operations.md, "Traffic across isolates") or name one with --dataset',
    );
  return bound.dataset;
}
