import { applyHeaderEdits, type CompiledMirror, mirrored } from "../core/filters.ts";
import { type HealthRegistry, healthKey } from "../core/health.ts";
import type { Candidate, Choice } from "../core/pick.ts";
import type { RequestUrl } from "../core/request.ts";
import {
  backoffDelay,
  isIdempotent,
  type RetryBudget,
  retryDecision,
  type SkipReason,
  type TryOutcome,
} from "../core/retry-policy.ts";
import type { CompiledPool, CompiledRule } from "../core/snapshot.ts";
import type { TrafficCounters } from "../core/traffic.ts";
import { type Env, settingsOf } from "../env.ts";
import type { Failure } from "../http/errors.ts";
import type { Logger } from "../log.ts";
import { type BodyPlan, type BufferBudget, bodyForTry, planBody, replayable } from "./body.ts";
import { TransportMissing, upstreamFor, upstreamInit, upstreamUrl } from "./forward.ts";

/**
 * One client request's exchange with the backends: tries along the ordered candidates, each
 * bounded by `timeouts.backendRequest`, the whole bounded by `timeouts.request`, with retries
 * as retry-policy.ts allows and the isolate's retry budget permits, and every outcome reported
 * to passive health. Never tries an endpoint twice for one request.
 */

export interface ExchangeDeps {
  env: Env;
  health: HealthRegistry;
  budget: RetryBudget;
  /** The isolate's budget of bytes buffered for retries. */
  buffers: BufferBudget;
  /** This isolate's traffic counters: a try without an answer is counted for its endpoint. */
  traffic?: TrafficCounters;
  now: () => number;
  random: () => number;
  sleep: (ms: number) => Promise<void>;
  log: Logger;
}

/** How long a mirrored request may take when the rule sets no timeout. */
export const MIRROR_TIMEOUT_MS = 10_000;

export type ExchangeResult =
  | {
      kind: "response";
      /** The backend's response as it came; clientResponse makes it the client's. */
      response: Response;
      /** Its status, read once. */
      status: number;
      servedBy: Candidate;
      tries: number;
      /** Why each retry was made: "connection-failure", "timeout" or "status 503". */
      retried: readonly string[];
      skipped: SkipReason | undefined;
    }
  | {
      kind: "failure";
      failure: Failure;
      tries: number;
      retried: readonly string[];
      skipped: SkipReason | undefined;
    };

export const RETRY_SKIPPED_HEADER = "x-switchyard-retry-skipped";

const DIGITS = /^\d{1,15}$/;

function formatMs(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

interface TryResult {
  outcome: TryOutcome;
  response?: Response;
  transportMissing?: string;
}

const CONNECTION_FAILURE: TryResult = Object.freeze({
  outcome: Object.freeze({ kind: "connection-failure" }),
});
const TIMED_OUT: TryResult = Object.freeze({ outcome: Object.freeze({ kind: "timeout" }) });

function responded(response: Response): TryResult {
  return { outcome: { kind: "response", status: response.status }, response };
}

/** What a try's outcome is called in logs and ejection reasons: "status 503", "timeout". */
function reasonOf(outcome: TryOutcome): string {
  return outcome.kind === "response" ? `status ${outcome.status}` : outcome.kind;
}

function unreachable(): TryResult {
  return CONNECTION_FAILURE;
}

/**
 * One try at one endpoint. Not an async function: most tries have no timeout, and then a try is
 * the fetch and one reaction to it, which is what a request's hot path can afford.
 */
function tryOnce(
  planned: Planned,
  candidate: Candidate,
  timeoutMs: number | undefined,
): Promise<TryResult> {
  let sent: Promise<Response>;
  const controller = timeoutMs === undefined ? undefined : new AbortController();
  try {
    const upstream = upstreamFor(candidate, planned.deps.env);
    const target = targetOf(planned.url, planned.rule, candidate);
    sent = upstream.fetch(target, initOf(planned, candidate, controller?.signal));
  } catch (error) {
    // No request left: a transport that is not allowed or not bound, or one the runtime refused.
    return Promise.resolve(
      error instanceof TransportMissing
        ? { ...CONNECTION_FAILURE, transportMissing: error.message }
        : CONNECTION_FAILURE,
    );
  }
  if (controller === undefined || timeoutMs === undefined) return sent.then(responded, unreachable);
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  return sent.then(
    (response) => {
      // A response without a body, a WebSocket's 101 among them, has nothing left to bound.
      if (response.body === null) {
        clearTimeout(timer);
        return responded(response);
      }
      return responded(bounded(response, controller, timer, planned, candidate, timeoutMs));
    },
    () => {
      clearTimeout(timer);
      return controller.signal.aborted ? TIMED_OUT : CONNECTION_FAILURE;
    },
  );
}

/**
 * The response with its body bounded by the try's timeout: Gateway API's timeouts run until the
 * whole response has come. The body goes through a pipe that the timer aborts, so that a body
 * which stops coming is ended for the client, who sees it fail as after a reset, instead of
 * waiting for good. Aborting the fetch alone does not do it: the runtime keeps sending a body it
 * was handed on to the client (test/node/wire.test.ts). Only rules with a timeout pay for the
 * pipe; it clears the timer when the body is through.
 */
function bounded(
  response: Response,
  controller: AbortController,
  timer: ReturnType<typeof setTimeout>,
  planned: Planned,
  candidate: Candidate,
  timeoutMs: number,
): Response {
  // A body of known length keeps its Content-Length (the runtime would send the pipe chunked);
  // an encoded one is measured in other bytes than the pipe carries.
  const length = response.headers.get("content-encoding")
    ? null
    : response.headers.get("content-length");
  const { readable, writable } =
    length !== null && DIGITS.test(length)
      ? new FixedLengthStream(Number(length))
      : new IdentityTransformStream();
  (response.body as ReadableStream).pipeTo(writable, { signal: controller.signal }).then(
    () => clearTimeout(timer),
    () => {
      clearTimeout(timer);
      if (controller.signal.aborted)
        planned.deps.log.warn("response body cut: the timeout expired while it was coming", {
          route: planned.rule.routeName,
          requestId: planned.requestId,
          pool: candidate.pool.name,
          endpoint: candidate.endpoint.id,
          timeout: formatMs(timeoutMs),
        });
    },
  );
  return new Response(readable, response);
}

/**
 * What the worker read of the client's request before the exchange, each part once: every
 * property of a Request and every Headers call crosses into the runtime.
 */
export interface ClientRequest {
  request: Request;
  headers: Headers;
  method: string;
  url: RequestUrl;
  requestId: string;
  /** The Host the client asked for, as the route match read it. */
  host: string;
}

export function exchange(
  client: ClientRequest,
  rule: CompiledRule,
  choice: Extract<Choice, { kind: "endpoints" }>,
  deps: ExchangeDeps,
  /** The request's context: mirrored requests go out through its waitUntil. */
  ctx: Pick<ExecutionContext, "waitUntil">,
): Promise<ExchangeResult> {
  deps.budget.recordRequest(deps.now());
  const settings = rule.retry;
  const { request, headers, method, url, requestId, host } = client;
  const websocket = headers.get("upgrade")?.toLowerCase() === "websocket";
  const idempotent = isIdempotent(method);
  // Read only where it decides something: a request with a safe method retries without it.
  const hasIdempotencyKey = !idempotent && headers.has("idempotency-key");
  const mayRetry =
    !websocket &&
    settings.attempts > 0 &&
    (idempotent || (hasIdempotencyKey && settings.honorIdempotencyKey));
  const mirrors = websocket ? NO_MIRRORS : mirrorsOf(rule, choice.first, deps.random);
  const planned: Planned = {
    request,
    headers,
    method,
    url,
    rule,
    choice,
    requestId,
    host,
    websocket,
    deps,
    body: NO_BODY,
    hasIdempotencyKey,
  };
  // Most requests have no body: no promise to plan one, and no async step of the exchange's own.
  if (request.body === null) return start(planned, mirrors, ctx);
  return planBody(
    request,
    settings.bodyBufferBytes,
    mayRetry || mirrors.length > 0,
    deps.buffers,
  ).then((body) => start({ ...planned, body }, mirrors, ctx));
}

/** Sends the mirrors, then makes the tries; a buffered body's bytes go back to the budget after. */
function start(
  planned: Planned,
  mirrors: readonly CompiledMirror<CompiledPool | undefined>[],
  ctx: Pick<ExecutionContext, "waitUntil">,
): Promise<ExchangeResult> {
  for (const mirror of mirrors) sendMirror(mirror, planned, ctx);
  const body = planned.body;
  if (body.kind !== "buffered") return attempt(planned);
  return attempt(planned).finally(() => planned.deps.buffers.release(body.bytes.byteLength));
}

const NO_BODY: BodyPlan = { kind: "none" };
const NO_RETRIES: readonly string[] = Object.freeze([]);
const NO_MIRRORS: readonly CompiledMirror<CompiledPool | undefined>[] = Object.freeze([]);

/** The first candidate not tried yet that passive health does not avoid. */
function untried(
  list: readonly Candidate[],
  tried: ReadonlySet<string>,
  health: HealthRegistry,
  now: number,
): Candidate | undefined {
  return list.find((c) => !tried.has(c.endpoint.id) && !health.avoids(c.endpoint.id, c.pool, now));
}

/** The mirrors this request goes to: the rule's and the first backendRef's, each by its share. */
function mirrorsOf(
  rule: CompiledRule,
  first: Candidate,
  random: () => number,
): readonly CompiledMirror<CompiledPool | undefined>[] {
  const own = rule.filters?.mirrors ?? NO_MIRRORS;
  const ref = first.ref?.filters?.mirrors ?? NO_MIRRORS;
  if (own.length === 0 && ref.length === 0) return NO_MIRRORS;
  return [...own, ...ref].filter((mirror) => mirrored(mirror, random()));
}

/** The URL a try sends to: the endpoint's origin, the path (rewritten by URLRewrite), the query. */
function targetOf(url: RequestUrl, rule: CompiledRule, candidate: Candidate): string {
  const rewrite = candidate.ref?.filters?.rewritePath ?? rule.filters?.rewritePath;
  return upstreamUrl(url, candidate, rewrite?.(url.pathname));
}

/** What a try sends, with the rule's and then the backendRef's RequestHeaderModifier applied. */
function initOf(
  planned: Planned,
  candidate: Candidate,
  signal: AbortSignal | undefined,
): RequestInit {
  const { url, rule, body, requestId, host, websocket, deps } = planned;
  const init = upstreamInit(planned, url, bodyForTry(body), signal, {
    requestId,
    host,
    websocket,
    forwardedFor: settingsOf(deps.env).forwardedFor,
  });
  const own = rule.filters?.requestHeaders;
  const ref = candidate.ref?.filters?.requestHeaders;
  if (own) applyHeaderEdits(init.headers as Headers, own);
  if (ref) applyHeaderEdits(init.headers as Headers, ref);
  return init;
}

/**
 * A copy of the request to one endpoint of the mirror pool, sent in the background: the client's
 * exchange never waits for it, and its answer is dropped. It carries the body only when the body
 * was buffered; a streamed body is read once, by the real exchange.
 */
function sendMirror(
  mirror: CompiledMirror<CompiledPool | undefined>,
  planned: Planned,
  ctx: Pick<ExecutionContext, "waitUntil">,
): void {
  const { rule, choice, deps, requestId, body } = planned;
  const route = rule.routeName;
  const pool = mirror.pool;
  const endpoint = pool?.endpoints[pool.wrr.next()];
  if (pool === undefined || endpoint === undefined) {
    deps.log.warn("request not mirrored", {
      route,
      requestId,
      pool: mirror.poolName,
      reason: pool === undefined ? "no such pool" : "the pool takes no new traffic",
    });
    return;
  }
  if (body.kind === "stream")
    deps.log.info("request mirrored without its body", {
      route,
      requestId,
      pool: pool.name,
      reason:
        "the body is not buffered (larger than retry.bodyBufferBytes, or the buffer budget is spent)",
    });
  // The mirror's endpoint, with the path and headers the first try gets (its backendRef's filters).
  const candidate: Candidate = { endpoint, pool, ref: choice.first.ref };
  const { requestMs, backendRequestMs } = rule.timeouts;
  const signal = AbortSignal.timeout(backendRequestMs ?? requestMs ?? MIRROR_TIMEOUT_MS);
  const init = initOf(
    { ...planned, body: body.kind === "stream" ? NO_BODY : body },
    candidate,
    signal,
  );
  const target = targetOf(planned.url, rule, candidate);
  const sent = (async () => {
    try {
      const response = await upstreamFor(candidate, deps.env).fetch(target, init);
      await response.body?.cancel();
    } catch (error) {
      deps.log.info("mirrored request failed", {
        route,
        requestId,
        pool: pool.name,
        endpoint: endpoint.id,
        error: (error as Error).message,
      });
    }
  })();
  ctx.waitUntil(sent);
}

interface Planned {
  request: Request;
  /** The request's headers and method, read once. */
  headers: Headers;
  method: string;
  url: RequestUrl;
  rule: CompiledRule;
  choice: Extract<Choice, { kind: "endpoints" }>;
  requestId: string;
  host: string;
  websocket: boolean;
  deps: ExchangeDeps;
  body: BodyPlan;
  hasIdempotencyKey: boolean;
}

/** The tries of one exchange, with its body planned. */
async function attempt(planned: Planned): Promise<ExchangeResult> {
  const { rule, choice, deps, body, hasIdempotencyKey, method } = planned;
  const { health, budget, now } = deps;
  const settings = rule.retry;
  const { requestMs, backendRequestMs } = rule.timeouts;
  // Timeouts run on the runtime's own clock; `now` is the clock of health and budget.
  const deadline = requestMs === undefined ? undefined : Date.now() + requestMs;

  // Made when a retry looks for another endpoint: most requests are served by their first try.
  let tried: Set<string> | undefined;
  let list: Candidate[] | undefined;

  let candidate: Candidate | undefined = choice.first;
  let retries = 0;
  let retried: string[] | undefined;
  let last: TryResult | undefined;
  let skipped: SkipReason | undefined;
  let deadlineHit = false;
  for (;;) {
    const current = candidate as Candidate;
    tried?.add(current.endpoint.id);
    const left = deadline === undefined ? undefined : deadline - Date.now();
    const timeout =
      left === undefined ? backendRequestMs : Math.min(backendRequestMs ?? left, left);
    const result = await tryOnce(planned, current, timeout);
    if (retries > 0) budget.release();
    last = result;
    if (result.transportMissing) break;
    // For health, a status counts only where the rule lists it for health: a client picking a
    // path that answers 503 must not eject a pool other routes share.
    const failedForHealth =
      result.outcome.kind !== "response" || rule.healthCodes.has(result.outcome.status);
    if (result.outcome.kind !== "response")
      deps.traffic?.recordFailedTry(current.pool.name, current.endpoint.id, now());
    // A success changes nothing while no endpoint has a failure on record: no key made for it.
    if (failedForHealth || health.keepsAny)
      health.record(
        healthKey(current.pool.name, current.endpoint.id),
        failedForHealth,
        now(),
        failedForHealth ? reasonOf(result.outcome) : undefined,
      );

    if (deadline !== undefined && Date.now() >= deadline && result.outcome.kind === "timeout") {
      deadlineHit = true;
      break;
    }
    const decision = retryDecision({
      outcome: result.outcome,
      settings,
      retriesDone: retries,
      method,
      hasIdempotencyKey,
      bodyReplayable: replayable(body),
    });
    if (!decision.retry) {
      skipped = decision.reason;
      break;
    }
    tried ??= new Set([current.endpoint.id]);
    list ??= choice.candidates();
    const next = untried(list, tried, health, now());
    if (!next) {
      skipped = "no-untried-endpoint";
      break;
    }
    const delay = backoffDelay(settings.backoffMs, retries + 1, deps.random());
    if (deadline !== undefined && Date.now() + delay >= deadline) {
      skipped = "deadline";
      break;
    }
    if (!budget.tryAcquire(now())) {
      skipped = "budget-exhausted";
      break;
    }
    await result.response?.body?.cancel();
    if (delay > 0) await deps.sleep(delay);
    retried ??= [];
    retried.push(reasonOf(result.outcome));
    retries++;
    candidate = next;
  }

  const tries = retries + 1;
  const route = rule.routeName;
  const reasons = retried ?? NO_RETRIES;
  if (last.response && last.outcome.kind === "response") {
    const servedBy = candidate as Candidate;
    return {
      kind: "response",
      response: last.response,
      status: last.outcome.status,
      servedBy,
      tries,
      retried: reasons,
      skipped,
    };
  }
  const failed = (failure: Failure): ExchangeResult => ({
    kind: "failure",
    failure,
    tries,
    retried: reasons,
    skipped,
  });
  if (last.transportMissing)
    return failed({ kind: "bad-gateway", route, message: last.transportMissing });
  if (deadlineHit || last.outcome.kind === "timeout") {
    const message = deadlineHit
      ? `the request did not complete within timeouts.request (${formatMs(requestMs as number)})`
      : `the backend did not answer within ${formatMs(timeout(backendRequestMs, requestMs))}`;
    return failed({ kind: "timeout", route, message });
  }
  const message =
    tries > 1 ? `no backend could be reached (${tries} tries)` : "the backend could not be reached";
  return failed({ kind: "bad-gateway", route, message });
}

function timeout(backendRequestMs: number | undefined, requestMs: number | undefined): number {
  return backendRequestMs ?? requestMs ?? 0;
}
