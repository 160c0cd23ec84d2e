/**
 * KV takes one write per second per key. The first change of a key goes out at once; later ones
 * within that second wait and merge into one write. Pure: time is passed in.
 */
export const KEY_WRITE_INTERVAL_MS = 1_000;

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
