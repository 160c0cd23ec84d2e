import * as k8s from "@kubernetes/client-node";
import type { Logger } from "pino";

/**
 * Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection does, with
 * optimistic concurrency on the Lease's resourceVersion: a replace based on a stale copy is a
 * 409 and changes nothing. The holder renews every `renewSeconds`; others try every
 * `retrySeconds` and take the Lease once `leaseDurationSeconds` have passed without a renewal.
 * A leader that fails to renew stops leading at once, before the lease can expire, so two
 * writers never overlap. Time comes from `now`.
 */

export interface LeaderOptions {
  namespace: string;
  name: string;
  identity: string;
  leaseDurationSeconds?: number;
  renewSeconds?: number;
  retrySeconds?: number;
  now?: () => number;
  log: Logger;
  onStartedLeading: () => void;
  onStoppedLeading: () => void;
}

function statusOf(error: unknown): number | undefined {
  const e = error as { code?: number; statusCode?: number };
  return e?.code ?? e?.statusCode;
}

export class LeaderElector {
  private readonly api: k8s.CoordinationV1Api;
  private readonly options: Required<
    Omit<LeaderOptions, "log" | "onStartedLeading" | "onStoppedLeading">
  > &
    LeaderOptions;
  private leading = false;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private ticking: Promise<void> | undefined;
  private stopped = true;
  /** When we last renewed successfully (by `now`). */
  private renewedAt = 0;

  constructor(kc: k8s.KubeConfig, options: LeaderOptions) {
    this.api = kc.makeApiClient(k8s.CoordinationV1Api);
    this.options = {
      ...options,
      leaseDurationSeconds: options.leaseDurationSeconds ?? 15,
      renewSeconds: options.renewSeconds ?? 10,
      retrySeconds: options.retrySeconds ?? 2,
      now: options.now ?? Date.now,
    };
  }

  get isLeader(): boolean {
    // Also false the moment the lease could have expired without us noticing.
    return (
      this.leading && this.options.now() - this.renewedAt < this.options.leaseDurationSeconds * 1000
    );
  }

  start(): void {
    this.stopped = false;
    this.runTick();
  }

  private runTick(): void {
    this.ticking = this.tick().finally(() => {
      this.ticking = undefined;
    });
  }

  /** Resolves when the attempt to acquire or renew that is under way (if any) has ended. */
  async settled(): Promise<void> {
    await this.ticking;
  }

  /** Stops; a leader releases the Lease so that a standby takes over at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.ticking; // a renewal in flight would turn the release into a conflict
    if (this.leading) {
      this.setLeading(false);
      try {
        const lease = await this.api.readNamespacedLease({
          name: this.options.name,
          namespace: this.options.namespace,
        });
        if (lease.spec?.holderIdentity === this.options.identity) {
          lease.spec.holderIdentity = undefined;
          lease.spec.leaseDurationSeconds = 1;
          await this.api.replaceNamespacedLease({
            name: this.options.name,
            namespace: this.options.namespace,
            body: lease,
          });
        }
      } catch (error) {
        this.options.log.warn({ error: (error as Error).message }, "could not release the lease");
      }
    }
  }

  private setLeading(leading: boolean): void {
    if (leading === this.leading) return;
    this.leading = leading;
    this.options.log.info(
      { identity: this.options.identity, lease: `${this.options.namespace}/${this.options.name}` },
      leading ? "started leading" : "stopped leading",
    );
    if (leading) this.options.onStartedLeading();
    else this.options.onStoppedLeading();
  }

  private schedule(seconds: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => this.runTick(), seconds * 1000);
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    const ok = await this.tryAcquireOrRenew();
    if (this.stopped) return;
    if (ok) {
      this.renewedAt = this.options.now();
      this.setLeading(true);
      this.schedule(this.options.renewSeconds);
    } else {
      this.setLeading(false);
      this.schedule(this.options.retrySeconds);
    }
  }

  private lease(previous?: k8s.V1Lease): k8s.V1Lease {
    const now = new Date(this.options.now()) as unknown as k8s.V1MicroTime;
    const same = previous?.spec?.holderIdentity === this.options.identity;
    return {
      apiVersion: "coordination.k8s.io/v1",
      kind: "Lease",
      metadata: {
        ...previous?.metadata,
        name: this.options.name,
        namespace: this.options.namespace,
      },
      spec: {
        holderIdentity: this.options.identity,
        leaseDurationSeconds: this.options.leaseDurationSeconds,
        acquireTime: same ? previous?.spec?.acquireTime : now,
        renewTime: now,
        leaseTransitions: (previous?.spec?.leaseTransitions ?? 0) + (same || !previous ? 0 : 1),
      },
    };
  }

  /** True when we hold the Lease after this call. */
  private async tryAcquireOrRenew(): Promise<boolean> {
    const { name, namespace, identity } = this.options;
    let current: k8s.V1Lease;
    try {
      current = await this.api.readNamespacedLease({ name, namespace });
    } catch (error) {
      if (statusOf(error) !== 404) {
        this.options.log.warn({ error: (error as Error).message }, "reading the lease failed");
        return false;
      }
      try {
        await this.api.createNamespacedLease({ namespace, body: this.lease() });
        return true;
      } catch (createError) {
        if (statusOf(createError) !== 409)
          this.options.log.warn(
            { error: (createError as Error).message },
            "creating the lease failed",
          );
        return false;
      }
    }
    const spec = current.spec ?? {};
    const renewed = spec.renewTime ? new Date(spec.renewTime as unknown as string).getTime() : 0;
    const expired =
      renewed + (spec.leaseDurationSeconds ?? this.options.leaseDurationSeconds) * 1000 <=
      this.options.now();
    if (spec.holderIdentity && spec.holderIdentity !== identity && !expired) return false;
    try {
      await this.api.replaceNamespacedLease({ name, namespace, body: this.lease(current) });
      return true;
    } catch (error) {
      if (statusOf(error) !== 409)
        this.options.log.warn({ error: (error as Error).message }, "updating the lease failed");
      return false;
    }
  }
}
