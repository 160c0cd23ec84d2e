/**
 * Smooth weighted round-robin, as in nginx (ngx_http_upstream_get_peer): each pick adds every
 * eligible peer's weight to its current value, takes the largest (the first listed on a tie)
 * and subtracts the total from it. Weights 5,1,1 give a a b a c a a. O(peers) per pick, no
 * allocation; weight 0 is never picked. Deterministic: no clock, no randomness.
 */
export class SmoothWrr {
  readonly weights: readonly number[];
  /** A plain array: a typed array costs more memory than a few numbers in a large snapshot. */
  private readonly current: number[];

  constructor(weights: readonly number[]) {
    this.weights = weights;
    this.current = weights.map(() => 0);
  }

  /** The next peer among those `eligible` allows, or -1 when none has weight. */
  next(eligible?: (index: number) => boolean): number {
    const { weights, current } = this;
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
