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
  | "no-untried-endpoint"
  | "deadline";

export interface RetrySettings {
  attempts: number;
  codes: ReadonlySet<number>;
  backoffMs: number | undefined;
  /** Largest request body buffered so it can be sent again. */
  bodyBufferBytes: number;
  /** A POST or PATCH with an Idempotency-Key header may be retried (the rule opted in). */
  honorIdempotencyKey: boolean;
}

const DEFAULT_BODY_BUFFER_BYTES = 1024 * 1024;
const NO_CODES: ReadonlySet<number> = new Set();
const DEFAULT_SETTINGS: RetrySettings = Object.freeze({
  attempts: 1,
  codes: NO_CODES,
  backoffMs: undefined,
  bodyBufferBytes: DEFAULT_BODY_BUFFER_BYTES,
  honorIdempotencyKey: false,
});
/** RFC 9110 §9.2.2. */
const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"]);

export function retrySettings(rule: HttpRouteRule): RetrySettings {
  const retry = rule.retry;
  if (retry === undefined) return DEFAULT_SETTINGS;
  return {
    attempts: retry.attempts,
    codes: retry.codes.length ? new Set(retry.codes) : NO_CODES,
    backoffMs: retry.backoff === undefined ? undefined : durationMs(retry.backoff),
    bodyBufferBytes: retry.bodyBufferBytes ?? DEFAULT_BODY_BUFFER_BYTES,
    honorIdempotencyKey: retry.idempotencyKey === "Honor",
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

/**
 * Per-isolate retry budget (Linkerd's): over the last `windowMs`, retries may be at most `ratio`
 * of the requests plus `minPerSecond` a second, whatever the concurrency, so a client sending one
 * request at a time to a broken pool is bounded like many at once; and never more than
 * `maxInFlight` retries at the same time. Counts are kept in one-second buckets.
 */
export class RetryBudget {
  private readonly requests: number[];
  private readonly retries: number[];
  private bucketStart = 0;
  private current = 0;
  private inFlight = 0;
  private readonly ratio: number;
  private readonly minPerSecond: number;
  private readonly maxInFlight: number;
  private readonly buckets: number;

  constructor(
    options: {
      ratio?: number;
      minPerSecond?: number;
      maxInFlight?: number;
      windowMs?: number;
    } = {},
  ) {
    this.ratio = options.ratio ?? 0.2;
    this.minPerSecond = options.minPerSecond ?? 1;
    this.maxInFlight = options.maxInFlight ?? 50;
    this.buckets = Math.max(1, Math.round((options.windowMs ?? 10_000) / 1000));
    this.requests = new Array(this.buckets).fill(0);
    this.retries = new Array(this.buckets).fill(0);
  }

  private advance(now: number): void {
    const second = Math.floor(now / 1000);
    if (this.bucketStart === 0) this.bucketStart = second;
    const steps = Math.min(second - this.bucketStart, this.buckets);
    for (let i = 0; i < steps; i++) {
      this.current = (this.current + 1) % this.buckets;
      this.requests[this.current] = 0;
      this.retries[this.current] = 0;
    }
    if (second > this.bucketStart) this.bucketStart = second;
  }

  recordRequest(now: number): void {
    this.advance(now);
    this.requests[this.current] = (this.requests[this.current] as number) + 1;
  }

  /** Takes a retry from the budget if there is one; pair a true answer with `release`. */
  tryAcquire(now: number): boolean {
    this.advance(now);
    const requests = this.requests.reduce((a, b) => a + b, 0);
    const retries = this.retries.reduce((a, b) => a + b, 0);
    if (this.inFlight >= this.maxInFlight) return false;
    if (retries + 1 > requests * this.ratio + this.minPerSecond * this.buckets) return false;
    this.retries[this.current] = (this.retries[this.current] as number) + 1;
    this.inFlight++;
    return true;
  }

  release(): void {
    if (this.inFlight > 0) this.inFlight--;
  }

  status(now: number) {
    this.advance(now);
    return {
      requests: this.requests.reduce((a, b) => a + b, 0),
      retries: this.retries.reduce((a, b) => a + b, 0),
      inFlight: this.inFlight,
      ratio: this.ratio,
      minPerSecond: this.minPerSecond,
      maxInFlight: this.maxInFlight,
    };
  }
}
