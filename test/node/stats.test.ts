import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dataPoint, type RequestFacts } from "../../contract/analytics.ts";
import {
  type AnalyticsSqlEmulator,
  startAnalyticsSql,
} from "../../local/emulators/analytics-sql.ts";

/** `switchyard stats`, run as a user runs it, against the Analytics Engine SQL API emulator. */

const CLI = fileURLToPath(new URL("../../cli/switchyard.ts", import.meta.url));
const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const NOW = Date.parse("2026-11-29T12:00:00Z");
let sql: AnalyticsSqlEmulator;
let dir: string;

function cli(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, ...args],
      {
        cwd: ROOT,
        env: {
          PATH: process.env.PATH,
          CLOUDFLARE_ACCOUNT_ID: sql.accountId,
          CLOUDFLARE_API_TOKEN: sql.token,
          CLOUDFLARE_API_BASE_URL: sql.baseUrl,
          ...env,
        },
        timeout: 30_000,
      },
      (error, stdout, stderr) =>
        resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

const facts = (over: Partial<RequestFacts>): RequestFacts => ({
  route: "shop",
  rule: "web",
  pool: "demo/web:http",
  endpoint: "ep-1",
  status: 200,
  durationMs: 10,
  tries: 1,
  colo: "AMS",
  ...over,
});

beforeAll(async () => {
  sql = await startAnalyticsSql({ now: () => NOW });
  dir = await mkdtemp(join(tmpdir(), "switchyard-stats-"));
  const at = (secondsAgo: number) => ({ at: new Date(NOW - secondsAgo * 1000) });
  // shop, ep-1: 8 requests in the last 15 minutes, 2 of them 503 after a retry each.
  for (let i = 0; i < 6; i++)
    sql.write("switchyard", dataPoint(facts({ durationMs: 10 + i })), at(60));
  for (let i = 0; i < 2; i++)
    sql.write("switchyard", dataPoint(facts({ status: 503, tries: 2, durationMs: 400 })), at(120));
  // shop, ep-2: sampled 1 in 10 by Analytics Engine: one row stands for 10 requests.
  sql.write("switchyard", dataPoint(facts({ endpoint: "ep-2", durationMs: 30 })), {
    ...at(30),
    sampleInterval: 10,
  });
  // status route, and an old point outside the window.
  sql.write("switchyard", dataPoint(facts({ route: "status", endpoint: "ep-9" })), at(10));
  sql.write("switchyard", dataPoint(facts({ endpoint: "ep-old" })), at(3600));
  // A request no route matched.
  sql.write(
    "switchyard",
    dataPoint(facts({ route: "", rule: "", pool: "", endpoint: "", status: 404, tries: 0 })),
    at(20),
  );
  // A failure before any endpoint answered.
  sql.write(
    "switchyard",
    dataPoint(facts({ pool: "", endpoint: "", status: 503, tries: 0 })),
    at(5),
  );
});
afterAll(async () => {
  await sql.close();
  await rm(dir, { recursive: true, force: true });
});

describe("switchyard stats", () => {
  it("prints req/s, 5xx share, p50/p99 and retries per route and endpoint, weighted by sampling", async () => {
    const { code, stdout, stderr } = await cli(["stats", "--dataset", "switchyard", "--json"]);
    expect(stderr).toBe("");
    expect(code).toBe(0);
    const { sinceSeconds, rows } = JSON.parse(stdout) as {
      sinceSeconds: number;
      rows: Record<string, unknown>[];
    };
    expect(sinceSeconds).toBe(900);
    expect(rows).toEqual([
      expect.objectContaining({ route: "", pool: "", endpoint: "", requests: 1, errorRatio: 0 }),
      {
        route: "shop",
        pool: "demo/web:http",
        endpoint: "ep-2",
        requests: 10,
        requestsPerSecond: 10 / 900,
        errorRatio: 0,
        p50Ms: 30,
        p99Ms: 30,
        retries: 0,
      },
      {
        route: "shop",
        pool: "demo/web:http",
        endpoint: "ep-1",
        requests: 8,
        requestsPerSecond: 8 / 900,
        errorRatio: 0.25,
        p50Ms: 13,
        p99Ms: 400,
        retries: 2,
      },
      expect.objectContaining({
        route: "shop",
        pool: "",
        endpoint: "",
        requests: 1,
        errorRatio: 1,
      }),
      expect.objectContaining({ route: "status", endpoint: "ep-9", requests: 1 }),
    ]);
    expect(sql.queries.at(-1)).toContain("INTERVAL '900' SECOND");
  });

  it("narrows to one route and a window, and prints a table", async () => {
    const { code, stdout } = await cli([
      "stats",
      "--dataset",
      "switchyard",
      "--route",
      "shop",
      "--since",
      "2h",
    ]);
    expect(code).toBe(0);
    const lines = stdout.trim().split("\n");
    expect(lines[0]).toMatch(
      /^route\s+pool\s+endpoint\s+req\/s\s+5xx\s+p50 ms\s+p99 ms\s+retries$/,
    );
    expect(lines).toHaveLength(5); // header, ep-2, ep-1, (none), ep-old: the hour-old point counts now
    expect(stdout).toContain("ep-old");
    expect(stdout).not.toContain("ep-9");
    expect(stdout).toMatch(/shop\s+\(none\)\s+\(none\)/);
  });

  it("names requests no route matched", async () => {
    const { code, stdout } = await cli(["stats", "--dataset", "switchyard"]);
    expect(code).toBe(0);
    expect(stdout).toMatch(/^\(no route\)\s+\(none\)\s+\(none\)/m);
  });

  it("reads the dataset bound as ANALYTICS for --env from wrangler.toml", async () => {
    const toml = join(dir, "wrangler.toml");
    await writeFile(
      toml,
      '[env.production]\n[[env.production.analytics_engine_datasets]]\nbinding = "ANALYTICS"\ndataset = "switchyard"\n',
    );
    // The CLI reads the repository's wrangler.toml, which binds none: it says so and how to fix it.
    const missing = await cli(["stats", "--env", "production"]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("wrangler.toml has no [env.production]");
    const none = await cli(["stats"]);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain("binds no ANALYTICS dataset");
    expect(none.stderr).toContain("--dataset");
    const { datasetOf } = await import("../../cli/stats.ts");
    expect(await datasetOf("production", toml)).toBe("switchyard");
  });

  it("refuses bad input with the reason, and says what the API answered", async () => {
    const since = await cli(["stats", "--dataset", "switchyard", "--since", "forever"]);
    expect(since.code).toBe(2);
    expect(since.stderr).toContain("--since must be a duration");
    const route = await cli(["stats", "--dataset", "switchyard", "--route", "x' OR 1=1 --"]);
    expect(route.code).toBe(2);
    expect(route.stderr).toContain("not a route name");
    const token = await cli(["stats", "--dataset", "switchyard"], {
      CLOUDFLARE_API_TOKEN: "wrong",
    });
    expect(token.code).toBe(1);
    expect(token.stderr).toContain("answered 403");
    expect(token.stderr).toContain("Authentication error");
    const unknown = await cli(["stats", "--dataset", "nothing_here"]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain("answered 422: unknown dataset: nothing_here");
    const unset = await cli(["stats", "--dataset", "switchyard"], { CLOUDFLARE_API_TOKEN: "" });
    expect(unset.code).toBe(2);
    expect(unset.stderr).toContain("CLOUDFLARE_API_TOKEN");
  });
});

describe("the Analytics Engine SQL API emulator", () => {
  const post = async (query: string) => {
    const response = await fetch(`${sql.baseUrl}/accounts/${sql.accountId}/analytics_engine/sql`, {
      method: "POST",
      headers: { authorization: `Bearer ${sql.token}` },
      body: query,
    });
    return { status: response.status, text: await response.text() };
  };

  it("quotes 64-bit integers as ClickHouse does, and answers JSONEachRow", async () => {
    const json = await post("SELECT SUM(_sample_interval) AS n, avg(double1) AS d FROM switchyard");
    expect(JSON.parse(json.text)).toMatchObject({
      meta: [
        { name: "n", type: "UInt64" },
        { name: "d", type: "Float64" },
      ],
      data: [{ n: "22" }],
      rows: 1,
    });
    const lines = await post(
      "SELECT blob1 AS route FROM switchyard WHERE blob1 = 'status' FORMAT JSONEachRow",
    );
    expect(lines.text).toBe('{"route":"status"}\n');
  });

  it("refuses joins, unknown columns and functions, and other formats", async () => {
    expect(
      await post("SELECT * FROM switchyard a JOIN switchyard b ON a.blob1 = b.blob1"),
    ).toMatchObject({
      status: 422,
    });
    expect((await post("SELECT blob99 FROM switchyard")).text).toContain("no such column");
    expect((await post("SELECT nosuchfunction(double1) FROM switchyard")).status).toBe(422);
    expect((await post("SELECT 1 FORMAT CSV")).text).toContain("unsupported output format CSV");
  });
});
