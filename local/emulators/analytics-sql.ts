import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer } from "node:http";
import { type AggregateOptions, DatabaseSync } from "node:sqlite";
import type { DataPoint } from "../../contract/analytics.ts";
import { listenOnLoopback } from "../listen.ts";
import { failure } from "./kv-rest.ts";

/**
 * The Workers Analytics Engine SQL API on loopback, for `switchyard stats` in tests: `POST
 * /client/v4/accounts/<account>/analytics_engine/sql` with the query as the raw body and a bearer
 * token. Each dataset is a table with Analytics Engine's columns (dataset, timestamp,
 * _sample_interval, index1, blob1–blob20, double1–double20), kept in SQLite, and the queries are
 * run there after the dialect's few differences are translated: `now()`, `INTERVAL 'N' UNIT`,
 * `if`, `sumIf`, `countIf` and `quantileExactWeighted(level, value, weight)`.
 *
 * What the real API would refuse is refused: a missing or wrong token (403, Cloudflare's error
 * envelope), another account, JOIN and UNION, an unknown dataset, column or function, and
 * formats other than JSON and JSONEachRow (422 with the reason as text). Answers are shaped as
 * the real ones: `FORMAT JSON` (the default) gives `{ meta, data, rows,
 * rows_before_limit_at_least }`, with 64-bit integers quoted as strings as ClickHouse writes
 * them; `JSONEachRow` one object a line.
 */

export interface AnalyticsSqlEmulator {
  /** Base URL including /client/v4, for CLOUDFLARE_API_BASE_URL. */
  baseUrl: string;
  accountId: string;
  token: string;
  /** Stores a data point as the worker's `writeDataPoint` would, at `at` (default now). */
  write(dataset: string, point: DataPoint, options?: { at?: Date; sampleInterval?: number }): void;
  /** Queries received, as sent. */
  queries: string[];
  close(): Promise<void>;
}

const BLOBS = 20;
const DOUBLES = 20;
const UNIT_SECONDS: Record<string, number> = {
  SECOND: 1,
  MINUTE: 60,
  HOUR: 3_600,
  DAY: 86_400,
  WEEK: 604_800,
};

class QueryError extends Error {}

function send(response: ServerResponse, status: number, body: string, type: string): void {
  response.writeHead(status, { "content-type": type });
  response.end(body);
}

function columnsOf(): string {
  const blobs = Array.from({ length: BLOBS }, (_, i) => `blob${i + 1} TEXT NOT NULL DEFAULT ''`);
  const doubles = Array.from(
    { length: DOUBLES },
    (_, i) => `double${i + 1} REAL NOT NULL DEFAULT 0`,
  );
  return [
    "dataset TEXT NOT NULL",
    "timestamp REAL NOT NULL",
    "_sample_interval INTEGER NOT NULL",
    "index1 TEXT NOT NULL DEFAULT ''",
    ...blobs,
    ...doubles,
  ].join(", ");
}

/** The Analytics Engine dialect, said in SQLite. */
function translate(sql: string, nowSeconds: number): { sql: string; format: string } {
  let text = sql.trim().replace(/;\s*$/, "");
  let format = "JSON";
  const formatted = /\s+FORMAT\s+([A-Za-z]+)\s*$/i.exec(text);
  if (formatted) {
    format = formatted[1] as string;
    text = text.slice(0, formatted.index);
  }
  if (format !== "JSON" && format !== "JSONEachRow")
    throw new QueryError(`unsupported output format ${format}`);
  if (/\b(JOIN|UNION)\b/i.test(text))
    throw new QueryError("JOIN and UNION are not supported: a query reads one dataset");
  text = text
    .replace(/\bnow\(\)/gi, String(nowSeconds))
    .replace(
      /\bINTERVAL\s+'?(\d+)'?\s+(SECOND|MINUTE|HOUR|DAY|WEEK)S?\b/gi,
      (_, count: string, unit: string) =>
        String(Number(count) * (UNIT_SECONDS[unit.toUpperCase()] as number)),
    )
    .replace(/\bif\(/gi, "iif(");
  return { sql: text, format };
}

function quantile(level: number, pairs: [number, number][]): number {
  if (pairs.length === 0) return Number.NaN;
  pairs.sort((a, b) => a[0] - b[0]);
  const total = pairs.reduce((n, [, w]) => n + w, 0);
  let seen = 0;
  for (const [value, weight] of pairs) {
    seen += weight;
    if (seen >= level * total) return value;
  }
  return (pairs.at(-1) as [number, number])[0];
}

function openDatabase(): DatabaseSync {
  const db = new DatabaseSync(":memory:");
  // The accumulator may be any JavaScript value at run time; the typings only allow SQL ones.
  const quantileAggregate = {
    start: () => ({ level: 0.5, pairs: [] as [number, number][] }),
    step: (
      acc: { level: number; pairs: [number, number][] },
      level: unknown,
      value: unknown,
      weight: unknown,
    ) => {
      acc.level = Number(level);
      acc.pairs.push([Number(value), Number(weight)]);
      return acc;
    },
    result: (acc: { level: number; pairs: [number, number][] }) => quantile(acc.level, acc.pairs),
  };
  db.aggregate("quantileExactWeighted", quantileAggregate as unknown as AggregateOptions);
  db.aggregate("sumIf", {
    start: 0,
    step: (acc, value, condition) => (condition ? Number(acc) + Number(value) : acc),
  });
  db.aggregate("countIf", {
    start: 0,
    step: (acc, condition) => (condition ? Number(acc) + 1 : acc),
  });
  return db;
}

export async function startAnalyticsSql(
  options: { port?: number; accountId?: string; token?: string; now?: () => number } = {},
): Promise<AnalyticsSqlEmulator> {
  const accountId = options.accountId ?? "0123456789abcdef0123456789abcdef";
  const token = options.token ?? "local-analytics-read-token";
  const now = options.now ?? Date.now;
  const db = openDatabase();
  const datasets = new Set<string>();
  const queries: string[] = [];
  const path = `/client/v4/accounts/${accountId}/analytics_engine/sql`;

  const run = (query: string): { status: number; body: string; type: string } => {
    const { sql, format } = translate(query, now() / 1000);
    let rows: Record<string, unknown>[];
    let names: string[];
    try {
      const statement = db.prepare(sql);
      names = statement.columns().map((c) => c.name);
      rows = statement.all() as Record<string, unknown>[];
    } catch (error) {
      const message = (error as Error).message.replace(/^no such table: /, "unknown dataset: ");
      throw new QueryError(message);
    }
    const types = names.map((name) => {
      const values = rows.map((r) => r[name]).filter((v) => v !== null);
      if (values.every((v) => typeof v === "string")) return "String";
      if (values.every((v) => typeof v === "number" && Number.isInteger(v))) return "UInt64";
      return "Float64";
    });
    const data = rows.map((row) =>
      Object.fromEntries(
        names.map((name, i) => {
          const value = row[name];
          // ClickHouse quotes 64-bit integers in JSON output.
          return [name, types[i] === "UInt64" && typeof value === "number" ? String(value) : value];
        }),
      ),
    );
    if (format === "JSONEachRow")
      return {
        status: 200,
        body: data.map((row) => `${JSON.stringify(row)}\n`).join(""),
        type: "application/x-ndjson",
      };
    return {
      status: 200,
      body: JSON.stringify({
        meta: names.map((name, i) => ({ name, type: types[i] })),
        data,
        rows: data.length,
        rows_before_limit_at_least: data.length,
      }),
      type: "application/json",
    };
  };

  const server = createServer(async (request: IncomingMessage, response: ServerResponse) => {
    const parts: Buffer[] = [];
    for await (const part of request) parts.push(part as Buffer);
    const body = Buffer.concat(parts).toString("utf8");
    if (request.headers.authorization !== `Bearer ${token}`) {
      return send(
        response,
        403,
        JSON.stringify(failure(10000, "Authentication error")),
        "application/json",
      );
    }
    const url = new URL(request.url ?? "/", "http://emulator");
    if (url.pathname !== path || request.method !== "POST") {
      return send(
        response,
        404,
        JSON.stringify(failure(7003, "Could not route to the requested path")),
        "application/json",
      );
    }
    queries.push(body);
    try {
      const answer = run(body);
      send(response, answer.status, answer.body, answer.type);
    } catch (error) {
      if (!(error instanceof QueryError)) throw error;
      send(response, 422, `${error.message}\n`, "text/plain");
    }
  });
  const { port, close } = await listenOnLoopback(server, options.port);
  return {
    baseUrl: `http://127.0.0.1:${port}/client/v4`,
    accountId,
    token,
    queries,
    write(dataset, point, { at = new Date(now()), sampleInterval = 1 } = {}) {
      if (!/^[A-Za-z0-9_]+$/.test(dataset)) throw new Error(`bad dataset name ${dataset}`);
      if (point.blobs.length > BLOBS || point.doubles.length > DOUBLES || point.indexes.length > 1)
        throw new Error("a data point has at most 20 blobs, 20 doubles and one index");
      if (!datasets.has(dataset)) {
        db.exec(`CREATE TABLE ${dataset} (${columnsOf()})`);
        datasets.add(dataset);
      }
      const names = [
        "dataset",
        "timestamp",
        "_sample_interval",
        "index1",
        ...point.blobs.map((_, i) => `blob${i + 1}`),
        ...point.doubles.map((_, i) => `double${i + 1}`),
      ];
      db.prepare(
        `INSERT INTO ${dataset} (${names.join(", ")}) VALUES (${names.map(() => "?").join(", ")})`,
      ).run(
        dataset,
        at.getTime() / 1000,
        sampleInterval,
        point.indexes[0] ?? "",
        ...point.blobs,
        ...point.doubles,
      );
    },
    async close() {
      await close();
      db.close();
    },
  };
}
