import type { Logger } from "pino";
import { type KubeClient, KubeError } from "./kube-client.ts";
import { microTime } from "./kube-time.ts";

/**
 * Leader election on a coordination.k8s.io/v1 Lease, with client-go's rules:
 *
 * - Expiry is judged from when this replica *observed* the Lease record change, on its own
 *   clock, never from the holder's renewTime, so clock skew between replicas does not matter.
 * - Writes are optimistic on `metadata.resourceVersion`: a stale replace is a 409 and changes
 *   nothing. Taking the Lease from another holder bumps `leaseTransitions` and `acquireTime`.
 * - The leader renews every `retryPeriodMs`. Its leadership counts from when the last
 *   successful renewal was *sent*, and ends `renewDeadlineMs` later unless renewed again;
 *   `renewDeadlineMs` is shorter than `leaseDurationMs`, so a deposed leader has stopped (and
 *   aborted what it was writing, through `signal`) before any standby may take over.
 * - A standby tries every `retryPeriodMs`. A leader that stops releases the Lease (no holder,
 *   duration 1 s) so that a standby takes over at once.
 *
 * `state` says why this replica leads or not; readiness and metrics read it.
 */

export interface LeaderTimings {
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
}

const DEFAULT_TIMINGS: LeaderTimings = {
  leaseDurationMs: 15_000,
  renewDeadlineMs: 10_000,
  retryPeriodMs: 2_000,
};

/** Why this replica leads or not; `lease-error` and `starting` make it not ready. */
export type LeaderRole = "starting" | "leading" | "standby" | "lease-error" | "stopped";

export interface LeaderState {
  role: LeaderRole;
  /** Human-readable: who holds the Lease, or what failed. */
  reason: string;
  /** HTTP status of the failed Lease call, for `lease-error`. */
  status?: number;
}

export interface LeaderOptions extends Partial<LeaderTimings> {
  client: KubeClient;
  namespace: string;
  name: string;
  identity: string;
  now?: () => number;
  log: Logger;
  onStartedLeading: () => void;
  onStoppedLeading: () => void;
  onState?: (state: LeaderState) => void;
}

interface LeaseSpec {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
}

interface Lease {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; namespace?: string; resourceVersion?: string; [k: string]: unknown };
  spec?: LeaseSpec;
}

/** Lease timings must leave the renew deadline inside the lease, as client-go requires. */
export function timingProblems(t: LeaderTimings): string[] {
  const problems: string[] = [];
  if (t.renewDeadlineMs >= t.leaseDurationMs)
    problems.push("the renew deadline must be shorter than the lease duration");
  if (t.retryPeriodMs * 1.2 >= t.renewDeadlineMs)
    problems.push(
      "the retry period must be well below the renew deadline (1.2 × retry < deadline)",
    );
  if (t.leaseDurationMs % 1000 !== 0) problems.push("the lease duration must be whole seconds");
  return problems;
}

export class LeaderElector {
  private readonly options: LeaderOptions & LeaderTimings & { now: () => number };
  private readonly path: string;
  private leading = false;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private deadline: ReturnType<typeof setTimeout> | undefined;
  private ticking: Promise<void> | undefined;
  private stopped = true;
  /** When the last successful renewal was sent (by `now`). */
  private renewedAt = Number.NEGATIVE_INFINITY;
  /** The last Lease record seen, and when (by `now`) it was first seen. */
  private observed: { record: string; at: number } | undefined;
  private abort = new AbortController();
  private current: LeaderState = { role: "starting", reason: "no Lease request made yet" };

  constructor(options: LeaderOptions) {
    this.options = {
      ...DEFAULT_TIMINGS,
      ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)),
      now: options.now ?? Date.now,
    } as LeaderOptions & LeaderTimings & { now: () => number };
    this.abort.abort();
    this.path = `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(options.namespace)}/leases`;
  }

  get isLeader(): boolean {
    return this.leading && this.options.now() - this.renewedAt < this.options.renewDeadlineMs;
  }

  /** Aborted the moment this replica stops leading: tie every write to it. */
  get signal(): AbortSignal {
    return this.abort.signal;
  }

  get state(): LeaderState {
    return this.current;
  }

  start(): void {
    this.stopped = false;
    this.runTick();
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
    const wasLeading = this.isLeader;
    this.setLeading(false);
    this.setState({ role: "stopped", reason: "stopped" });
    if (!wasLeading) return;
    try {
      const lease = await this.get();
      if (lease?.spec?.holderIdentity !== this.options.identity) return;
      const now = microTime(this.options.now());
      await this.options.client.request("PUT", `${this.path}/${this.options.name}`, {
        body: {
          ...lease,
          spec: {
            leaseDurationSeconds: 1,
            acquireTime: now,
            renewTime: now,
            leaseTransitions: lease.spec?.leaseTransitions ?? 0,
          },
        },
        timeoutMs: 5_000,
      });
    } catch (error) {
      this.options.log.warn({ error: (error as Error).message }, "could not release the Lease");
    }
  }

  private runTick(): void {
    this.ticking = this.tick().finally(() => {
      this.ticking = undefined;
    });
  }

  private setState(next: LeaderState): void {
    const before = this.current;
    this.current = next;
    this.options.onState?.(next);
    if (before.role === next.role && before.reason === next.reason) return;
    const fields = {
      lease: `${this.options.namespace}/${this.options.name}`,
      identity: this.options.identity,
      role: next.role,
      reason: next.reason,
    };
    if (next.role === "lease-error") this.options.log.warn(fields, `not leading: ${next.reason}`);
    else if (next.role === "standby") this.options.log.info(fields, `standing by: ${next.reason}`);
  }

  private setLeading(leading: boolean): void {
    if (leading === this.leading) return;
    this.leading = leading;
    this.options.log.info(
      { identity: this.options.identity, lease: `${this.options.namespace}/${this.options.name}` },
      leading ? "started leading" : "stopped leading",
    );
    if (leading) {
      this.abort = new AbortController();
      this.options.onStartedLeading();
    } else {
      clearTimeout(this.deadline);
      this.abort.abort(new Error("no longer the leader"));
      this.options.onStoppedLeading();
    }
  }

  /** Leadership ends at the renew deadline unless a renewal moves it. */
  private armDeadline(): void {
    clearTimeout(this.deadline);
    const left = this.renewedAt + this.options.renewDeadlineMs - this.options.now();
    this.deadline = setTimeout(
      () => {
        if (this.leading && !this.isLeader) {
          this.setState({
            role: "lease-error",
            reason: "the Lease was not renewed within the renew deadline",
          });
          this.setLeading(false);
        }
      },
      Math.max(0, left),
    );
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => this.runTick(), ms);
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    const sentAt = this.options.now();
    const ok = await this.tryAcquireOrRenew(sentAt);
    if (this.stopped) return;
    if (ok) {
      this.renewedAt = sentAt;
      this.setState({ role: "leading", reason: "holds the Lease" });
      if (this.options.now() - sentAt < this.options.renewDeadlineMs) {
        this.setLeading(true);
        this.armDeadline();
      }
    } else if (this.leading && (!this.isLeader || this.current.role === "standby")) {
      this.setLeading(false); // past the deadline, or another replica holds the Lease now
    }
    this.schedule(this.options.retryPeriodMs);
  }

  /** Each Lease call must end before the leader's deadline, and within a retry period otherwise. */
  private timeoutMs(): number {
    const { renewDeadlineMs, retryPeriodMs, now } = this.options;
    if (this.leading) return Math.max(100, this.renewedAt + renewDeadlineMs - now());
    return Math.max(1_000, retryPeriodMs);
  }

  private async get(): Promise<Lease | undefined> {
    try {
      return await this.options.client.request<Lease>("GET", `${this.path}/${this.options.name}`, {
        timeoutMs: this.timeoutMs(),
      });
    } catch (error) {
      if (error instanceof KubeError && error.status === 404) return undefined;
      throw error;
    }
  }

  private failed(what: string, error: unknown): false {
    const status = error instanceof KubeError ? error.status : undefined;
    const message = (error as Error).message;
    const hint =
      status === 403
        ? " (RBAC: the Role must allow get and update of this Lease name, and create of Leases)"
        : "";
    this.setState({
      role: "lease-error",
      reason: `${what} the Lease failed: ${status ? `${status} ` : ""}${message}${hint}`,
      ...(status ? { status } : {}),
    });
    return false;
  }

  /** A write that lost: a 409 means another replica was first (standby), anything else failed. */
  private lost(error: unknown, what: string, conflict: string): false {
    if (error instanceof KubeError && error.status === 409) {
      this.setState({ role: "standby", reason: conflict });
      return false;
    }
    return this.failed(what, error);
  }

  private spec(previous: LeaseSpec | undefined, now: number): LeaseSpec {
    const same = previous?.holderIdentity === this.options.identity;
    return {
      holderIdentity: this.options.identity,
      leaseDurationSeconds: this.options.leaseDurationMs / 1000,
      acquireTime: same && previous?.acquireTime ? previous.acquireTime : microTime(now),
      renewTime: microTime(now),
      leaseTransitions: (previous?.leaseTransitions ?? 0) + (same || !previous ? 0 : 1),
    };
  }

  /** True when this replica holds the Lease after this call. */
  private async tryAcquireOrRenew(sentAt: number): Promise<boolean> {
    const { client, name, namespace, identity, now } = this.options;
    let current: Lease | undefined;
    try {
      current = await this.get();
    } catch (error) {
      return this.failed("reading", error);
    }
    if (current === undefined) {
      try {
        const created = await client.request<Lease>("POST", this.path, {
          body: {
            apiVersion: "coordination.k8s.io/v1",
            kind: "Lease",
            metadata: { name, namespace },
            spec: this.spec(undefined, sentAt),
          },
          timeoutMs: this.timeoutMs(),
        });
        this.observe(created.spec);
        return true;
      } catch (error) {
        return this.lost(error, "creating", "another replica created the Lease first");
      }
    }
    this.observe(current.spec);
    const holder = current.spec?.holderIdentity;
    const durationMs = (current.spec?.leaseDurationSeconds ?? 0) * 1000;
    const observedAt = this.observed?.at ?? now();
    if (holder && holder !== identity && observedAt + durationMs > now()) {
      this.setState({ role: "standby", reason: `held by ${holder}` });
      return false;
    }
    try {
      const updated = await client.request<Lease>("PUT", `${this.path}/${name}`, {
        body: { ...current, spec: this.spec(current.spec, sentAt) },
        timeoutMs: this.timeoutMs(),
      });
      this.observe(updated.spec);
      return true;
    } catch (error) {
      return this.lost(error, "updating", "another replica updated the Lease first");
    }
  }

  private observe(spec: LeaseSpec | undefined): void {
    const record = JSON.stringify([
      spec?.holderIdentity ?? "",
      spec?.leaseDurationSeconds,
      spec?.acquireTime,
      spec?.renewTime,
      spec?.leaseTransitions,
    ]);
    if (this.observed?.record !== record) this.observed = { record, at: this.options.now() };
  }
}
