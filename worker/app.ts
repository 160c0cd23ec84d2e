import { dataPoint, type RequestFacts } from "../contract/analytics.ts";
import { ConfigStore } from "./config/store.ts";
import { isPreflight } from "./core/filters.ts";
import { requestIdOf } from "./core/forward-headers.ts";
import { HealthRegistry } from "./core/health.ts";
import { LatencyWindows } from "./core/latency.ts";
import { normalizedUrl } from "./core/path.ts";
import { pick } from "./core/pick.ts";
import { normalizeHost, type RequestUrl, requestUrl, viewOfRequest } from "./core/request.ts";
import { RetryBudgets } from "./core/retry-policy.ts";
import type { RuleFilters } from "./core/snapshot.ts";
import { TrafficCounters } from "./core/traffic.ts";
import { type Env, SettingsError, settingsOf } from "./env.ts";
import { adminApp } from "./http/admin.ts";
import { detail, type Failure, failureResponse } from "./http/errors.ts";
import { consoleLogger, type Logger } from "./log.ts";
import { BufferBudget } from "./proxy/body.ts";
import { type ExchangeDeps, exchange, RETRY_SKIPPED_HEADER } from "./proxy/exchange.ts";
import {
  corsRequestOf,
  directResponse,
  preflightResponse,
  redirectResponse,
  responseEdits,
  withCors,
} from "./proxy/filtered.ts";
import { clientResponse, type ResponseEdits } from "./proxy/forward.ts";
import { Sessions } from "./sticky/session.ts";

/** What an isolate keeps between requests besides the snapshot. */
export interface IsolateState {
  health: HealthRegistry;
  /** Retry budgets, one per pool. */
  budgets: RetryBudgets;
  /** Each pool's recent times to headers, for hedging; made when not given. */
  latency?: LatencyWindows;
  buffers?: BufferBudget;
  /** This isolate's traffic of the last minutes, for the dashboard. */
  traffic?: TrafficCounters;
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

/**
 * One Analytics Engine data point for a request. Not awaited: the runtime takes the point
 * without making the response wait. Callers check that ANALYTICS is bound first, so that an
 * unbound worker builds nothing.
 */
function writeAnalytics(
  dataset: AnalyticsEngineDataset,
  request: Request,
  facts: Omit<RequestFacts, "colo">,
): void {
  dataset.writeDataPoint(
    dataPoint({ ...facts, colo: typeof request.cf?.colo === "string" ? request.cf.colo : "" }),
  );
}

/** A request id for a request that came without a usable one. */
function mintRequestId(): string {
  return crypto.randomUUID();
}

/** An answer a filter makes at the edge (a redirect, a preflight), with the filters' response edits. */
function edgeAnswer(
  response: Response,
  rule: RuleFilters | undefined,
  ref: RuleFilters | undefined,
  origin: string | null,
): Response {
  responseEdits(rule, ref, origin)?.(response.headers);
  return response;
}

/** The worker: a plain fetch handler, so that the data path pays for no router. */
export interface App {
  fetch(request: Request, env: Env, ctx: ExecutionContext): Promise<Response>;
}

export function createApp(options: AppOptions = {}): App {
  const now = options.now ?? Date.now;
  const log = options.log ?? consoleLogger;
  const state = options.state ?? { health: new HealthRegistry(), budgets: new RetryBudgets() };
  const random = options.random ?? Math.random;
  const sleep =
    options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  let isolateStore: ConfigStore | undefined;
  const sessions = new Sessions(log);
  const buffers = state.buffers ?? new BufferBudget();
  const traffic = state.traffic ?? new TrafficCounters();
  const latency = state.latency ?? new LatencyWindows();
  const storeFor =
    options.store ??
    ((env: Env) => {
      const settings = settingsOf(env);
      isolateStore ??= new ConfigStore({
        kv: env.SWITCHYARD,
        refreshMs: settings.refreshMs,
        local: settings.local,
        allowedBindings: settings.allowedBindings,
        now,
        log,
      });
      return isolateStore;
    });

  const admins = new Map<string, ReturnType<typeof adminApp>>();
  /** What an exchange needs, built once per environment object (the runtime reuses it). */
  const exchangeDeps = new WeakMap<Env, ExchangeDeps>();
  const depsFor = (env: Env): ExchangeDeps => {
    let deps = exchangeDeps.get(env);
    if (deps === undefined) {
      deps = {
        env,
        health: state.health,
        budgets: state.budgets,
        latency,
        buffers,
        traffic,
        now,
        random,
        sleep,
        log,
      };
      exchangeDeps.set(env, deps);
    }
    return deps;
  };

  /**
   * The admin API's answer when the request is for it (ADMIN_TOKEN set, its path and host);
   * undefined, without a promise, for every other request.
   */
  const adminAnswer = (
    request: Request,
    env: Env,
    ctx: ExecutionContext,
    url: RequestUrl,
  ): Promise<Response> | undefined => {
    const token = env.ADMIN_TOKEN;
    if (!token) return undefined;
    const { adminPath, adminHost } = settingsOf(env);
    const path = url.pathname;
    if (path !== adminPath && !path.startsWith(`${adminPath}/`)) return undefined;
    // On every other host the admin path is routed like any other, but never with credentials:
    // an operator who sent the admin token to the wrong host must not hand it to a backend.
    if (adminHost !== undefined && normalizeHost(url.rawHost) !== adminHost) {
      if (!request.headers.has("authorization")) return undefined;
      const headers = new Headers(request.headers);
      headers.delete("authorization");
      return proxy(new Request(request, { headers }), env, ctx, url);
    }
    return answerAdmin(request, env, ctx, adminPath, token);
  };
  const answerAdmin = async (
    request: Request,
    env: Env,
    ctx: ExecutionContext,
    adminPath: string,
    token: string,
  ): Promise<Response> => {
    const store = storeFor(env);
    const key = `${adminPath}\n${token}`;
    let admin = admins.get(key);
    if (!admin) {
      admin = adminApp(adminPath, token, {
        store,
        health: state.health,
        budgets: state.budgets,
        buffers,
        traffic,
        now,
      });
      admins.set(key, admin);
    }
    if (!store.snapshot) await store.current(ctx);
    return admin.fetch(request, env, ctx);
  };

  /** The client gets a reason code; the log gets what happened, under the same request id. */
  const failed = (
    failure: Failure,
    requestId: string,
    debugHeaders: boolean,
    skipped?: string,
  ): Response => {
    if (failure.kind !== "no-route") {
      // A client that left, or that was too slow to send, is the client's doing: info, not warn.
      const client =
        failure.kind === "client-closed" ||
        failure.kind === "client-timeout" ||
        failure.kind === "bad-path";
      (client ? log.info : log.warn)(detail(failure), {
        error: failure.kind,
        requestId,
        ...("route" in failure ? { route: failure.route } : {}),
        ...(skipped ? { retrySkipped: skipped } : {}),
      });
    }
    const response = failureResponse(failure, requestId);
    if (skipped && debugHeaders) response.headers.set(RETRY_SKIPPED_HEADER, skipped);
    return response;
  };

  /** An answer without a route (none matched, or none loaded): counted, as routed ones are. */
  const unroutedAnswer = (
    failure: Failure,
    request: Request,
    env: Env,
    requestId: string,
  ): Response => {
    const response = failed(failure, requestId, settingsOf(env).debugHeaders);
    traffic.recordUnrouted(now());
    if (env.ANALYTICS)
      writeAnalytics(env.ANALYTICS, request, {
        route: "",
        rule: "",
        pool: "",
        endpoint: "",
        status: response.status,
        durationMs: 0,
        tries: 0,
      });
    return response;
  };

  /** The data path: snapshot → match → session → pick → exchange → stamp. */
  const proxy = async (
    request: Request,
    env: Env,
    ctx: ExecutionContext,
    url: RequestUrl,
  ): Promise<Response> => {
    // Read once: every Headers call crosses into the runtime.
    const headers = request.headers;
    const requestId = requestIdOf(headers.get("x-request-id"), mintRequestId);
    const settings = settingsOf(env);
    const debugHeaders = settings.debugHeaders;
    // The Host header as it came, from the request's URL, which the runtime builds from it: the
    // route match normalizes it, X-Forwarded-Host carries it as it is.
    const rawHost = url.rawHost;
    const view = viewOfRequest(request, url, rawHost);
    const store = storeFor(env);
    const current = store.current(ctx, view.host);
    let snapshot = current instanceof Promise ? await current : current;
    if (!snapshot) {
      return unroutedAnswer(
        {
          kind: "no-config",
          message: `no routes loaded yet: ${store.lastError?.message ?? "the routes document is missing or invalid"}`,
        },
        request,
        env,
        requestId,
      );
    }
    // A compiled layout's shard with this host's routes, read the first time the isolate sees one.
    if (snapshot.routes.missingShard(view.host) !== undefined) {
      const ready = await store.withShard(snapshot, view.host);
      if (typeof ready === "string")
        return unroutedAnswer(
          { kind: "no-config", message: `the routes of ${view.host} could not be read: ${ready}` },
          request,
          env,
          requestId,
        );
      snapshot = ready;
    }

    const matched = snapshot.matcher.match(view);
    if (!matched)
      return unroutedAnswer(
        { kind: "no-route", host: view.host, path: view.path },
        request,
        env,
        requestId,
      );
    const rule = snapshot.rule(matched.routeIndex, matched.ruleIndex);
    if (!rule) throw new Error(`matcher returned an unknown rule ${JSON.stringify(matched)}`);

    const started = now();
    const ruleName = String(rule.source.name ?? rule.ruleIndex);
    /** The request's trace: an access log line and, with ANALYTICS bound, a data point. */
    const accessed = (
      status: number,
      exchanged?: { tries: number; retried: readonly string[]; skipped: string | undefined },
      endpoint?: { pool: string; id: string },
      cookie?: string,
    ) => {
      const at = now();
      const durationMs = at - started;
      const tries = exchanged?.tries ?? 0;
      traffic.record(
        rule.routeName,
        ruleName,
        endpoint && { pool: endpoint.pool, endpoint: endpoint.id, status, durationMs, tries },
        at,
      );
      if (env.ANALYTICS)
        writeAnalytics(env.ANALYTICS, request, {
          route: rule.routeName,
          rule: ruleName,
          pool: endpoint?.pool ?? "",
          endpoint: endpoint?.id ?? "",
          status,
          durationMs,
          tries,
        });
      // The access log: one JSON line per request, sampled by ACCESS_LOG_SAMPLE (every request
      // by default under SWITCHYARD_LOCAL, one in ten otherwise), nothing built for a request
      // the sample leaves out. Never a header or cookie value: no client secret can reach it.
      const sample = settings.accessLogSample;
      if (sample < 1 && random() >= sample) return;
      log.info("access", {
        at: new Date(at).toISOString(),
        requestId,
        route: rule.routeName,
        rule: ruleName,
        ...(endpoint ? { pool: endpoint.pool, endpoint: endpoint.id } : {}),
        status,
        durationMs,
        tries,
        retried: exchanged?.retried ?? [],
        ...(exchanged?.skipped ? { retrySkipped: exchanged.skipped } : {}),
        ...(cookie ? { sticky: cookie } : {}),
        generation: snapshot.generation,
      });
    };
    const filters = rule.filters;
    // A rule's RequestRedirect or DirectResponse answers by itself: no session, no backend.
    const answer = filters?.redirect
      ? redirectResponse(filters.redirect, url, rawHost)
      : filters?.direct && directResponse(filters.direct);
    if (answer) {
      const response = edgeAnswer(answer, filters, undefined, request.headers.get("origin"));
      accessed(response.status);
      return response;
    }

    const lens = state.health.lens(started);
    // Most rules have no sessionPersistence: no promise for them on the hot path.
    const opened = rule.session && sessions.open(rule, request, env, started, lens);
    const session = opened instanceof Promise ? await opened : opened;
    const choice = pick(rule, lens, session?.sticky);
    if (filters !== undefined || rule.refFilters) {
      // A picked backendRef's filters replace the rule's of the same type.
      const refFilters =
        choice.kind === "endpoints"
          ? choice.first.ref?.filters
          : choice.kind === "missing-pool"
            ? choice.ref.filters
            : undefined;
      const cors = refFilters?.cors ?? filters?.cors;
      const asked = cors && corsRequestOf(request);
      // The preflight's own headers are its CORS answer: no CORS headers of an actual response.
      const edge =
        asked && isPreflight(asked)
          ? edgeAnswer(preflightResponse(cors, asked), filters, refFilters, null)
          : refFilters?.redirect
            ? edgeAnswer(
                redirectResponse(refFilters.redirect, url, rawHost),
                filters,
                refFilters,
                request.headers.get("origin"),
              )
            : undefined;
      if (edge) {
        accessed(edge.status);
        return edge;
      }
    }
    if (rule.tiers.length === 0) {
      const response = withCors(
        failed(
          { kind: "no-backends", route: rule.routeName, rule: ruleName },
          requestId,
          debugHeaders,
        ),
        filters,
        undefined,
        headers,
      );
      accessed(response.status);
      return response;
    }
    if (choice.kind !== "endpoints") {
      const response = withCors(
        failed(
          choice.kind === "missing-pool"
            ? { kind: "missing-pool", route: rule.routeName, pool: choice.ref.poolName }
            : choice.kind === "weight-zero"
              ? { kind: "no-backends", route: rule.routeName, rule: ruleName, weightZero: true }
              : { kind: "unavailable", route: rule.routeName, message: choice.reason },
          requestId,
          debugHeaders,
        ),
        filters,
        choice.kind === "missing-pool" ? choice.ref.filters : undefined,
        headers,
      );
      accessed(response.status);
      return response;
    }

    const result = await exchange(
      { request, headers, method: view.method, url, requestId, host: rawHost },
      rule,
      choice,
      depsFor(env),
      ctx,
    );
    if (result.kind === "failure") {
      const response = withCors(
        failed(result.failure, requestId, debugHeaders, result.skipped),
        filters,
        choice.first.ref?.filters,
        headers,
      );
      accessed(response.status, result);
      return response;
    }
    const servedBy = result.servedBy;
    const edits: ResponseEdits = {};
    if (settings.responseRequestId) edits.requestId = requestId;
    if (result.skipped) {
      log.info("retry skipped", { route: rule.routeName, requestId, reason: result.skipped });
      if (debugHeaders) edits.set = [[RETRY_SKIPPED_HEADER, result.skipped]];
    }
    // A WebSocket upgrade's headers are already sent: no cookie for it.
    const stamped =
      session === undefined || result.status === 101
        ? undefined
        : session.stamp(servedBy.endpoint.id, now(), url.protocol === "https:");
    const cookie = stamped instanceof Promise ? await stamped : stamped;
    if (cookie !== undefined) edits.setCookie = cookie;
    if (filters !== undefined || rule.refFilters)
      edits.filters = responseEdits(filters, servedBy.ref?.filters, request.headers.get("origin"));
    const response = clientResponse(
      result.response,
      result.status,
      servedBy.endpoint.origin,
      url,
      edits,
    );
    const sticky =
      session === undefined
        ? undefined
        : session.sticky
          ? cookie !== undefined
            ? "hit, reissued"
            : "hit"
          : "new";
    accessed(result.status, result, { pool: servedBy.pool.name, id: servedBy.endpoint.id }, sticky);
    return response;
  };

  const internalError = (error: Error, path: string): Response => {
    if (error instanceof SettingsError)
      return failureResponse({ kind: "settings", message: error.message });
    // The path only: a query string may carry a client's secret.
    log.error("unhandled error", { error: error.message, stack: error.stack, path });
    return Response.json(
      { error: "internal", message: "internal error in Switchyard" },
      { status: 500 },
    );
  };

  return {
    async fetch(request, env, ctx) {
      let path = "";
      try {
        const raw = requestUrl(request.url);
        path = raw.pathname;
        // Matched and forwarded as backends will read it (worker/core/path.ts).
        const url = normalizedUrl(raw, settingsOf(env).escapedSlashes);
        if (typeof url === "string")
          return failed(
            { kind: "bad-path", message: `${url}: ${raw.pathname}` },
            requestIdOf(request.headers.get("x-request-id"), mintRequestId),
            false,
          );
        return await (adminAnswer(request, env, ctx, url) ?? proxy(request, env, ctx, url));
      } catch (error) {
        return internalError(error as Error, path);
      }
    },
  };
}
