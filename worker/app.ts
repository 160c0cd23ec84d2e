import { Hono } from "hono";
import { consoleLogger, type Logger } from "./config/log.ts";
import { ConfigStore } from "./config/store.ts";
import { requestIdOf } from "./core/forward-headers.ts";
import { HealthRegistry } from "./core/health.ts";
import { type HealthLens, type PoolHealth, pick, stickyCandidate } from "./core/pick.ts";
import { normalizeHost, type RequestView } from "./core/request.ts";
import { RetryBudget } from "./core/retry-policy.ts";
import type { CompiledPool } from "./core/snapshot.ts";
import { type Env, SettingsError, settingsOf } from "./env.ts";
import { adminApp } from "./http/admin.ts";
import { type Failure, failureResponse } from "./http/errors.ts";
import { exchange, RETRY_SKIPPED_HEADER } from "./proxy/exchange.ts";
import { readSession, sessionCookie, stickyKeys } from "./proxy/session.ts";

/** What an isolate keeps between requests besides the snapshot. */
export interface IsolateState {
  health: HealthRegistry;
  budget: RetryBudget;
}

export interface AppOptions {
  /** The store for an environment; the default keeps one per isolate. */
  store?: (env: Env) => ConfigStore;
  state?: IsolateState;
  now?: () => number;
  random?: () => number;
  sleep?: (ms: number) => Promise<void>;
  log?: Logger;
}

/** What the matcher reads of a Request; query parameters are parsed only if a rule asks. */
export function viewOf(request: Request, url: URL): RequestView {
  let query: URLSearchParams | undefined;
  return {
    host: normalizeHost(request.headers.get("host") ?? url.host),
    path: url.pathname,
    method: request.method,
    header: (name) => request.headers.get(name),
    query: (name) => {
      query ??= new URLSearchParams(url.search);
      return query.get(name);
    },
  };
}

/** Passive health per pool for this request; nothing to look up while every endpoint is up. */
function healthLens(health: HealthRegistry, now: number): HealthLens {
  if (health.allHealthy) return () => undefined;
  const cache = new Map<CompiledPool, PoolHealth | undefined>();
  return (pool) => {
    if (cache.has(pool)) return cache.get(pool);
    const found = health.poolHealth(pool, now);
    const result = found.down.size > 0 ? found : undefined;
    cache.set(pool, result);
    return result;
  };
}

export function createApp(options: AppOptions = {}) {
  const now = options.now ?? Date.now;
  const log = options.log ?? consoleLogger;
  const state = options.state ?? { health: new HealthRegistry(), budget: new RetryBudget() };
  const random = options.random ?? Math.random;
  const sleep =
    options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  let isolateStore: ConfigStore | undefined;
  let warnedNoSecret = false;
  const storeFor =
    options.store ??
    ((env: Env) => {
      const settings = settingsOf(env);
      isolateStore ??= new ConfigStore({
        kv: env.SWITCHYARD,
        refreshMs: settings.refreshMs,
        local: settings.local,
        now,
        log,
      });
      return isolateStore;
    });

  const app = new Hono<{ Bindings: Env }>();
  const admins = new Map<string, ReturnType<typeof adminApp>>();

  app.all("*", async (c, next) => {
    const token = c.env.ADMIN_TOKEN;
    if (!token) return next();
    const { adminPath } = settingsOf(c.env);
    const path = c.req.path;
    if (path !== adminPath && !path.startsWith(`${adminPath}/`)) return next();
    const store = storeFor(c.env);
    const key = `${adminPath}\n${token}`;
    let admin = admins.get(key);
    if (!admin) {
      admin = adminApp(adminPath, token, {
        store,
        health: state.health,
        budget: state.budget,
        now,
      });
      admins.set(key, admin);
    }
    if (!store.snapshot) await store.current((promise) => c.executionCtx.waitUntil(promise));
    return admin.fetch(c.req.raw, c.env, c.executionCtx);
  });

  app.all("*", async (c) => {
    const request = c.req.raw;
    const requestId = requestIdOf(request.headers.get("x-request-id"), () => crypto.randomUUID());
    const fail = (failure: Failure) => failureResponse(failure, requestId);
    const waitUntil = (promise: Promise<unknown>) => c.executionCtx.waitUntil(promise);

    const store = storeFor(c.env);
    const snapshot = await store.current(waitUntil);
    if (!snapshot) {
      return fail({
        kind: "no-config",
        message: `no routes loaded yet: ${store.lastError?.message ?? "the routes document is missing or invalid"}`,
      });
    }

    const url = new URL(request.url);
    const view = viewOf(request, url);
    const matched = snapshot.matcher.match(view);
    if (!matched) return fail({ kind: "no-route", host: view.host, path: view.path });
    const rule = snapshot.rule(matched.routeIndex, matched.ruleIndex);
    if (!rule) throw new Error(`matcher returned an unknown rule ${JSON.stringify(matched)}`);

    const started = now();
    const lens = healthLens(state.health, started);
    let session: Awaited<ReturnType<typeof readSession>>;
    let keys: Awaited<ReturnType<typeof stickyKeys>> = [];
    if (rule.source.sessionPersistence) {
      keys = await stickyKeys(c.env.STICKY_SECRET, c.env.STICKY_SECRET_PREVIOUS);
      if (keys.length === 0 && !warnedNoSecret) {
        warnedNoSecret = true;
        log.error("STICKY_SECRET is not set: sessionPersistence is off until it is", {
          route: rule.routeName,
        });
      }
      session = await readSession(
        rule,
        request.headers.get("cookie"),
        keys,
        Math.floor(started / 1000),
      );
    }
    const stickyId = session?.read?.ok ? session.read.value.endpointId : undefined;
    const sticky = stickyId === undefined ? undefined : stickyCandidate(rule, stickyId, lens);

    const choice = pick(rule, lens, sticky);
    if (choice.kind === "missing-pool")
      return fail({ kind: "missing-pool", route: rule.routeName, pool: choice.ref.poolName });
    if (choice.kind === "unavailable")
      return fail({ kind: "unavailable", route: rule.routeName, message: choice.reason });

    const result = await exchange(request, url, rule, choice, requestId, {
      env: c.env,
      health: state.health,
      budget: state.budget,
      now,
      random,
      sleep,
    });
    if (result.kind === "failure") {
      const response = fail(result.failure);
      if (result.skipped) response.headers.set(RETRY_SKIPPED_HEADER, result.skipped);
      return response;
    }
    const response = result.response;
    if (session && keys[0] && !response.webSocket) {
      const nowS = Math.floor(now() / 1000);
      const cookie = await sessionCookie(
        session,
        result.servedBy.endpoint.id,
        keys[0],
        nowS,
        url.protocol === "https:",
      );
      if (cookie) response.headers.append("set-cookie", cookie);
    }
    return response;
  });

  app.onError((error, c) => {
    if (error instanceof SettingsError)
      return failureResponse({ kind: "settings", message: error.message });
    log.error("unhandled error", { error: error.message, stack: error.stack, path: c.req.path });
    return c.json({ error: "internal", message: "internal error in Switchyard" }, 500);
  });

  return app;
}
