#!/usr/bin/env node
// The `switchyard` CLI: validate, push, pull, pools, explain, status, stats. `npx switchyard --help`.
import { createHash } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { createTwoFilesPatch } from "diff";
import {
  COMPILED_KEY_PREFIX,
  compiledIdOfKey,
  compiledMetadataOf,
  compileRoutes,
  layoutEntries,
  POOL_KEY_PREFIX,
  parseDuration,
  parsePoolText,
  poolNameOfKey,
  ROUTES_KEY,
  type RoutesDocument,
  shardCountFor,
} from "../contract/index.ts";
import { explain } from "../worker/core/explain.ts";
import { stableHash } from "../worker/core/hash.ts";
import { parseHeaderArgument, requestView } from "../worker/core/request.ts";
import { compileSnapshot } from "../worker/core/snapshot.ts";
import { formatLocated, readRoutes } from "./document.ts";
import { kvBulkDelete, kvBulkPut, kvGet, kvList, kvPut, type Target } from "./kv.ts";
import { datasetOf, formatStats, STATS_MAX_SECONDS, statsRows, statsSql } from "./stats.ts";
import { type StatusBody, statusLines } from "./status.ts";

const USAGE = `Usage: switchyard <command> [options]

  validate FILE                     check a routes document (JSON or YAML); exit 2 on any error
  push FILE (--local | --env NAME)  validate, show the diff against KV, write it
       [--force]                    …even if KV changed since it was pulled
  pull (--local | --env NAME)       write KV's routes document to --out FILE (default routes.json)
  pools (--local | --env NAME)      pools in KV: endpoints, states, generation, age
  explain --host H --path P         which route, rule and pools a request gets, and why
       [--method M] [--header k:v]  (repeatable) from --file FILE, --local or --env NAME
  status --url URL                  a running worker's admin API status (token: --token or ADMIN_TOKEN)
  stats [--env NAME]                traffic of every isolate from Analytics Engine: per route and
       [--since 15m] [--route R]    endpoint, req/s, 5xx share, p50/p99 and retries
       [--dataset D]                (CLOUDFLARE_ACCOUNT_ID, CLOUDFLARE_API_TOKEN)

  --json                            machine-readable output
  --local                           the Miniflare KV that \`npm start\` serves (.wrangler/state)
  --env NAME                        the namespace of that wrangler environment, remotely

Exit codes: 0 done; 1 refused or failed; 2 invalid input.`;

class CliError extends Error {
  readonly code: number;
  constructor(message: string, code = 1) {
    super(message);
    this.code = code;
  }
}

const out = (line: string): void => {
  process.stdout.write(`${line}\n`);
};
const progress = (line: string) => {
  if (process.stderr.isTTY) process.stderr.write(`\r\x1b[2K${line}…`);
  else process.stderr.write(`${line}…\n`);
};
const progressDone = () => {
  if (process.stderr.isTTY) process.stderr.write("\r\x1b[2K");
};

function targetOf(values: Record<string, unknown>): Target {
  const local = Boolean(values.local);
  const env = values.env as string | undefined;
  if (local === (env !== undefined))
    throw new CliError(
      "say where KV is: --local (npm start's) or --env NAME (a wrangler environment)",
      2,
    );
  return { local, env };
}

async function readFileOrFail(file: string | undefined): Promise<string> {
  if (!file) throw new CliError("name a file", 2);
  try {
    return await readFile(file, "utf8");
  } catch (error) {
    throw new CliError(`cannot read ${file}: ${(error as Error).message}`, 2);
  }
}

async function validated(file: string, json: boolean) {
  const read = readRoutes(await readFileOrFail(file), file);
  if (read.problems.length > 0 || !read.parsed?.ok) {
    if (json)
      out(
        JSON.stringify({
          ok: false,
          problems: read.problems.map(({ path, message, line }) => ({ path, message, line })),
        }),
      );
    else
      for (const problem of read.problems)
        process.stderr.write(`${formatLocated(file, problem)}\n`);
    throw new CliError(
      `${file}: ${read.problems.length} problem${read.problems.length === 1 ? "" : "s"}; nothing written`,
      2,
    );
  }
  const document = read.parsed.value;
  // Compile what the worker would compile, so that nothing accepted here can fail there. Pools
  // in KV are not read: references to them are named in the worker's own words.
  let warnings: string[];
  try {
    warnings = compileSnapshot({
      generation: "validate",
      routes: document,
      kvPools: new Map(),
    }).warnings;
  } catch (error) {
    throw new CliError(`${file}: the worker could not compile it: ${(error as Error).message}`, 2);
  }
  return { json: read.json as string, document, warnings };
}

async function validate(file: string, json: boolean): Promise<void> {
  const { document, warnings } = await validated(file, json);
  const rules = document.routes.reduce((n, r) => n + r.rules.length, 0);
  if (json) out(JSON.stringify({ ok: true, routes: document.routes.length, rules, warnings }));
  else {
    out(`${file}: valid (${document.routes.length} routes, ${rules} rules)`);
    for (const warning of warnings)
      if (!warning.includes("no inline pool and no KV key")) out(`warning: ${warning}`);
  }
}

/** A document's content as JSON, whatever its spacing: what push compares and hashes. */
function canonical(text: string): string {
  try {
    return JSON.stringify(JSON.parse(text));
  } catch {
    return text.trim();
  }
}

/**
 * Writes a validated document with its compiled layout (docs/kv-schema.md): the layout's keys
 * first, then the `routes` key naming it in its metadata, so that a worker that sees the new
 * document finds its layout; then the layouts older than the one it replaced are deleted (that
 * one stays, for isolates still serving it).
 */
async function writeRoutes(
  target: Target,
  text: string,
  document: RoutesDocument,
  /** The routes keys in KV, when the caller has listed them already. */
  listed?: Awaited<ReturnType<typeof kvList>>,
): Promise<void> {
  let keys = listed;
  if (keys === undefined) {
    progress("listing the routes keys in KV");
    keys = await kvList(target, ROUTES_KEY);
  }
  const previous = compiledMetadataOf(keys.find((k) => k.name === ROUTES_KEY)?.metadata);
  const id = createHash("sha256").update(text).digest("base64url").slice(0, 22);
  const layout = compileRoutes(document, id, shardCountFor(text.length));
  progress(`writing the compiled layout (${layout.shards.length} shards)`);
  await kvBulkPut(target, layoutEntries(layout));
  progress("writing the routes document");
  await kvPut(target, ROUTES_KEY, text, layout.metadata);
  const kept = new Set([id, previous?.compiled]);
  const stale = keys
    .map((k) => k.name)
    .filter((name) => name.startsWith(COMPILED_KEY_PREFIX))
    .filter((name) => !kept.has(compiledIdOfKey(name)));
  if (stale.length > 0) {
    progress(`deleting ${stale.length} keys of older layouts`);
    await kvBulkDelete(target, stale);
  }
  progressDone();
}

async function push(file: string, target: Target, force: boolean, json: boolean): Promise<void> {
  const { json: next, document } = await validated(file, json);
  progress("reading the routes document in KV");
  const current = await kvGet(target, ROUTES_KEY);
  progressDone();
  const basePath = `${file}.base`;
  const base = await readFile(basePath, "utf8").then(
    (t) => t.trim(),
    () => undefined,
  );
  if (current !== undefined && canonical(current) === canonical(next)) {
    // Pushing what KV holds (for instance the same file twice) is nothing to push, not a conflict;
    // a document written without its layout (by wrangler) gets one.
    const listed = await kvList(target, ROUTES_KEY);
    const laidOut = compiledMetadataOf(listed.find((k) => k.name === ROUTES_KEY)?.metadata);
    if (!laidOut) await writeRoutes(target, next, document, listed);
    await writeFile(basePath, `${stableHash(canonical(next))}\n`);
    if (json) out(JSON.stringify({ changed: false, layoutWritten: !laidOut }));
    else if (laidOut) out("nothing to push: KV already holds this document");
    else out("KV already holds this document; wrote its compiled layout, which it had not");
    return;
  }
  if (current !== undefined && !force) {
    if (base === undefined) {
      throw new CliError(
        `KV already holds a routes document, and ${file} was not pulled from it (no ${basePath}): run \`switchyard pull\` first, or --force to overwrite`,
      );
    }
    if (base !== stableHash(canonical(current)) && base !== stableHash(current)) {
      throw new CliError(
        `the routes document in KV changed since ${file} was pulled: pull again and redo the edit, or --force to overwrite`,
      );
    }
  }
  const before =
    current === undefined ? "" : JSON.stringify(JSON.parse(current), null, 2).concat("\n");
  const patch = createTwoFilesPatch("routes (in KV)", file, before, next, "", "", { context: 3 });
  if (!json) out(patch.split("\n").slice(2).join("\n").trimEnd());
  await writeRoutes(target, next, document);
  await writeFile(basePath, `${stableHash(canonical(next))}\n`);
  if (json) out(JSON.stringify({ changed: true, diff: patch }));
  else out(`pushed ${file} to ${target.local ? "local KV" : `KV of env ${target.env}`}`);
}

async function pull(target: Target, file: string, json: boolean): Promise<void> {
  progress("reading the routes document in KV");
  const current = await kvGet(target, ROUTES_KEY);
  progressDone();
  if (current === undefined) throw new CliError("KV holds no routes document yet");
  await writeFile(file, current.endsWith("\n") ? current : `${current}\n`);
  await writeFile(`${file}.base`, `${stableHash(canonical(current))}\n`);
  if (json) out(JSON.stringify({ file, base: stableHash(canonical(current)) }));
  else out(`wrote ${file} (edit it, then \`switchyard push ${file}\`)`);
}

async function pools(target: Target, json: boolean): Promise<void> {
  progress("listing pools in KV");
  const keys = await kvList(target, POOL_KEY_PREFIX);
  const rows = [];
  for (const [i, key] of keys.entries()) {
    progress(`reading ${key.name} (${i + 1}/${keys.length})`);
    const text = await kvGet(target, key.name);
    const parsed = text === undefined ? undefined : parsePoolText(text);
    const owner = key.metadata as { owner?: string; cluster?: string } | undefined;
    if (!parsed?.ok) {
      rows.push({
        pool: poolNameOfKey(key.name) ?? key.name,
        error: parsed ? parsed.problems[0]?.message : "gone",
      });
      continue;
    }
    const doc = parsed.value;
    const states = {
      ready: doc.endpoints.filter((e) => e.state === "ready").length,
      draining: doc.endpoints.filter((e) => e.state === "draining").length,
    };
    const ageSeconds = doc.updatedAt
      ? Math.round((Date.now() - Date.parse(doc.updatedAt)) / 1000)
      : null;
    rows.push({
      pool: poolNameOfKey(key.name) ?? key.name,
      endpoints: doc.endpoints.length,
      ...states,
      generation: doc.generation ?? null,
      ageSeconds,
      owner: owner?.owner ? `${owner.owner}/${owner.cluster}` : "hand-kept",
    });
  }
  progressDone();
  if (json) return out(JSON.stringify(rows));
  if (rows.length === 0) return out("no pools in KV");
  for (const row of rows) {
    if ("error" in row) out(`${row.pool}  invalid: ${row.error}`);
    else
      out(
        `${row.pool}  ${row.endpoints} endpoints (${row.ready} ready, ${row.draining} draining)  generation ${row.generation ?? "-"}  ${row.ageSeconds === null ? "" : `updated ${row.ageSeconds}s ago  `}${row.owner}`,
      );
  }
}

async function explainCommand(values: Record<string, unknown>, json: boolean): Promise<void> {
  const host = values.host as string | undefined;
  const path = (values.path as string | undefined) ?? "/";
  if (!host) throw new CliError("--host is required", 2);
  let document: Awaited<ReturnType<typeof validated>>["document"];
  if (values.file) document = (await validated(values.file as string, json)).document;
  else {
    progress("reading the routes document in KV");
    const text = await kvGet(targetOf(values), ROUTES_KEY);
    progressDone();
    if (text === undefined) throw new CliError("KV holds no routes document yet");
    const read = readRoutes(text);
    if (!read.parsed?.ok)
      throw new CliError(
        "the routes document in KV is invalid; `switchyard pull` it and `validate` it",
      );
    document = read.parsed.value;
  }
  const headers = Object.fromEntries(
    ((values.header as string[] | undefined) ?? []).map((h) => {
      const parsed = parseHeaderArgument(h);
      if (!parsed) throw new CliError(`--header must be name:value, got ${JSON.stringify(h)}`, 2);
      return parsed;
    }),
  );
  const [pathname, search] = path.split("?");
  const result = explain(
    document,
    requestView({
      host,
      path: pathname as string,
      method: (values.method as string | undefined) ?? "GET",
      headers,
      query: Object.fromEntries(new URLSearchParams(search ?? "")),
    }),
  );
  if (json) return out(JSON.stringify(result));
  const r = result.request;
  out(`${r.method} ${r.host}${r.path}`);
  if (!result.chosen) out("  → no route matches: 404");
  else {
    const refs = result.chosen.backendRefs
      .map((b) => `${b.pool} (weight ${b.weight}${b.priority ? `, priority ${b.priority}` : ""})`)
      .join(", ");
    out(
      `  → route ${result.chosen.route}, rule ${result.chosen.rule}, match ${result.chosen.match}: ${refs || "no backendRefs"}`,
    );
    for (const line of result.chosen.filters) out(`    filter ${line}`);
    for (const ref of result.chosen.backendRefs)
      for (const line of ref.filters) out(`    filter of ${ref.pool}, when picked: ${line}`);
  }
  for (const c of result.considered)
    if (c.verdict !== "chosen")
      out(`  ${c.route}/${c.rule} match ${c.match}: ${c.verdict}: ${c.reason}`);
}

async function status(values: Record<string, unknown>, json: boolean): Promise<void> {
  const url = values.url as string | undefined;
  const token = (values.token as string | undefined) ?? process.env.ADMIN_TOKEN;
  if (!url)
    throw new CliError(
      "--url is required: the worker's admin API, e.g. http://127.0.0.1:8787/__switchyard",
      2,
    );
  if (!token) throw new CliError("the admin token is needed: --token or ADMIN_TOKEN", 2);
  const response = await fetch(`${url.replace(/\/$/, "")}/status`, {
    headers: { authorization: `Bearer ${token}` },
  }).catch((error: Error) => {
    throw new CliError(`cannot reach ${url}: ${error.message}`);
  });
  if (response.status === 401) throw new CliError("the admin API refused the token (401)");
  if (!response.ok) throw new CliError(`the admin API answered ${response.status}`);
  const body = (await response.json()) as StatusBody;
  if (json) return out(JSON.stringify(body));
  for (const line of statusLines(body)) out(line);
}

async function stats(values: Record<string, unknown>, json: boolean): Promise<void> {
  const since = (values.since as string | undefined) ?? "15m";
  const sinceMs = parseDuration(since);
  if (sinceMs === undefined || sinceMs < 1000 || sinceMs > STATS_MAX_SECONDS * 1000)
    throw new CliError(
      `--since must be a duration from 1s to 90 days (e.g. 15m, 6h), got ${since}`,
      2,
    );
  const sinceSeconds = Math.floor(sinceMs / 1000);
  const route = values.route as string | undefined;
  const accountId = process.env.CLOUDFLARE_ACCOUNT_ID;
  const token = process.env.CLOUDFLARE_API_TOKEN;
  if (!accountId || !token)
    throw new CliError(
      "stats needs CLOUDFLARE_ACCOUNT_ID and CLOUDFLARE_API_TOKEN (a token with Account Analytics: Read)",
      2,
    );
  let sql: string;
  try {
    const dataset =
      (values.dataset as string | undefined) ?? (await datasetOf(values.env as string | undefined));
    sql = statsSql({ dataset, sinceSeconds, ...(route === undefined ? {} : { route }) });
  } catch (error) {
    throw new CliError((error as Error).message, 2);
  }
  const base = (
    process.env.CLOUDFLARE_API_BASE_URL ?? "https://api.cloudflare.com/client/v4"
  ).replace(/\/$/, "");
  const url = `${base}/accounts/${accountId}/analytics_engine/sql`;
  const response = await fetch(url, {
    method: "POST",
    headers: { authorization: `Bearer ${token}` },
    body: sql,
  }).catch((error: Error) => {
    throw new CliError(`cannot reach the Analytics Engine SQL API at ${url}: ${error.message}`);
  });
  const text = await response.text();
  if (!response.ok)
    throw new CliError(
      `the Analytics Engine SQL API answered ${response.status}: ${text.trim().slice(0, 500)}`,
    );
  const rows = statsRows(JSON.parse(text), sinceSeconds);
  if (json) return out(JSON.stringify({ sinceSeconds, rows }));
  for (const line of formatStats(rows)) out(line);
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  if (!command || command === "--help" || command === "help") return out(USAGE);
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: {
      json: { type: "boolean" },
      local: { type: "boolean" },
      env: { type: "string" },
      force: { type: "boolean" },
      out: { type: "string" },
      file: { type: "string" },
      host: { type: "string" },
      path: { type: "string" },
      method: { type: "string" },
      header: { type: "string", multiple: true },
      url: { type: "string" },
      token: { type: "string" },
      since: { type: "string" },
      route: { type: "string" },
      dataset: { type: "string" },
    },
  });
  const json = Boolean(values.json);
  switch (command) {
    case "validate":
      return validate(positionals[0] as string, json);
    case "push":
      return push(positionals[0] as string, targetOf(values), Boolean(values.force), json);
    case "pull":
      return pull(targetOf(values), (values.out as string | undefined) ?? "routes.json", json);
    case "pools":
      return pools(targetOf(values), json);
    case "explain":
      return explainCommand(values, json);
    case "status":
      return status(values, json);
    case "stats":
      return stats(values, json);
    default:
      throw new CliError(`unknown command ${JSON.stringify(command)}\n\n${USAGE}`, 2);
  }
}

main(process.argv.slice(2)).catch((error: Error) => {
  progressDone();
  process.stderr.write(`switchyard: ${error.message}\n`);
  process.exit(
    error instanceof CliError ? error.code : error.name === "TypeError" && "code" in error ? 2 : 1,
  );
});
