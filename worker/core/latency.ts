/**
 * Each pool's recent times to response headers in this isolate, for hedging at a percentile: a
 * ring of the last 128 answers per pool, and its nearest-rank percentile, computed when asked
 * after a new answer (one sort of 128 numbers, a few microseconds, on hedged rules only). Pure:
 * times are given.
 */

const SAMPLES = 128;
/** Answers a pool needs before its percentile is used. */
export const MIN_SAMPLES = 20;

class Window {
  readonly times = new Float64Array(SAMPLES);
  count = 0;
  private readonly cached = new Map<number, number>();

  add(ms: number): void {
    this.times[this.count % SAMPLES] = ms;
    this.count++;
    this.cached.clear();
  }

  percentile(p: number): number | undefined {
    if (this.count < MIN_SAMPLES) return undefined;
    let value = this.cached.get(p);
    if (value === undefined) {
      const n = Math.min(this.count, SAMPLES);
      const sorted = this.times.slice(0, n).sort();
      value = sorted[Math.min(n - 1, Math.ceil((p / 100) * n) - 1)] as number;
      this.cached.set(p, value);
    }
    return value;
  }
}

export class LatencyWindows {
  private readonly pools = new Map<string, Window>();
  private readonly maxPools: number;

  constructor(maxPools = 4096) {
    this.maxPools = maxPools;
  }

  record(pool: string, ms: number): void {
    let window = this.pools.get(pool);
    if (window === undefined) {
      // Pools come and go with configurations: past the bound, start again rather than grow.
      if (this.pools.size >= this.maxPools) this.pools.clear();
      window = new Window();
      this.pools.set(pool, window);
    }
    window.add(ms);
  }

  /** The pool's `p`th percentile of time to headers, once it has MIN_SAMPLES answers. */
  percentile(pool: string, p: number): number | undefined {
    return this.pools.get(pool)?.percentile(p);
  }
}
