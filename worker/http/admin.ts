import { Hono } from "hono";
import type { ConfigStore } from "../config/store.ts";
import { explain } from "../core/explain.ts";
import type { HealthRegistry } from "../core/health.ts";
import { parseHeaderArgument, type RequestView, requestView } from "../core/request.ts";
import type { RetryBudget } from "../core/retry-policy.ts";
import { dashboard } from "./dashboard.tsx";

/**
 * The admin API under ADMIN_PATH (README, "Admin API and dashboard"), behind `Authorization: Bearer ADMIN_TOKEN`,
 * compared in constant time; off when no token is set. What this isolate sees: the snapshot,
 * the last load error, pools with their endpoints' passive health, the retry budget, and an
 * explanation of where a request would go.
 */

export interface AdminDeps {
  store: ConfigStore;
  health: HealthRegistry;
  budget: RetryBudget;
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

export function status(deps: AdminDeps) {
  const { store, now } = deps;
  const snapshot = store.snapshot;
  const at = now();
  return {
    generation: snapshot?.generation ?? null,
    loadedAt: snapshot ? new Date(store.loadedAt).toISOString() : null,
    ageSeconds: snapshot ? Math.round((at - store.loadedAt) / 1000) : null,
    checkedAt: snapshot ? new Date(store.checkedAt).toISOString() : null,
    lastError: store.lastError
      ? { message: store.lastError.message, at: new Date(store.lastError.at).toISOString() }
      : null,
    warnings: snapshot?.warnings ?? [],
    routes:
      snapshot?.document.routes.map((r) => ({
        name: r.name,
        hostnames: r.hostnames,
        rules: r.rules.length,
      })) ?? [],
    retryBudget: deps.budget.status(at),
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
        const health = deps.health.view(e.id, at);
        return {
          id: e.id,
          url: e.origin,
          weight: e.weight,
          state: e.state,
          zone: e.zone ?? null,
          health: members.down.has(e.id) ? "down" : "up",
          consecutiveFailures: health.consecutiveFailures,
          timesEjected: health.timesEjected,
          ejectedUntil:
            health.ejectedUntil === undefined ? null : new Date(health.ejectedUntil).toISOString(),
        };
      }),
    };
  });
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

export function adminApp(basePath: string, token: string, deps: AdminDeps) {
  const app = new Hono({ strict: false }).basePath(basePath);
  // The dashboard page carries no data: it asks for the token and reads the API with it.
  app.get("/", (c) => c.html(dashboard(basePath)));
  app.use("*", async (c, next) => {
    const header = c.req.header("authorization") ?? "";
    const given = header.startsWith("Bearer ") ? header.slice(7) : "";
    if (!(await sameSecret(given, token))) {
      return c.json(
        {
          error: "unauthorized",
          message: `the admin API needs Authorization: Bearer <ADMIN_TOKEN>`,
        },
        401,
        {
          "www-authenticate": 'Bearer realm="switchyard"',
        },
      );
    }
    c.header("cache-control", "no-store");
    await next();
  });
  app.get("/status", (c) => c.json(status(deps)));
  app.get("/pools", (c) => c.json(pools(deps)));
  app.get("/explain", (c) => {
    const request = explainedRequest(new URL(c.req.url).searchParams);
    if (typeof request === "string") return c.json({ error: "bad_request", message: request }, 400);
    const snapshot = deps.store.snapshot;
    if (!snapshot) return c.json({ error: "no_config", message: "no routes loaded yet" }, 503);
    return c.json(explain(snapshot.document, request));
  });
  app.post("/reload", async (c) => {
    await deps.store.refresh();
    return c.json(status(deps));
  });
  app.all("*", (c) =>
    c.json({ error: "not_found", message: `no admin endpoint ${c.req.path}` }, 404),
  );
  return app;
}
