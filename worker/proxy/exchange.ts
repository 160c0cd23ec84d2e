import { applyHeaderEdits, type CompiledMirror, mirrored } from "../core/filters.ts";
import { type HealthRegistry, healthKey } from "../core/health.ts";
import type { LatencyWindows } from "../core/latency.ts";
import type { Candidate, Choice } from "../core/pick.ts";
import type { RequestUrl } from "../core/request.ts";
import {
  backoffDelay,
  type HedgeSettings,
  isFailure,
  isIdempotent,
  type RetryBudget,
  type RetryBudgets,
  repeatDelay,
  retryDecision,
  type SkipReason,
  type TryOutcome,
} from "../core/retry-policy.ts";
import type { CompiledPool, CompiledRule } from "../core/snapshot.ts";
import type { TrafficCounters } from "../core/traffic.ts";
import { type Env, settingsOf } from "../env.ts";
import type { Failure } from "../http/errors.ts";
import type { Logger } from "../log.ts";
import {
  type BodyPlan,
  BodyTimeout,
  type BufferBudget,
  bodyForTry,
  planBody,
  replayable,
} from "./body.ts";
import { TransportMissing, upstreamFor, upstreamInit, upstreamUrl } from "./forward.ts";

/**
 * One client request's exchange with the backends: tries along the ordered candidates, each
 * bounded by `timeouts.backendRequest`, the whole bounded by `timeouts.request`, with retries
 * as retry-policy.ts allows and the pool's retry budget permits, hedges where the rule asks for
 * them, and every outcome reported to passive health. A retry prefers an endpoint not tried yet;
 * when none is left it tries again the one tried least recently, after a backoff.
 */

export interface ExchangeDeps {
  env: Env;
  health: HealthRegistry;
  /** The isolate's retry budgets, one per pool. */
  budgets: RetryBudgets;
  /** Each pool's recent times to headers, for hedging at a percentile. */
  latency: LatencyWindows;
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
  /** Given when the try may be cancelled (a hedge that lost). */
  cancel?: AbortController,
): Promise<TryResult> {
  let sent: Promise<Response>;
  const controller = cancel ?? (timeoutMs === undefined ? undefined : new AbortController());
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
  if (controller === undefined) return sent.then(responded, unreachable);
  if (timeoutMs === undefined)
    return sent.then(responded, () => (controller.signal.aborted ? TIMED_OUT : CONNECTION_FAILURE));
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
  const now = deps.now();
  deps.budgets.of(choice.first.pool.name, now).recordRequest(now);
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
    mirrors: mirrors.length,
    // timeouts.request runs from the request's arrival: the time its body takes counts.
    startedAt: rule.timeouts.requestMs === undefined ? 0 : Date.now(),
  };
  // Most requests have no body: no promise to plan one, and no async step of the exchange's own.
  if (request.body === null) return start(planned, mirrors, ctx);
  const { requestMs, backendRequestMs } = rule.timeouts;
  return planBody(
    request,
    settings.bodyBufferBytes,
    mayRetry || mirrors.length > 0,
    deps.buffers,
    requestMs ?? backendRequestMs,
  ).then(
    (body) => start({ ...planned, ...watched(body, rule) }, mirrors, ctx),
    // Reading the client's body failed: it did not come in time, or the client went away.
    (error: unknown): ExchangeResult => ({
      kind: "failure",
      failure:
        error instanceof BodyTimeout
          ? {
              kind: "client-timeout",
              route: rule.routeName,
              message: `the request body did not arrive within ${formatMs(error.timeoutMs)}`,
            }
          : {
              kind: "client-closed",
              route: rule.routeName,
              message: `the client went away while its body was coming: ${(error as Error).message}`,
            },
      tries: 0,
      retried: NO_RETRIES,
      skipped: undefined,
    }),
  );
}

/**
 * On a rule with timeouts, a body that streams from the client goes through a pipe whose end is
 * watched: a try that times out before the client finished sending has waited on the client,
 * not on the endpoint. Envoy starts its timeouts only once the request has arrived; nginx
 * answers 408 on its client_body_timeout. Here the client gets 408 and the endpoint is not
 * blamed: a slow upload, aimed by a sticky cookie, cannot eject an endpoint of a shared pool.
 */
function watched(body: BodyPlan, rule: CompiledRule): Pick<Planned, "body" | "bodyArrived"> {
  const { requestMs, backendRequestMs } = rule.timeouts;
  if (body.kind !== "stream" || (requestMs === undefined && backendRequestMs === undefined))
    return { body };
  const { readable, writable } = new IdentityTransformStream();
  let done = false;
  body.stream.pipeTo(writable).then(
    () => {
      done = true;
    },
    () => {}, // the client went away: the try fails as it reads the pipe
  );
  return { body: { kind: "stream", stream: readable }, bodyArrived: () => done };
}

/** Sends the mirrors, then makes the tries; a buffered body's bytes go back to the budget after. */
function start(
  planned: Planned,
  mirrors: readonly CompiledMirror<CompiledPool | undefined>[],
  ctx: Pick<ExecutionContext, "waitUntil">,
): Promise<ExchangeResult> {
  const mirrored = mirrors.map((mirror) => sendMirror(mirror, planned, ctx));
  const body = planned.body;
  const hedge = planned.rule.retry.hedge;
  // Only an idempotent request whose body can be sent again is hedged.
  const tries =
    hedge !== undefined && !planned.websocket && isIdempotent(planned.method) && replayable(body)
      ? attemptHedged(planned, hedge)
      : attempt(planned);
  if (body.kind !== "buffered") return tries;
  // The buffered bytes are the mirrors' too: they go back to the budget when the tries and
  // every mirror are done with them, not when the client has its answer.
  const release = () => planned.deps.buffers.release(body.bytes.byteLength);
  if (mirrored.length === 0) return tries.finally(release);
  Promise.allSettled([tries, ...mirrored]).then(release);
  return tries;
}

const NO_BODY: BodyPlan = { kind: "none" };
const NO_RETRIES: readonly string[] = Object.freeze([]);
const NO_MIRRORS: readonly CompiledMirror<CompiledPool | undefined>[] = Object.freeze([]);

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
 * was buffered; a streamed body is read once, by the real exchange. Resolves when it is done.
 */
function sendMirror(
  mirror: CompiledMirror<CompiledPool | undefined>,
  planned: Planned,
  ctx: Pick<ExecutionContext, "waitUntil">,
): Promise<void> {
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
    return Promise.resolve();
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
  return sent;
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
  /** Mirrored copies sent for this request: outbound connections the tries cannot have. */
  mirrors: number;
  /** For a client's body streamed on a rule with timeouts: whether it has arrived whole. */
  bodyArrived?: () => boolean;
  /** When the exchange began (Date.now), where timeouts.request is set. */
  startedAt: number;
}

/** A retry's charge to the budget of the pool whose endpoint failed. */
interface Charge {
  budget: RetryBudget;
  second: number;
}

/** The tries of one exchange so far. */
interface Tries {
  /** Endpoints tried, least recently first; made when the first retry is planned. */
  order: Candidate[] | undefined;
  /** The choice's candidates in order, asked for when the first retry is planned. */
  list: Candidate[] | undefined;
  retries: number;
  /** Retries that went to an endpoint already tried. */
  repeats: number;
  /** Hedged tries, beside the retries. */
  hedges: number;
  /** Why each retry was made: "connection-failure", "timeout" or "status 503". */
  retried: string[] | undefined;
  skipped: SkipReason | undefined;
}

/** The tries of an exchange served by its first try. */
const NO_TRIES: Readonly<Tries> = Object.freeze(newTries());

function newTries(): Tries {
  return {
    order: undefined,
    list: undefined,
    retries: 0,
    repeats: 0,
    hedges: 0,
    retried: undefined,
    skipped: undefined,
  };
}

/** The timeout of a try that starts now: backendRequest, cut to what is left of request. */
function tryTimeout(deadline: number | undefined, backendRequestMs: number | undefined) {
  if (deadline === undefined) return backendRequestMs;
  const left = Math.max(0, deadline - Date.now());
  return Math.min(backendRequestMs ?? left, left);
}

/** Tells passive health, and the traffic counters, what a try came to. */
function report(planned: Planned, candidate: Candidate, result: TryResult): void {
  const { rule, deps } = planned;
  const { health, now } = deps;
  if (clientStalled(planned, result)) return; // the client's fault, never the endpoint's
  // For health, a status counts only where the rule lists it for health: a client picking a
  // path that answers 503 must not eject a pool other routes share.
  const failedForHealth =
    result.outcome.kind !== "response" || rule.healthCodes.has(result.outcome.status);
  if (result.outcome.kind !== "response")
    deps.traffic?.recordFailedTry(candidate.pool.name, candidate.endpoint.id, now());
  // A success changes nothing while no endpoint has a failure on record: no key made for it.
  if (failedForHealth || health.keepsAny)
    health.record(
      healthKey(candidate.pool.name, candidate.endpoint.id),
      failedForHealth,
      now(),
      failedForHealth ? reasonOf(result.outcome) : undefined,
    );
}

/** A try that timed out while the client's body was still coming. */
function clientStalled(planned: Planned, result: TryResult): boolean {
  return (
    result.outcome.kind === "timeout" && planned.bodyArrived !== undefined && !planned.bodyArrived()
  );
}

/** Puts `candidate` last in the order of tries (most recently tried). */
function noteTried(tries: Tries, candidate: Candidate): void {
  const order = tries.order;
  if (order === undefined) return;
  const at = order.findIndex((c) => c.endpoint.id === candidate.endpoint.id);
  if (at !== -1) order.splice(at, 1);
  order.push(candidate);
}

/**
 * The endpoint a retry or a hedge goes to: the first candidate not tried yet that passive health
 * does not avoid; for a retry (`repeat`), when there is none, the one tried least recently, so
 * that a one-endpoint pool is tried again too.
 */
function nextCandidate(
  planned: Planned,
  tries: Tries,
  repeat: boolean,
): { candidate: Candidate; repeat: boolean } | undefined {
  const { choice, deps } = planned;
  tries.order ??= [choice.first];
  tries.list ??= choice.candidates();
  const now = deps.now();
  const order = tries.order;
  const fresh = tries.list.find(
    (c) =>
      !order.some((t) => t.endpoint.id === c.endpoint.id) &&
      !deps.health.avoids(c.endpoint.id, c.pool, now),
  );
  if (fresh !== undefined) return { candidate: fresh, repeat: false };
  const again = order[0];
  return !repeat || again === undefined ? undefined : { candidate: again, repeat: true };
}

type Next = { candidate: Candidate; delay: number; charge: Charge } | { skip?: SkipReason };

/**
 * Whether and where to retry after `failed`'s try came to `outcome`: retry-policy.ts says whether
 * it may, then an endpoint, the wait, the deadline and the budget of the failed endpoint's pool.
 */
function planRetry(
  planned: Planned,
  tries: Tries,
  failed: Candidate,
  outcome: TryOutcome,
  deadline: number | undefined,
): Next {
  const { rule, deps, body, method, hasIdempotencyKey } = planned;
  const settings = rule.retry;
  const decision = retryDecision({
    outcome,
    settings,
    retriesDone: tries.retries,
    method,
    hasIdempotencyKey,
    bodyReplayable: replayable(body),
  });
  if (!decision.retry) return { skip: decision.reason };
  const next = nextCandidate(planned, tries, true);
  if (next === undefined) return {};
  const delay = next.repeat
    ? repeatDelay(settings.backoffMs, tries.repeats + 1, deps.random())
    : backoffDelay(settings.backoffMs, tries.retries + 1, deps.random());
  if (deadline !== undefined && Date.now() + delay >= deadline) return { skip: "deadline" };
  const now = deps.now();
  const budget = deps.budgets.of(failed.pool.name, now);
  const second = budget.tryAcquire(now);
  if (second === undefined) return { skip: "budget-exhausted" };
  tries.retried ??= [];
  tries.retried.push(reasonOf(outcome));
  tries.retries++;
  if (next.repeat) tries.repeats++;
  noteTried(tries, next.candidate);
  return { candidate: next.candidate, delay, charge: { budget, second } };
}

/** Ends a retry's charge: refunded when its try answered with something not to retry. */
function settle(charge: Charge | undefined, result: TryResult, planned: Planned): void {
  charge?.budget.settle(charge.second, !isFailure(result.outcome, planned.rule.retry));
}

/**
 * The tries of one exchange, one at a time, with its body planned. Most requests are served by
 * their first try: nothing is allocated for retries until one is planned.
 */
async function attempt(planned: Planned): Promise<ExchangeResult> {
  const { rule, choice, deps } = planned;
  const { requestMs, backendRequestMs } = rule.timeouts;
  // Timeouts run on the runtime's own clock; `now` is the clock of health and budget.
  const deadline = requestMs === undefined ? undefined : planned.startedAt + requestMs;
  // Made when a try fails: most requests are served by their first try.
  let tries: Tries | undefined;
  let candidate = choice.first;
  let charge: Charge | undefined;
  for (;;) {
    const result = await tryOnce(planned, candidate, tryTimeout(deadline, backendRequestMs));
    report(planned, candidate, result);
    settle(charge, result, planned);
    if (
      result.transportMissing ||
      pastDeadline(deadline, result) ||
      !isFailure(result.outcome, rule.retry)
    )
      return outcomeOf(planned, tries ?? NO_TRIES, result, candidate, deadline);
    tries ??= newTries();
    const next = planRetry(planned, tries, candidate, result.outcome, deadline);
    if (!("candidate" in next)) {
      tries.skipped = next.skip;
      return outcomeOf(planned, tries, result, candidate, deadline);
    }
    await result.response?.body?.cancel();
    if (next.delay > 0) await deps.sleep(next.delay);
    candidate = next.candidate;
    charge = next.charge;
  }
}

/** A try that timed out when the whole exchange's time was up. */
function pastDeadline(deadline: number | undefined, result: TryResult): boolean {
  return deadline !== undefined && result.outcome.kind === "timeout" && Date.now() >= deadline;
}

/** Workers lets a request have six connections open at once; mirrors hold some of them. */
const MAX_CONNECTIONS = 6;

interface InFlight {
  candidate: Candidate;
  controller: AbortController;
  charge: Charge | undefined;
  started: number;
  done: Promise<Settled>;
}

/** A try in flight that came to its result. */
interface Settled {
  flight: InFlight;
  result: TryResult;
}

/**
 * The tries of a hedged exchange (Envoy's HedgePolicy): while no try has answered within the
 * hedge delay, another goes to an endpoint not tried yet, up to `maxHedges` and the connections
 * the request has left; the first answer that is not a failure wins and the others are
 * cancelled. A hedge is charged to the first pool's retry budget, and refunded when it wins.
 * Once nothing is in flight, a failure is retried as in `attempt`.
 */
async function attemptHedged(planned: Planned, hedge: HedgeSettings): Promise<ExchangeResult> {
  const { rule, choice, deps } = planned;
  const { requestMs, backendRequestMs } = rule.timeouts;
  const deadline = requestMs === undefined ? undefined : planned.startedAt + requestMs;
  const tries = newTries();
  tries.order = [choice.first];
  const inFlight = new Set<InFlight>();
  const maxInFlight = Math.max(1, MAX_CONNECTIONS - planned.mirrors);
  const observed =
    hedge.percentile === undefined
      ? undefined
      : deps.latency.percentile(choice.first.pool.name, hedge.percentile);
  // At least a millisecond: loopback answers can be timed at 0.
  const delay = observed === undefined ? hedge.delayMs : Math.max(1, observed);
  let hedges = 0;
  let lastStart = 0;
  const launch = (candidate: Candidate, charge: Charge | undefined): void => {
    const controller = new AbortController();
    lastStart = Date.now();
    const flight = { candidate, controller, charge, started: lastStart } as InFlight;
    flight.done = tryOnce(
      planned,
      candidate,
      tryTimeout(deadline, backendRequestMs),
      controller,
    ).then((result) => ({ flight, result }));
    inFlight.add(flight);
  };
  launch(choice.first, undefined);
  let last: { result: TryResult; candidate: Candidate } | undefined;
  while (inFlight.size > 0) {
    const canHedge = hedges < hedge.maxHedges && inFlight.size < maxInFlight;
    const timer = canHedge ? wait(lastStart + delay - Date.now()) : undefined;
    const racing: Promise<Settled | undefined>[] = [...inFlight].map((f) => f.done);
    if (timer) racing.push(timer.done);
    const settled = await Promise.race(racing);
    timer?.cancel();
    if (settled === undefined) {
      const next = nextCandidate(planned, tries, false);
      const now = deps.now();
      const budget = deps.budgets.of(choice.first.pool.name, now);
      const second = next && budget.tryAcquire(now);
      if (next === undefined || second === undefined) {
        hedges = hedge.maxHedges; // no endpoint or no budget for one: wait for what is in flight
        continue;
      }
      hedges++;
      tries.hedges++;
      noteTried(tries, next.candidate);
      launch(next.candidate, { budget, second });
      continue;
    }
    const { flight, result } = settled;
    inFlight.delete(flight);
    report(planned, flight.candidate, result);
    settle(flight.charge, result, planned);
    if (result.outcome.kind === "response")
      deps.latency.record(flight.candidate.pool.name, Date.now() - flight.started);
    last = { result, candidate: flight.candidate };
    if (!isFailure(result.outcome, rule.retry) || result.transportMissing) {
      for (const other of inFlight) {
        other.controller.abort();
        other.charge?.budget.settle(other.charge.second, false);
      }
      return outcomeOf(planned, tries, result, flight.candidate, deadline);
    }
    if (inFlight.size > 0) {
      await result.response?.body?.cancel();
      continue;
    }
    if (pastDeadline(deadline, result)) break;
    // Nothing is in flight: the retry may go to any endpoint, as in `attempt`.
    const next = planRetry(planned, tries, flight.candidate, result.outcome, deadline);
    if (!("candidate" in next)) {
      tries.skipped = next.skip;
      break;
    }
    await result.response?.body?.cancel();
    if (next.delay > 0) await deps.sleep(next.delay);
    launch(next.candidate, next.charge);
  }
  const { result, candidate } = last as NonNullable<typeof last>;
  return outcomeOf(planned, tries, result, candidate, deadline);
}

/** A promise that resolves to undefined after `ms`, and a way to stop its timer. */
function wait(ms: number): { done: Promise<undefined>; cancel: () => void } {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const done = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), Math.max(0, ms));
  });
  return { done, cancel: () => clearTimeout(timer) };
}

/** What the exchange came to, from its last try. */
function outcomeOf(
  planned: Planned,
  tries: Readonly<Tries>,
  last: TryResult,
  candidate: Candidate,
  deadline: number | undefined,
): ExchangeResult {
  const { rule } = planned;
  const { requestMs, backendRequestMs } = rule.timeouts;
  const count = tries.retries + tries.hedges + 1;
  const retried = tries.retried ?? NO_RETRIES;
  const skipped = tries.skipped;
  const route = rule.routeName;
  // A retry the deadline left no time for: the request did not complete within it (Gateway API).
  const deadlineHit = pastDeadline(deadline, last) || skipped === "deadline";
  if (last.response && last.outcome.kind === "response" && !deadlineHit)
    return {
      kind: "response",
      response: last.response,
      status: last.outcome.status,
      servedBy: candidate,
      tries: count,
      retried,
      skipped,
    };
  const failed = (failure: Failure): ExchangeResult => ({
    kind: "failure",
    failure,
    tries: count,
    retried,
    skipped,
  });
  if (last.transportMissing)
    return failed({ kind: "bad-gateway", route, message: last.transportMissing });
  if (clientStalled(planned, last))
    return failed({
      kind: "client-timeout",
      route,
      message: `the request body was still coming when the timeout (${formatMs(backendRequestMs ?? requestMs ?? 0)}) expired`,
    });
  if (deadlineHit) {
    last.response?.body?.cancel();
    return failed({
      kind: "timeout",
      route,
      message: `the request did not complete within timeouts.request (${formatMs(requestMs as number)})`,
    });
  }
  if (last.outcome.kind === "timeout")
    return failed({
      kind: "timeout",
      route,
      message: `the backend did not answer within ${formatMs(backendRequestMs ?? requestMs ?? 0)}`,
    });
  const message =
    count > 1 ? `no backend could be reached (${count} tries)` : "the backend could not be reached";
  return failed({ kind: "unreachable", route, message });
}
