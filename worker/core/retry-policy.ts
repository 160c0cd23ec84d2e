import type { HttpRouteRule } from "../../contract/index.ts";
import { durationMs } from "../../contract/index.ts";

/**
 * When to retry (Gateway API GEP-1731, docs/reliability.md): `attempts` counts retries after the first
 * try. Connection failures and per-try timeouts are always retryable; statuses only when listed
 * in `codes`. Without a `retry` block, an idempotent request whose connection failed is retried
 * once (nginx's default). A request is retried only when that is safe: an idempotent method or
 * an `Idempotency-Key`, and a body that can be sent again. Pure: no clock, no randomness.
 */

/** What one try came to. Workers' fetch reports a refused connection and a reset alike. */
export type TryOutcome =
  | { kind: "response"; status: number }
  | { kind: "connection-failure" }
  | { kind: "timeout" };

export type SkipReason =
  | "attempts-exhausted"
  | "not-idempotent"
  | "body-not-replayable"
  | "budget-exhausted"
  | "deadline";

/** A rule's hedging (Envoy's HedgePolicy): another try after `delayMs` without headers. */
export interface HedgeSettings {
  delayMs: number;
  /** Hedge at this percentile of the pool's recent times to headers, once known. */
  percentile: number | undefined;
  maxHedges: number;
}

export interface RetrySettings {
  attempts: number;
  codes: ReadonlySet<number>;
  backoffMs: number | undefined;
  /** Largest request body buffered so it can be sent again. */
  bodyBufferBytes: number;
  /** A POST or PATCH with an Idempotency-Key header may be retried (the rule opted in). */
  honorIdempotencyKey: boolean;
  hedge: HedgeSettings | undefined;
}

const DEFAULT_BODY_BUFFER_BYTES = 1024 * 1024;
const NO_CODES: ReadonlySet<number> = new Set();
const DEFAULT_SETTINGS: RetrySettings = Object.freeze({
  attempts: 1,
  codes: NO_CODES,
  backoffMs: undefined,
  bodyBufferBytes: DEFAULT_BODY_BUFFER_BYTES,
  honorIdempotencyKey: false,
  hedge: undefined,
});
/** RFC 9110 §9.2.2. */
const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"]);

export function retrySettings(rule: HttpRouteRule): RetrySettings {
  const { retry, hedge } = rule;
  if (retry === undefined && hedge === undefined) return DEFAULT_SETTINGS;
  return {
    ...DEFAULT_SETTINGS,
    ...(retry && {
      attempts: retry.attempts,
      codes: retry.codes.length ? new Set(retry.codes) : NO_CODES,
      backoffMs: retry.backoff === undefined ? undefined : durationMs(retry.backoff),
      bodyBufferBytes: retry.bodyBufferBytes ?? DEFAULT_BODY_BUFFER_BYTES,
      honorIdempotencyKey: retry.idempotencyKey === "Honor",
    }),
    hedge: hedge && {
      delayMs: durationMs(hedge.delay),
      percentile: hedge.percentile,
      maxHedges: hedge.maxHedges,
    },
  };
}

export function isIdempotent(method: string): boolean {
  return IDEMPOTENT.has(method);
}

/** A failure for retries and passive health: no response, a timeout, or a listed status. */
export function isFailure(outcome: TryOutcome, settings: RetrySettings): boolean {
  return outcome.kind !== "response" || settings.codes.has(outcome.status);
}

export interface RetryQuestion {
  outcome: TryOutcome;
  settings: RetrySettings;
  /** Retries already made for this request. */
  retriesDone: number;
  method: string;
  hasIdempotencyKey: boolean;
  bodyReplayable: boolean;
}

/**
 * Whether to try again. `{ retry: false }` without a reason: the outcome is not one that is
 * retried at all (a response whose status is not listed); with a reason: it would be, but is not.
 */
export function retryDecision(
  q: RetryQuestion,
): { retry: true } | { retry: false; reason?: SkipReason } {
  if (!isFailure(q.outcome, q.settings)) return { retry: false };
  if (q.retriesDone >= q.settings.attempts) return { retry: false, reason: "attempts-exhausted" };
  // A client's Idempotency-Key makes a POST retryable only where the rule says the backend
  // honours it: otherwise any client could have its order placed twice.
  if (!isIdempotent(q.method) && !(q.hasIdempotencyKey && q.settings.honorIdempotencyKey))
    return { retry: false, reason: "not-idempotent" };
  if (!q.bodyReplayable) return { retry: false, reason: "body-not-replayable" };
  return { retry: true };
}

/**
 * Jittered exponential backoff before retry number `retry` (1, 2, …): base × 2^(retry-1),
 * scaled by a factor in [0.5, 1.5) from `random` ∈ [0, 1), capped at 10 s.
 */
export function backoffDelay(baseMs: number | undefined, retry: number, random: number): number {
  if (!baseMs) return 0;
  return Math.min(baseMs * 2 ** (retry - 1) * (0.5 + random), 10_000);
}

/** The wait before trying again an endpoint already tried, when the rule sets no backoff. */
export const REPEAT_BACKOFF_MS = 25;

/**
 * The wait before a repeat: a try at an endpoint this request already tried (`repeat` 1, 2, …).
 * The rule's backoff when it sets one; otherwise Envoy's default, fully jittered: a random part
 * of 25 ms × 2^(repeat-1), at most 250 ms, so that four repeats take less than 375 ms.
 */
export function repeatDelay(baseMs: number | undefined, repeat: number, random: number): number {
  if (baseMs) return backoffDelay(baseMs, repeat, random);
  return Math.min(REPEAT_BACKOFF_MS * 2 ** (repeat - 1), 10 * REPEAT_BACKOFF_MS) * random;
}

export interface RetryBudgetOptions {
  /** Failed retries allowed per request of the pool, over the window. */
  ratio?: number;
  /** The reserve: failed retries allowed a second whatever the traffic, refilled continuously. */
  reservePerSecond?: number;
  /** How many seconds of reserve it holds at most, and the window the ratio counts over. */
  windowMs?: number;
}

/** What a retry was charged to: a second of the window (0 or more), or the reserve. */
const RESERVE = -1;

/**
 * One pool's retry budget: Finagle's RetryBudget (a share of the pool's requests over a sliding
 * window, and a reserve refilled at a rate, for little traffic), with a retry charged when it
 * starts and refunded when it rescues the request. So retries are free while they rescue (one
 * bad endpoint among good ones is retried as often as it fails, from the first request on), and
 * a pool whose every endpoint fails gets at most `ratio` of its requests plus the reserve in
 * extra tries, whatever the concurrency. The reserve refills at `reservePerSecond` up to a
 * window's worth, so retries come back within a second of a pool answering again
 * (docs/decisions/0005-retry-budget-per-pool.md). Pure: the clock is passed in.
 */
export class RetryBudget {
  private readonly requests: number[];
  private readonly charged: number[];
  /** The second each bucket counts, or -1. */
  private readonly seconds: number[];
  private readonly ratio: number;
  private readonly reservePerSecond: number;
  private readonly reserveMax: number;
  private readonly buckets: number;
  private reserve: number;
  private reserveAt: number | undefined;
  private inFlight = 0;

  constructor(options: RetryBudgetOptions = {}) {
    this.ratio = options.ratio ?? 0.2;
    this.reservePerSecond = options.reservePerSecond ?? 2;
    this.buckets = Math.max(1, Math.round((options.windowMs ?? 10_000) / 1000));
    this.reserveMax = this.reservePerSecond * this.buckets;
    this.reserve = this.reserveMax;
    this.requests = new Array(this.buckets).fill(0);
    this.charged = new Array(this.buckets).fill(0);
    this.seconds = new Array(this.buckets).fill(-1);
  }

  /** The bucket of `second`, emptied if it last counted an older one. */
  private bucket(second: number): number {
    const i = second % this.buckets;
    if (this.seconds[i] !== second) {
      this.seconds[i] = second;
      this.requests[i] = 0;
      this.charged[i] = 0;
    }
    return i;
  }

  private totals(second: number): { requests: number; charged: number } {
    let requests = 0;
    let charged = 0;
    for (let i = 0; i < this.buckets; i++) {
      if ((this.seconds[i] as number) <= second - this.buckets) continue;
      requests += this.requests[i] as number;
      charged += this.charged[i] as number;
    }
    return { requests, charged };
  }

  private refill(now: number): void {
    if (this.reserveAt !== undefined && now > this.reserveAt)
      this.reserve = Math.min(
        this.reserveMax,
        this.reserve + ((now - this.reserveAt) / 1000) * this.reservePerSecond,
      );
    if (this.reserveAt === undefined || now > this.reserveAt) this.reserveAt = now;
  }

  recordRequest(now: number): void {
    const i = this.bucket(Math.floor(now / 1000));
    this.requests[i] = (this.requests[i] as number) + 1;
  }

  /**
   * Charges a retry to the pool's share of its requests, else to the reserve: the charge to
   * hand back to `settle`, or undefined when neither has room.
   */
  tryAcquire(now: number): number | undefined {
    const second = Math.floor(now / 1000);
    const { requests, charged } = this.totals(second);
    if (charged + 1 <= requests * this.ratio) {
      const i = this.bucket(second);
      this.charged[i] = (this.charged[i] as number) + 1;
      this.inFlight++;
      return second;
    }
    this.refill(now);
    if (this.reserve < 1) return undefined;
    this.reserve -= 1;
    this.inFlight++;
    return RESERVE;
  }

  /** Ends a retry charged at `charge`: one that rescued the request is refunded. */
  settle(charge: number, rescued: boolean): void {
    if (this.inFlight > 0) this.inFlight--;
    if (!rescued) return;
    if (charge === RESERVE) {
      this.reserve = Math.min(this.reserveMax, this.reserve + 1);
      return;
    }
    const i = charge % this.buckets;
    // A charge whose second has left the window no longer counts: nothing to refund.
    if (this.seconds[i] === charge && (this.charged[i] as number) > 0)
      this.charged[i] = (this.charged[i] as number) - 1;
  }

  status(now: number) {
    const { requests, charged } = this.totals(Math.floor(now / 1000));
    this.refill(now);
    return {
      requests,
      /** Retries charged to the share of requests and not refunded, over the window. */
      failedRetries: charged,
      share: requests * this.ratio,
      reserve: Math.floor(this.reserve),
      inFlight: this.inFlight,
    };
  }
}

/**
 * The isolate's retry budgets, one per pool, so that a broken pool spends only its own: a
 * retry is charged to the pool whose endpoint failed. A budget whose window has emptied is
 * dropped when the map grows past `maxPools`.
 */
export class RetryBudgets {
  private readonly pools = new Map<string, RetryBudget>();
  private readonly options: RetryBudgetOptions;
  private readonly maxPools: number;

  constructor(options: RetryBudgetOptions = {}, maxPools = 4096) {
    this.options = options;
    this.maxPools = maxPools;
  }

  of(pool: string, now: number): RetryBudget {
    let budget = this.pools.get(pool);
    if (budget === undefined) {
      if (this.pools.size >= this.maxPools) this.forgetIdle(now);
      budget = new RetryBudget(this.options);
      this.pools.set(pool, budget);
    }
    return budget;
  }

  private forgetIdle(now: number): void {
    for (const [name, budget] of this.pools) {
      const { requests, inFlight } = budget.status(now);
      if (requests === 0 && inFlight === 0) this.pools.delete(name);
    }
  }

  status(now: number): Record<string, ReturnType<RetryBudget["status"]>> {
    return Object.fromEntries([...this.pools].map(([name, budget]) => [name, budget.status(now)]));
  }
}
