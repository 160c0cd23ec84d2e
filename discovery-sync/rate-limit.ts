/**
 * The limits discovery-sync keeps with the Cloudflare API (pure: time and randomness are passed
 * in). KV takes one write per second per key; the account takes 1,200 API requests per five
 * minutes across every tool that uses it, and going over blocks all of them for five minutes.
 */

/** KV takes one write per second per key; counted from when the previous write was answered. */
const KEY_WRITE_INTERVAL_MS = 1_000;

/** One write a second per key: the first change goes out at once, later ones wait and merge. */
export class KeyWriteLimiter {
  private readonly last = new Map<string, number>();

  /** When this key may next be written (≤ now: at once). */
  nextAllowed(key: string): number {
    const at = this.last.get(key);
    return at === undefined ? 0 : at + KEY_WRITE_INTERVAL_MS;
  }

  written(key: string, now: number): void {
    this.last.set(key, now);
  }

  /** Forgets keys not written for a while, so the map does not grow without bound. */
  prune(now: number): void {
    for (const [key, at] of this.last) if (now - at > KEY_WRITE_INTERVAL_MS) this.last.delete(key);
  }
}

/**
 * A token bucket for every API request: `ratePerSecond` tokens a second, at most `burst` saved.
 * The default, 2 a second, is half the account's limit, leaving the rest to other tools.
 */
export class TokenBucket {
  private tokens: number;
  private at: number;
  readonly ratePerSecond: number;
  readonly burst: number;

  constructor(ratePerSecond: number, burst: number, now: number) {
    this.ratePerSecond = ratePerSecond;
    this.burst = burst;
    this.tokens = burst;
    this.at = now;
  }

  private refill(now: number): void {
    if (now > this.at) {
      this.tokens = Math.min(
        this.burst,
        this.tokens + ((now - this.at) / 1000) * this.ratePerSecond,
      );
      this.at = now;
    }
  }

  /** Takes a token and returns 0, or returns how many ms to wait before asking again. */
  take(now: number): number {
    this.refill(now);
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - this.tokens) / this.ratePerSecond) * 1000);
  }

  /** The API said 429: nothing is left to spend. */
  drain(now: number): void {
    this.refill(now);
    this.tokens = 0;
  }
}

const BACKOFF_BASE_MS = 1_000;
export const BACKOFF_CAP_MS = 60_000;
/** Retry-After is honoured up to the length of the API's own block. */
export const RETRY_AFTER_CAP_MS = 300_000;

/**
 * The delay before the `attempt`-th retry (1, 2, …): exponential from 1 s, capped at 60 s, with
 * "equal jitter" (half fixed, half random) so that replicas and tools do not retry in step.
 * `random` is in [0, 1).
 */
export function backoffMs(attempt: number, random: number): number {
  const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** Math.max(0, attempt - 1));
  return Math.round(ceiling / 2 + (ceiling / 2) * random);
}

/** The wait a `Retry-After` header asks for (seconds or an HTTP date), capped; undefined if none. */
export function retryAfterMs(header: string | null | undefined, now: number): number | undefined {
  if (!header) return undefined;
  const seconds = Number(header);
  const ms = Number.isFinite(seconds) ? seconds * 1000 : Date.parse(header) - now;
  if (!Number.isFinite(ms)) return undefined;
  return Math.min(RETRY_AFTER_CAP_MS, Math.max(0, ms));
}
