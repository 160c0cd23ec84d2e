import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { kvGet, kvList, kvPut } from "../../cli/kv.ts";
import { statusLines } from "../../cli/status.ts";
import {
  compiledHeadKey,
  compiledIdOfKey,
  compiledMetadataOf,
  ROUTES_KEY,
} from "../../contract/index.ts";

/** The switchyard CLI, run as a user runs it, against local (Miniflare) KV in a temporary state directory. */

const CLI = fileURLToPath(new URL("../../cli/switchyard.ts", import.meta.url));
const ROOT = fileURLToPath(new URL("../..", import.meta.url));
let dir: string;

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return cliIn(args, "state");
}

/** The CLI with its local KV in `state` under the test's directory. */
function cliIn(
  args: string[],
  state: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, ...args],
      {
        cwd: ROOT,
        env: { ...process.env, SWITCHYARD_STATE_DIR: join(dir, state) },
        timeout: 60_000,
      },
      (error, stdout, stderr) => {
        resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
      },
    );
  });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "switchyard-cli-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("switchyard validate", () => {
  it("prints every error with its JSON path and line, and exits 2", async () => {
    const file = join(dir, "bad.yaml");
    await writeFile(
      file,
      [
        "version: 1",
        "routes:",
        "  - name: shop",
        "    rules:",
        "      - matches:",
        "          - path: { type: PathPrefix, value: api }",
        "        backendRefs:",
        "          - pool: web",
        "            weight: -1",
        '      - backendRefs: [{ pool: "" }]',
        "",
      ].join("\n"),
    );
    const result = await cli(["validate", file]);
    expect(result.code).toBe(2);
    expect(result.stderr.split("\n").slice(0, 3)).toEqual([
      `${file}:6: routes[0].rules[0].matches[0].path.value: must start with "/"`,
      `${file}:9: routes[0].rules[0].backendRefs[0].weight: must be 0 or more`,
      `${file}:10: routes[0].rules[1].backendRefs[0].pool: must name a pool`,
    ]);
    const json = await cli(["validate", file, "--json"]);
    expect(JSON.parse(json.stdout).problems[0]).toEqual({
      path: "routes[0].rules[0].matches[0].path.value",
      message: 'must start with "/"',
      line: 6,
    });
  });

  it("accepts the demo document and says what it holds", async () => {
    const result = await cli(["validate", "demo/routes.json"]);
    expect(result.code).toBe(0);
    // The demo's endpoints are loopback addresses: fine under npm start, not in production.
    expect(result.stdout.split("\n")).toEqual([
      "demo/routes.json: valid (2 routes, 3 rules)",
      "warning: pool api: endpoint http://127.0.0.6:9200 is an IP address; Workers cannot fetch IP addresses without transport.binding (docs/deploy.md §3)",
      "warning: pool everyone: endpoint http://127.0.0.2:9200 is an IP address; Workers cannot fetch IP addresses without transport.binding (docs/deploy.md §3)",
      "",
    ]);
  });

  it("compiles what the worker compiles: prototype names are missing pools, RE2 refuses lookaround", async () => {
    const file = join(dir, "proto.json");
    await writeFile(
      file,
      JSON.stringify({
        version: 1,
        routes: [{ name: "r", rules: [{ backendRefs: [{ pool: "constructor" }, { pool: "p" }] }] }],
        pools: { p: { endpoints: [] } },
      }),
    );
    const result = await cli(["validate", file, "--json"]);
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout).warnings).toEqual([
      "pool constructor: no inline pool and no KV key pool:constructor; its share answers 500",
      "pool p: no endpoints; it answers 503",
    ]);
    const text = await cli(["validate", file]);
    expect(text.stdout).toContain("warning: pool p: no endpoints; it answers 503");
    const lookaround = join(dir, "lookaround.yaml");
    await writeFile(
      lookaround,
      "version: 1\nroutes:\n  - name: r\n    rules:\n      - matches: [{ path: { type: RegularExpression, value: '/(?!admin).*' } }]\n        backendRefs: [{ pool: p }]\n",
    );
    const refused = await cli(["validate", lookaround]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain("is not a valid RE2 regular expression");
  });

  it("says where a file is not JSON", async () => {
    const file = join(dir, "broken.json");
    await writeFile(file, '{\n  "version": 1,\n  "routes": [\n}\n');
    const result = await cli(["validate", file]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(
      new RegExp(
        `^${file.replace(/[.]/g, "\\.")}:4: \\(document\\): is not valid JSON \\(line 4, column 1\\)`,
      ),
    );
  });

  it.each([
    [
      "a trailing comma",
      '{\n  "version": 1,\n  "routes": [\n    {"name": "r"},\n  ]\n}\n',
      5,
      3,
      "a value was expected (a trailing comma?)",
    ],
    ["a missing comma", '{\n  "version": 1\n  "routes": []\n}\n', 3, 3, "a comma was expected"],
    [
      "an unclosed string",
      '{\n  "version": 1,\n  "routes": [{"name": "r}]\n}\n',
      3,
      23,
      "a string that is not closed",
    ],
    [
      "a stray character",
      '{\n  "version": 1,\n  "routes": [] x\n}\n',
      3,
      16,
      "unexpected character",
    ],
    [
      "text after the document",
      '{"version": 1, "routes": []}\n}\n',
      2,
      1,
      "nothing may follow the document",
    ],
  ])(
    "says where %s makes a .json file invalid, by line and column",
    async (_, text, line, column, what) => {
      const file = join(dir, "syntax.json");
      await writeFile(file, text);
      const result = await cli(["validate", file]);
      expect(result.code).toBe(2);
      expect(result.stderr).toContain(
        `${file}:${line}: (document): is not valid JSON (line ${line}, column ${column}): ${what}`,
      );
    },
  );

  it("reads a .json file as strict JSON, as the worker will: a trailing comma is an error where it stands", async () => {
    const file = join(dir, "trailing.json");
    await writeFile(file, '{\n  "version": 1,\n  "routes": [],\n}\n');
    const result = await cli(["validate", file]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`${file}:4: (document): is not valid JSON (line 4, column 1)`);
    // The same text as YAML (a superset of JSON) is read as YAML.
    const yamlFile = join(dir, "trailing.yaml");
    await writeFile(yamlFile, '{\n  "version": 1,\n  "routes": [],\n}\n');
    expect((await cli(["validate", yamlFile])).code).toBe(0);
  });
});

describe("switchyard explain", () => {
  it("explains a request against a file, offline", async () => {
    const result = await cli([
      "explain",
      "--file",
      "demo/routes.json",
      "--host",
      "shop.localhost",
      "--path",
      "/api/items",
    ]);
    expect(result.code).toBe(0);
    expect(result.stdout.split("\n").slice(0, 4)).toEqual([
      "GET shop.localhost/api/items",
      "  → route shop, rule api, match 0: api (weight 1)",
      "    filter ResponseHeaderModifier: set Cache-Control: no-store",
      "  shop/web match 0: matches, lower precedence: loses on path length",
    ]);
  });
});

describe("switchyard explain with filters", () => {
  it("lists the filters a request would get, the rule's and each backendRef's", async () => {
    const file = join(dir, "filters.yaml");
    await writeFile(
      file,
      [
        "version: 1",
        "routes:",
        "- name: shop",
        "  hostnames: [shop.example.com]",
        "  rules:",
        "  - matches: [{ path: { type: PathPrefix, value: /old } }]",
        "    filters:",
        "    - type: RequestRedirect",
        "      requestRedirect: { path: { type: ReplacePrefixMatch, replacePrefixMatch: /new }, statusCode: 301 }",
        "  - matches: [{ path: { type: PathPrefix, value: /api } }]",
        "    filters:",
        "    - type: URLRewrite",
        "      urlRewrite: { path: { type: ReplacePrefixMatch, replacePrefixMatch: / } }",
        "    backendRefs:",
        "    - pool: api",
        "      filters:",
        "      - type: RequestHeaderModifier",
        "        requestHeaderModifier: { set: [{ name: X-Pool, value: api }] }",
        "pools:",
        "  api: { endpoints: [{ url: 'https://api.example.com' }] }",
      ].join("\n"),
    );
    const redirect = await cli([
      "explain",
      "--file",
      file,
      "--host",
      "shop.example.com",
      "--path",
      "/old/page",
    ]);
    expect(redirect.code, redirect.stderr).toBe(0);
    expect(redirect.stdout.split("\n").slice(0, 3)).toEqual([
      "GET shop.example.com/old/page",
      "  → route shop, rule 0, match 0: no backendRefs",
      "    filter RequestRedirect: 301 to https://shop.example.com/new/page",
    ]);
    const api = await cli([
      "explain",
      "--file",
      file,
      "--host",
      "shop.example.com",
      "--path",
      "/api/items",
      "--json",
    ]);
    expect(JSON.parse(api.stdout).chosen).toMatchObject({
      filters: ["URLRewrite: path /api/items → /items"],
      backendRefs: [{ pool: "api", filters: ["RequestHeaderModifier: set X-Pool: api"] }],
    });
  });
});

describe("switchyard push and pull against local KV", () => {
  it("writes a valid document, refuses to overwrite changes made since it was pulled, and never writes an invalid one", async () => {
    const file = join(dir, "routes.json");
    const doc = JSON.parse(await readFile(join(ROOT, "demo/routes.json"), "utf8"));
    await writeFile(file, JSON.stringify(doc));
    const first = await cli(["push", file, "--local"]);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toContain("+++ ");
    expect(first.stdout).toContain("pushed");
    const again = await cli(["push", file, "--local"]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain("nothing to push");

    const pulled = join(dir, "pulled.json");
    expect((await cli(["pull", "--local", "--out", pulled])).code).toBe(0);
    const edited = JSON.parse(await readFile(pulled, "utf8"));
    edited.routes[0].hostnames.push("www.shop.localhost");
    await writeFile(pulled, JSON.stringify(edited));

    // Someone else pushes in between: the pulled copy is now stale.
    doc.routes[1].hostnames = ["*.health.localhost"];
    await writeFile(file, JSON.stringify(doc));
    expect((await cli(["push", file, "--local", "--force"])).code).toBe(0);
    const stale = await cli(["push", pulled, "--local"]);
    expect(stale.code).toBe(1);
    expect(stale.stderr).toContain("changed since");

    edited.routes[0].rules = [];
    await writeFile(pulled, JSON.stringify(edited));
    const invalid = await cli(["push", pulled, "--local", "--force"]);
    expect(invalid.code).toBe(2);
    expect(invalid.stderr).toContain("routes[0].rules: must have at least one rule");
    const kept = join(dir, "kept.json");
    await cli(["pull", "--local", "--out", kept]);
    expect(JSON.parse(await readFile(kept, "utf8")).routes[1].hostnames).toEqual([
      "*.health.localhost",
    ]);
  }, 120_000);
});

describe("switchyard push writes the compiled layout", () => {
  it("writes the layout with the document, keeps the one it replaced, and deletes older ones", async () => {
    process.env.SWITCHYARD_STATE_DIR = join(dir, "layout-state");
    const target = { local: true, env: undefined };
    const file = join(dir, "layout.json");
    const doc = JSON.parse(await readFile(join(ROOT, "demo/routes.json"), "utf8"));
    const ids: string[] = [];
    for (const n of [1, 2, 3]) {
      doc.routes[0].hostnames = [`v${n}.shop.localhost`];
      // The third is larger than one command-line argument may be (128 KiB), and has shards.
      if (n === 3)
        for (let i = 0; i < 1_500; i++)
          doc.routes.push({
            name: `bulk-${i}`,
            hostnames: [`bulk-${i}.localhost`],
            rules: [{ backendRefs: [{ pool: doc.routes[0].rules[0].backendRefs[0].pool }] }],
          });
      await writeFile(file, JSON.stringify(doc));
      const pushed = await cliIn(["push", file, "--local", "--force"], "layout-state");
      expect(pushed.code, pushed.stderr).toBe(0);
      const keys = await kvList(target, ROUTES_KEY);
      const layout = compiledMetadataOf(keys.find((k) => k.name === ROUTES_KEY)?.metadata);
      if (!layout) throw new Error("the routes key names no layout");
      ids.push(layout.compiled);
      const head = JSON.parse((await kvGet(target, compiledHeadKey(layout.compiled))) ?? "null");
      expect(head).toMatchObject({ version: 1, id: layout.compiled, routes: doc.routes.length });
      expect(head.shards).toBe(layout.shards);
      if (n === 3) expect(layout.shards).toBeGreaterThan(1);
    }
    const keys = await kvList(target, "routes@");
    const present = new Set(keys.map((k) => compiledIdOfKey(k.name)));
    expect([...present].sort()).toEqual([ids[1], ids[2]].sort());

    // The same document again: nothing written; written by wrangler (no layout), it gets one.
    expect((await cliIn(["push", file, "--local"], "layout-state")).stdout).toContain(
      "nothing to push",
    );
    await kvPut(target, ROUTES_KEY, JSON.stringify(doc));
    const again = await cliIn(["push", file, "--local"], "layout-state");
    expect(again.stdout).toContain("wrote its compiled layout");
    const listed = await kvList(target, ROUTES_KEY);
    expect(compiledMetadataOf(listed.find((k) => k.name === ROUTES_KEY)?.metadata)).toBeDefined();
  }, 120_000);
});

describe("switchyard status", () => {
  it("names the compiled layout and the shards this isolate read, or nothing for a document read whole", () => {
    const body = {
      generation: "0123456789abcd",
      ageSeconds: 4,
      lastError: null,
      routes: [{ name: "a" }, { name: "b" }],
      warnings: ["pool p: no endpoints; it answers 503"],
    };
    expect(statusLines({ ...body, layout: { id: "Xy_z", shards: 452, shardsRead: 3 } })).toEqual([
      "snapshot 0123456789abcd, loaded 4s ago, 2 routes, compiled layout Xy_z (3 of 452 shards read in this isolate)",
      "no load error",
      "warning: pool p: no endpoints; it answers 503",
    ]);
    expect(statusLines({ ...body, layout: null })[0]).toBe(
      "snapshot 0123456789abcd, loaded 4s ago, 2 routes",
    );
    expect(
      statusLines({
        ...body,
        generation: null,
        lastError: { message: "the routes document is missing" },
      }),
    ).toEqual([
      "no routes loaded",
      "last load error: the routes document is missing",
      "warning: pool p: no endpoints; it answers 503",
    ]);
  });
});
