import { Hono } from "hono";
import { consoleLogger, type Logger } from "./config/log.ts";
import { ConfigStore } from "./config/store.ts";
import { requestIdOf } from "./core/forward-headers.ts";
import { pick } from "./core/pick.ts";
import { normalizeHost, type RequestView } from "./core/request.ts";
import { ruleLabel } from "./core/snapshot.ts";
import { type Env, SettingsError, settingsOf } from "./env.ts";
import { type Failure, failureResponse } from "./http/errors.ts";
import { clientResponse, TransportMissing, upstreamFor, upstreamRequest } from "./proxy/forward.ts";

export interface AppOptions {
  /** The store for an environment; the default keeps one per isolate. */
  store?: (env: Env) => ConfigStore;
  now?: () => number;
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

export function createApp(options: AppOptions = {}) {
  const now = options.now ?? Date.now;
  const log = options.log ?? consoleLogger;
  let isolateStore: ConfigStore | undefined;
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

  app.all("*", async (c) => {
    const request = c.req.raw;
    const requestId = requestIdOf(request.headers.get("x-request-id"), crypto.randomUUID());
    const fail = (failure: Failure) => failureResponse(failure, requestId);

    const store = storeFor(c.env);
    const snapshot = await store.current((promise) => c.executionCtx.waitUntil(promise));
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

    const choice = pick(rule);
    if (choice.kind === "missing-pool")
      return fail({ kind: "missing-pool", route: rule.routeName, pool: choice.ref.poolName });
    if (choice.kind === "unavailable")
      return fail({ kind: "unavailable", route: rule.routeName, message: choice.reason });

    const candidate = choice.first;
    try {
      const upstream = upstreamFor(candidate, c.env);
      const response = await upstream.fetch(upstreamRequest(request, url, candidate, requestId));
      return clientResponse(response, requestId);
    } catch (error) {
      const message =
        error instanceof TransportMissing ? error.message : "the backend could not be reached";
      log.warn("upstream failed", {
        route: ruleLabel(rule),
        endpoint: candidate.endpoint.id,
        requestId,
        error: (error as Error).message,
      });
      return fail({ kind: "bad-gateway", route: rule.routeName, message });
    }
  });

  app.onError((error, c) => {
    if (error instanceof SettingsError)
      return failureResponse({ kind: "settings", message: error.message });
    log.error("unhandled error", { error: error.message, stack: error.stack, path: c.req.path });
    return c.json({ error: "internal", message: "internal error in Switchyard" }, 500);
  });

  return app;
}
