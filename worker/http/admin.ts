import { Hono } from "hono";
import type { ConfigStore } from "../config/store.ts";
import { CompiledRouteTable } from "../core/compiled-table.ts";
import { explain } from "../core/explain.ts";
import { type HealthRegistry, healthKey } from "../core/health.ts";
import { parseHeaderArgument, type RequestView, requestView } from "../core/request.ts";
import type { RetryBudgets } from "../core/retry-policy.ts";
import { RouteTable } from "../core/route-table.ts";
import type { TrafficCounters } from "../core/traffic.ts";
import type { BufferBudget } from "../proxy/body.ts";
import { dashboard, dashboardParts } from "./dashboard.tsx";

/**
 * The admin API under ADMIN_PATH (README, "Admin API and dashboard"), behind `Authorization: Bearer ADMIN_TOKEN`,
 * compared in constant time; off when no token is set. What this isolate sees: the snapshot,
 * the last load error, pools with their endpoints' passive health, the retry budget of each pool, and an
 * explanation of where a request would go.
 */

export interface AdminDeps {
  store: ConfigStore;
  health: HealthRegistry;
  budgets: RetryBudgets;
  /** The isolate's budget of buffered request bodies. */
  buffers?: BufferBudget;
  traffic: TrafficCounters;
  now: () => number;
}

const encoder = new TextEncoder();

/** Constant-time comparison of two secrets (hashed first, so their lengths do not leak). */
async function sameSecret(given: string, expected: string): Promise<boolean> {
  const [a, b] = await Promise.all(
    [given, expected].map((s) => crypto.subtle.digest("SHA-256", encoder.encode(s))),
  );
  return crypto.subtle.timingSafeEqual(a as ArrayBuffer, b as ArrayBuffer);
}

export async function status(deps: AdminDeps) {
  const { store, now } = deps;
  const snapshot = store.snapshot;
  const whole = await store.wholeRoutes();
  const at = now();
  return {
    generation: snapshot?.generation ?? null,
    loadedAt: snapshot ? new Date(store.loadedAt).toISOString() : null,
    ageSeconds: snapshot ? Math.round((at - store.loadedAt) / 1000) : null,
    checkedAt: snapshot ? new Date(store.checkedAt).toISOString() : null,
    lastError: store.lastError
      ? { message: store.lastError.message, at: new Date(store.lastError.at).toISOString() }
      : null,
    warnings:
      typeof whole === "string"
        ? [...(snapshot?.warnings ?? []), whole]
        : (snapshot?.warnings ?? []),
    routes: whole instanceof RouteTable ? whole.summaries() : [],
    /** The compiled layout served from (docs/kv-schema.md), or null for a document read whole. */
    layout:
      snapshot?.routes instanceof CompiledRouteTable
        ? {
            id: snapshot.routes.id,
            shards: snapshot.routes.shards,
            shardsRead: snapshot.routes.shardsLoaded,
          }
        : null,
    retryBudgets: deps.budgets.status(at),
    bufferedBodyBytes: deps.buffers?.inUse ?? 0,
  };
}

export function pools(deps: AdminDeps) {
  const snapshot = deps.store.snapshot;
  if (!snapshot) return [];
  const at = deps.now();
  return [...snapshot.specs.values()].map((spec) => {
    const members = deps.health.poolHealth(spec, at);
    return {
      name: spec.name,
      source: spec.source,
      generation: spec.generation ?? null,
      updatedAt: spec.updatedAt ?? null,
      transportBinding: spec.transportBinding ?? null,
      panic: members.panic,
      endpoints: spec.endpoints.map((e) => {
        const health = deps.health.view(healthKey(spec.name, e.id), at);
        return {
          id: e.id,
          url: e.origin,
          weight: e.weight,
          state: e.state,
          zone: e.zone ?? null,
          health: members.down.has(e.id) ? "down" : "up",
          requestsInWindow: health.requests,
          failuresInWindow: health.failures,
          timesEjected: health.timesEjected,
          ejectedUntil:
            health.ejectedUntil === undefined ? null : new Date(health.ejectedUntil).toISOString(),
        };
      }),
    };
  });
}

/**
 * This isolate's traffic of the last five minutes: per endpoint the series the dashboard charts,
 * per rule the configured split next to the observed one, the latest ejections with their
 * reasons, and the snapshots this isolate loaded.
 */
export function traffic(deps: AdminDeps) {
  const at = deps.now();
  const summary = deps.traffic.summary(at);
  const snapshot = deps.store.snapshot;
  const iso = (ms: number) => new Date(ms).toISOString();
  return {
    scope: "this isolate",
    bucketSeconds: summary.bucketSeconds,
    newestBucketAt: iso(summary.newestBucketAt),
    truncated: summary.truncated,
    unrouted: summary.unrouted,
    endpoints: summary.endpoints.map((e) => ({
      ...e,
      url: snapshot?.specs.get(e.pool)?.endpoints.find((x) => x.id === e.endpoint)?.origin ?? null,
    })),
    rules: summary.rules.map((r) => {
      // Only routes that served are looked up; the table keeps those parsed.
      const route = snapshot?.routes.routeNamed(r.route);
      const rule = route?.rules.find((x, i) => String(x.name ?? i) === r.rule);
      return {
        route: r.route,
        rule: r.rule,
        configured: (rule?.backendRefs ?? []).map((ref) => ({
          pool: ref.pool,
          weight: ref.weight,
          priority: ref.priority ?? 0,
        })),
        observed: r.observed,
      };
    }),
    ejections: deps.health
      .recentEjections()
      .map((e) => ({ ...e, at: iso(e.at), until: iso(e.until) })),
    generations: deps.store.history.map((g) => ({ ...g, loadedAt: iso(g.loadedAt) })),
  };
}

/** The request an `explain` query describes: host, path, method, header=k:v, query=k=v. */
function explainedRequest(query: URLSearchParams): RequestView | string {
  const host = query.get("host");
  const path = query.get("path") ?? "/";
  if (!host) return "host is required, e.g. ?host=shop.example.com&path=/api";
  if (!path.startsWith("/")) return 'path must start with "/"';
  const headers: Record<string, string> = {};
  for (const header of query.getAll("header")) {
    const parsed = parseHeaderArgument(header);
    if (!parsed) return `header must be name:value, got ${JSON.stringify(header)}`;
    headers[parsed[0]] = parsed[1];
  }
  const method = query.get("method") ?? "GET";
  const params = Object.fromEntries(new URLSearchParams(query.getAll("query").join("&")));
  return requestView({ host, path, method, headers, query: params });
}

/** A token shorter than this is refused: the admin API stays off. */
export const ADMIN_TOKEN_MIN_LENGTH = 32;
/**
 * Failed attempts one client address makes in a window before its further attempts are refused
 * until the window ends. A valid token is always accepted: with a token of 32 characters or
 * more, guessing is hopeless anyway, and a lockout shared by every client would let any web page
 * lock the operator out from its visitors' browsers.
 */
export const FAILED_ATTEMPTS_MAX = 10;
export const FAILED_ATTEMPTS_WINDOW_MS = 60_000;
/** Client addresses whose failures are remembered at once; the oldest are forgotten first. */
const FAILED_CLIENTS_MAX = 10_000;

async function sha256Base64(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", encoder.encode(text));
  return btoa(String.fromCharCode(...new Uint8Array(digest)));
}

/**
 * Headers of every admin answer: nothing framed, sniffed or cached; the dashboard's one inline
 * script and style allowed by their hashes, and it may only talk to its own origin.
 */
async function securityHeaders(basePath: string): Promise<Record<string, string>> {
  const { style, script } = dashboardParts(basePath);
  const [styleHash, scriptHash] = await Promise.all([sha256Base64(style), sha256Base64(script)]);
  return {
    "content-security-policy": [
      "default-src 'none'",
      `script-src 'sha256-${scriptHash}'`,
      `style-src 'sha256-${styleHash}'`,
      "connect-src 'self'",
      "frame-ancestors 'none'",
      "base-uri 'none'",
      "form-action 'none'",
    ].join("; "),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
  };
}

export function adminApp(basePath: string, token: string, deps: AdminDeps) {
  const app = new Hono({ strict: false }).basePath(basePath);
  const headers = securityHeaders(basePath);
  /** Recent failed attempts by client address (CF-Connecting-IP), oldest address first. */
  const failures = new Map<string, number[]>();
  app.use("*", async (c, next) => {
    await next();
    for (const [name, value] of Object.entries(await headers)) c.res.headers.set(name, value);
  });
  app.use("*", async (c, next) => {
    if (token.length < ADMIN_TOKEN_MIN_LENGTH) {
      return c.json(
        {
          error: "admin_disabled",
          message: `ADMIN_TOKEN must be at least ${ADMIN_TOKEN_MIN_LENGTH} characters; the admin API is off until it is`,
        },
        503,
      );
    }
    await next();
  });
  // The dashboard page carries no data: it asks for the token and reads the API with it.
  app.get("/", (c) => c.html(dashboard(basePath)));
  app.use("*", async (c, next) => {
    const header = c.req.header("authorization") ?? "";
    const given = header.startsWith("Bearer ") ? header.slice(7) : "";
    if (await sameSecret(given, token)) return next();
    const at = deps.now();
    const client = c.req.header("cf-connecting-ip") ?? "unknown";
    const recent = (failures.get(client) ?? []).filter((t) => at - t < FAILED_ATTEMPTS_WINDOW_MS);
    if (recent.length >= FAILED_ATTEMPTS_MAX) {
      const retryAfter = Math.ceil(((recent[0] as number) + FAILED_ATTEMPTS_WINDOW_MS - at) / 1000);
      return c.json(
        { error: "too_many_attempts", message: "too many failed attempts; try again later" },
        429,
        { "retry-after": String(Math.max(1, retryAfter)) },
      );
    }
    // A CORS preflight carries no credentials by design: it is no attempt.
    const preflight =
      c.req.method === "OPTIONS" && c.req.header("access-control-request-method") !== undefined;
    if (!preflight) {
      failures.delete(client);
      failures.set(client, [...recent, at]);
      if (failures.size > FAILED_CLIENTS_MAX)
        failures.delete(failures.keys().next().value as string);
    }
    return c.json(
      { error: "unauthorized", message: "the admin API needs Authorization: Bearer <ADMIN_TOKEN>" },
      401,
      { "www-authenticate": 'Bearer realm="switchyard"' },
    );
  });
  app.get("/status", async (c) => c.json(await status(deps)));
  app.get("/pools", (c) => c.json(pools(deps)));
  app.get("/traffic", (c) => c.json(traffic(deps)));
  app.get("/explain", async (c) => {
    const request = explainedRequest(new URL(c.req.url).searchParams);
    if (typeof request === "string") return c.json({ error: "bad_request", message: request }, 400);
    const whole = await deps.store.wholeRoutes();
    if (whole === undefined)
      return c.json({ error: "no_config", message: "no routes loaded yet" }, 503);
    if (typeof whole === "string") return c.json({ error: "no_config", message: whole }, 503);
    return c.json(explain(whole.document(), request));
  });
  app.post("/reload", async (c) => {
    await deps.store.refresh();
    return c.json(await status(deps));
  });
  app.all("*", (c) =>
    c.json({ error: "not_found", message: `no admin endpoint ${c.req.path}` }, 404),
  );
  return app;
}
