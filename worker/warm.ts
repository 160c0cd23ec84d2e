import { compileRoutes, layoutEntries } from "../contract/compiled.ts";
import { parseRoutesDocument } from "../contract/parse.ts";
import type { RoutesDocumentInput } from "../contract/routes.ts";
import { createApp } from "./app.ts";
import { memoryKv } from "./config/memory-kv.ts";
import { ConfigStore, type KvReader } from "./config/store.ts";
import type { Env } from "./env.ts";
import { consoleLogger, type Logger } from "./log.ts";

/**
 * The request path, run while the isolate starts, so that V8 compiles its functions then and
 * not during the first request. V8 compiles a function when it is first called: a cold
 * isolate's first request spent most of its CPU compiling what it ran (4.5 of 5.4 ms with one
 * route), and the Workers Free plan gives a request 10 ms. The global scope runs before the
 * first request, under a limit of its own (1 s), often while the client's TLS handshake is still
 * going on.
 *
 * The warm-up is a throwaway app over an in-memory KV of its own: a routes document read whole,
 * then the same document as `switchyard push` writes it (the compiled layout), served a plain
 * request, a request of a sticky rule and that request again with the cookie it was given, each
 * through a fetch binding of its own. Nothing of it is shared with the app that serves traffic
 * but the compiled code: no KV read, no subrequest, no log line, no counter. The global scope
 * allows no I/O, timer or random numbers, and no Response with a body: the requests carry
 * their id, the app gets a fixed clock, the binding answers without a body.
 */

/** The binding the warm-up's pool fetches through, in the warm-up's own environment. */
const BINDING = "SWITCHYARD_WARM_UP";
const HOST = "warm-up.switchyard.invalid";
/** Signs the warm-up's own cookies only: never a client's. */
const SECRET = "switchyard-warm-up-only-never-a-client-cookie";

const DOCUMENT: RoutesDocumentInput = {
  version: 1,
  routes: [
    {
      name: "warm-up",
      hostnames: [HOST],
      rules: [
        {
          name: "sticky",
          matches: [{ path: { type: "PathPrefix", value: "/sticky" } }],
          backendRefs: [{ pool: "warm-up" }],
          sessionPersistence: { idleTimeout: "30m" },
        },
        { name: "plain", backendRefs: [{ pool: "warm-up" }] },
      ],
    },
  ],
  pools: {
    "warm-up": { endpoints: [{ url: `http://${HOST}` }], transport: { binding: BINDING } },
  },
};

const SILENT: Logger = { info() {}, warn() {}, error() {} };

/** The warm-up's KV: `texts` in memory, the `routes` key with `routesMetadata`. */
function warmUpKv(texts: ReadonlyMap<string, string>, routesMetadata: unknown): KvReader {
  return memoryKv(
    (key) => texts.get(key) ?? null,
    (key) => (key === "routes" ? routesMetadata : null),
  );
}

/**
 * The requests of `paths`, in order, through an app reading `kv`; a sticky answer's cookie goes
 * with the next request. What went wrong, or undefined.
 */
async function serve(kv: KvReader, paths: readonly string[]): Promise<string | undefined> {
  const store = new ConfigStore({
    kv,
    refreshMs: 3_600_000,
    now: () => 0,
    log: SILENT,
    local: false,
  });
  const app = createApp({ store: () => store, now: () => 0, random: () => 0, log: SILENT });
  const env = {
    SWITCHYARD: kv,
    ALLOWED_BINDINGS: BINDING,
    STICKY_SECRET: SECRET,
    [BINDING]: { fetch: async () => new Response(null, { status: 200 }) },
  } as unknown as Env;
  const ctx = { waitUntil() {}, passThroughOnException() {} } as unknown as ExecutionContext;
  let cookie: string | undefined;
  for (const path of paths) {
    const headers: Record<string, string> = { "x-request-id": "warm-up" };
    if (cookie !== undefined) headers.cookie = cookie;
    const response = await app.fetch(new Request(`https://${HOST}${path}`, { headers }), env, ctx);
    if (response.status !== 200) return `${path} was answered ${response.status}`;
    cookie = response.headers.get("set-cookie")?.split(";")[0] ?? cookie;
  }
  return undefined;
}

/**
 * Runs the warm-up. Resolves to undefined when every request was served, else to what went
 * wrong; never rejects, so that a failed warm-up costs the isolate nothing but its first
 * request's compiling.
 */
export async function warmUp(): Promise<string | undefined> {
  try {
    const parsed = parseRoutesDocument(DOCUMENT);
    if (!parsed.ok) return `its routes document is invalid: ${parsed.problems[0]?.message}`;
    const text = JSON.stringify(DOCUMENT);
    const layout = compileRoutes(parsed.value, "warm-up", 1);
    const compiled = new Map([
      ["routes", text],
      ...layoutEntries(layout).map((e) => [e.key, e.value] as const),
    ]);
    return (
      (await serve(warmUpKv(new Map([["routes", text]]), null), ["/"])) ??
      (await serve(warmUpKv(compiled, layout.metadata), ["/", "/sticky", "/sticky"]))
    );
  } catch (error) {
    return (error as Error).message;
  }
}

/**
 * Starts the warm-up from an isolate's global scope, as worker/index.ts does: nothing waits for
 * it, and a failure is logged (`warm-up failed`), never thrown.
 */
export function startWarmUp(log: Logger = consoleLogger): void {
  void warmUp().then((failure) => {
    if (failure !== undefined) log.error("warm-up failed", { error: failure });
  });
}
