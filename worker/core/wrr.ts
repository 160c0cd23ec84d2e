/**
 * Smooth weighted round-robin, as in nginx (ngx_http_upstream_get_peer): each pick adds every
 * eligible peer's weight to its current value, takes the largest (the first listed on a tie)
 * and subtracts the total from it. Weights 5,1,1 give a a b a c a a. That is O(peers) a pick;
 * when every peer is eligible and the weights add up to at most SCHEDULE_MAX, the sequence of
 * one whole cycle is computed once and walked in O(1). Weight 0 is never picked.
 * Deterministic: no clock, no randomness.
 */

/** Longest cycle worth precomputing: 8,192 small integers, 64 KiB at most per pool. */
const SCHEDULE_MAX = 8_192;

export class SmoothWrr {
  readonly weights: readonly number[];
  /** nginx's current weights; a plain array costs less than a typed one in a large snapshot. */
  private readonly current: number[];
  private schedule: number[] | undefined;
  private position = 0;
  private readonly total: number;

  constructor(weights: readonly number[]) {
    this.weights = weights;
    this.current = weights.map(() => 0);
    this.total = weights.reduce((sum, w) => sum + Math.max(w, 0), 0);
  }

  /**
   * The next peer, or -1 when no peer has weight. With `eligible`, peers it refuses are left out
   * of this pick, as nginx leaves out peers that are down.
   */
  next(eligible?: (index: number) => boolean): number {
    if (eligible === undefined && this.total <= SCHEDULE_MAX) {
      this.schedule ??= this.cycle();
      if (this.schedule.length === 0) return -1;
      const peer = this.schedule[this.position] as number;
      this.position = (this.position + 1) % this.schedule.length;
      return peer;
    }
    return SmoothWrr.step(this.weights, this.current, eligible);
  }

  /** One whole cycle of picks from zero state: each peer appears exactly `weight` times. */
  private cycle(): number[] {
    const state = this.weights.map(() => 0);
    return Array.from({ length: this.total }, () => SmoothWrr.step(this.weights, state, undefined));
  }

  private static step(
    weights: readonly number[],
    current: number[],
    eligible?: (index: number) => boolean,
  ): number {
    let total = 0;
    let best = -1;
    for (let i = 0; i < weights.length; i++) {
      const weight = weights[i] as number;
      if (weight <= 0 || (eligible && !eligible(i))) continue;
      current[i] = (current[i] as number) + weight;
      total += weight;
      if (best === -1 || (current[i] as number) > (current[best] as number)) best = i;
    }
    if (best !== -1) current[best] = (current[best] as number) - total;
    return best;
  }
}

/** What pick asks of a balancer: the next peer, or -1. SmoothWrr, or one of the two below. */
export interface Balancer {
  next(eligible?: (index: number) => boolean): number;
}

/**
 * The balancer of a single peer, shared by every one-ref tier: smooth WRR over one peer picks it
 * whenever it has weight and is eligible, with no state to keep. Most rules have one backendRef,
 * and a SmoothWrr of their own costs 170 bytes each.
 */
export const ONE_PEER: Balancer = Object.freeze({
  next: (eligible?: (index: number) => boolean) => (!eligible || eligible(0) ? 0 : -1),
});
/** A single peer of weight 0: never picked. */
export const NO_PEER: Balancer = Object.freeze({ next: () => -1 });

/** The balancer for these weights: a shared one for a single peer, else a SmoothWrr. */
export function balancer(weights: readonly number[]): Balancer {
  if (weights.length === 1) return (weights[0] as number) > 0 ? ONE_PEER : NO_PEER;
  return new SmoothWrr(weights);
}
