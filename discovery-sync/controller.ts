import type { Logger } from "pino";
import { isOwnedBy } from "../contract/index.ts";
import { type DesiredPool, type DesiredProblem, desiredForService, serviceKey } from "./desired.ts";
import { KvApiError, type KvWriter } from "./kv-writer.ts";
import type { Metrics } from "./metrics.ts";
import { DEFAULT_URL_TEMPLATE, type ServiceRecord } from "./model.ts";
import { bodyHash, type Plan, type Put, plan, type StoredKey } from "./plan.ts";
import { backoffMs, KeyWriteLimiter } from "./rate-limit.ts";
import { ALL, type ClusterView } from "./source.ts";
import { needsNodes } from "./template.ts";

/**
 * The reconcile loop: signals mark Services dirty; a pass recomputes their pools from the
 * caches, plans against what KV holds, and applies what the limits allow now, scheduling
 * another pass for the rest. Passes never overlap; signals during a pass start another one
 * after it. Nothing is written unless this replica leads and every cache is synced.
 *
 * Manners with the Cloudflare API: at most one write pass per batch window (changes in between
 * merge into one bulk request), one write per key per second, every request through the shared
 * token bucket (kv-writer.ts), keys that failed retried together on a later pass, and failures
 * backing off exponentially with jitter (or as long as a 429's Retry-After asks, capped). A
 * periodic resync re-lists KV and recomputes everything, which repairs drift. `--once` runs
 * the same pass once over a listed view.
 */

export interface SourceLike {
  readonly healthy: boolean;
  view(): ClusterView;
  serviceView(key: string): {
    service: ServiceRecord | undefined;
    slices: ClusterView["slicesByService"] extends ReadonlyMap<string, infer S> ? S : never;
  };
  nodes(): ClusterView["nodes"];
  /** Whether Nodes are cached; asking starts watching them. */
  requireNodes(): boolean;
}

export interface ControllerOptions {
  source: SourceLike;
  writer: KvWriter;
  /** Owner id written in KV metadata. */
  owner: string;
  /** Prefix of pool names; undefined without --cluster. */
  poolPrefix: string | undefined;
  allowMassDelete: boolean;
  resyncMs: number;
  /** At most one write pass per this long. */
  batchWindowMs: number;
  /** A Service without slices is published as an empty pool only after this long. */
  emptyGraceMs: number;
  isLeader: () => boolean;
  /** Aborted when this replica stops leading: every KV request carries it. */
  signal: () => AbortSignal | undefined;
  now?: () => number;
  random?: () => number;
  log: Logger;
  metrics: Metrics;
  /**
   * Read every few hundred Services while the desired state is computed: true when the heap
   * cannot take more, and the pass stops before it writes anything.
   */
  overHeap?: () => boolean;
}

/** Services recomputed between two readings of the heap. */
const HEAP_CHECK_EVERY = 256;

/** What one pass did, for --once and --dry-run. */
export interface PassResult {
  plan: Plan;
  written: number;
  deleted: number;
  failed: { key: string; reason: string }[];
  requests: number;
  held: string[];
  /** Some keys wait for their one-write-a-second slot: another pass is due then. */
  deferredUntil?: number;
}

export class Controller {
  private stored: Map<string, StoredKey> | undefined;
  private readonly desired = new Map<string, DesiredPool>();
  private readonly keysOfService = new Map<string, string[]>();
  private readonly problems = new Map<string, DesiredProblem[]>();
  private readonly dirty = new Set<string>();
  private dirtyAll = true;
  private readonly pendingSince = new Map<string, number>();
  private readonly noSlicesSince = new Map<string, number>();
  private readonly limiter = new KeyWriteLimiter();
  private lastResync = Number.NEGATIVE_INFINITY;
  private lastWrite = Number.NEGATIVE_INFINITY;
  private failures = 0;
  private backoffUntil = Number.NEGATIVE_INFINITY;
  private running: Promise<void> | undefined;
  private again = false;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private timerAt = Number.POSITIVE_INFINITY;
  private stopped = false;
  private readonly reportedConflicts = new Set<string>();
  private readonly options: ControllerOptions;
  private readonly now: () => number;
  private readonly random: () => number;

  constructor(options: ControllerOptions) {
    this.options = options;
    this.now = options.now ?? Date.now;
    this.random = options.random ?? Math.random;
  }

  /**
   * Something about this Service (or, with "*", anything) changed. The pass runs at once when
   * no write went out within the batch window, else when the window ends: signals in between
   * (a burst of events) are merged into that one pass.
   */
  signal(key: string): void {
    const now = this.now();
    if (key === ALL) this.dirtyAll = true;
    else {
      this.dirty.add(key);
      if (!this.pendingSince.has(key)) this.pendingSince.set(key, now);
    }
    this.kickAt(Math.max(now, this.lastWrite + this.options.batchWindowMs));
  }

  /** Drops the desired state (the caches were dropped): recomputed in full when they are back. */
  forget(): void {
    this.desired.clear();
    this.keysOfService.clear();
    this.problems.clear();
    this.dirty.clear();
    this.dirtyAll = true;
  }

  /** Leadership changed: a new leader re-reads KV before it writes. */
  leadershipChanged(): void {
    this.stored = undefined;
    this.dirtyAll = true;
    this.kick();
  }

  /** Starts a pass now, or after the running one. */
  kick(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.pass().finally(() => {
      this.running = undefined;
      if (this.again) {
        this.again = false;
        this.kick();
      }
    });
  }

  private kickAt(at: number): void {
    if (this.stopped || at >= this.timerAt) return;
    clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(
      () => {
        this.timerAt = Number.POSITIVE_INFINITY;
        this.kick();
      },
      Math.max(0, at - this.now()),
    );
  }

  /** Waits for the pass in flight, then stops scheduling new ones. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  /** Resolves when no pass is running. */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  private needsNodes(service: ServiceRecord): boolean {
    return needsNodes(service.template ?? DEFAULT_URL_TEMPLATE);
  }

  /**
   * Recomputes the dirty Services; false when it must wait for the Node cache first, or when
   * the heap is full (the daemon then drops everything).
   */
  private recompute(): boolean {
    const { source, poolPrefix } = this.options;
    if (this.dirtyAll) {
      const view = source.view();
      const services = [...view.services];
      if (services.some((s) => this.needsNodes(s)) && !source.requireNodes()) return false;
      this.dirtyAll = false;
      this.dirty.clear();
      this.desired.clear();
      this.keysOfService.clear();
      this.problems.clear();
      const nodes = source.nodes();
      let done = 0;
      for (const service of services) {
        if (++done % HEAP_CHECK_EVERY === 0 && this.options.overHeap?.()) return false;
        const key = serviceKey(service);
        this.adopt(
          key,
          desiredForService(service, view.slicesByService.get(key) ?? [], poolPrefix, nodes),
        );
      }
      return true;
    }
    for (const key of this.dirty) {
      const { service } = source.serviceView(key);
      if (service && this.needsNodes(service) && !source.requireNodes()) return false;
    }
    const nodes = this.dirty.size > 0 ? source.nodes() : undefined;
    let done = 0;
    for (const key of this.dirty) {
      if (++done % HEAP_CHECK_EVERY === 0 && this.options.overHeap?.()) return false;
      for (const poolKey of this.keysOfService.get(key) ?? []) this.desired.delete(poolKey);
      this.keysOfService.delete(key);
      this.problems.delete(key);
      const { service, slices } = source.serviceView(key);
      if (service) this.adopt(key, desiredForService(service, slices, poolPrefix, nodes));
    }
    this.dirty.clear();
    return true;
  }

  /** Takes one Service's recomputed pools and problems as the desired state. */
  private adopt(
    service: string,
    result: { pools: DesiredPool[]; problems: DesiredProblem[] },
  ): void {
    for (const pool of result.pools) {
      pool.hash = bodyHash(pool.body);
      this.desired.set(pool.key, pool);
    }
    this.keysOfService.set(
      service,
      result.pools.map((p) => p.key),
    );
    if (result.problems.length) this.problems.set(service, result.problems);
  }

  /** Pools whose Service has no slices and is within its grace period. */
  private held(now: number): Set<string> {
    const hold = new Set<string>();
    for (const key of this.noSlicesSince.keys())
      if (!this.desired.get(key)?.noSlices) this.noSlicesSince.delete(key);
    for (const pool of this.desired.values()) {
      if (!pool.noSlices) continue;
      const since = this.noSlicesSince.get(pool.key) ?? now;
      this.noSlicesSince.set(pool.key, since);
      if (now - since < this.options.emptyGraceMs) {
        hold.add(pool.key);
        this.kickAt(since + this.options.emptyGraceMs);
      }
    }
    return hold;
  }

  /** A request failed: wait before the next, exponentially, or as long as Retry-After asks. */
  private backOff(retryAfterMs: number | undefined): void {
    this.failures++;
    const delay = Math.max(backoffMs(this.failures, this.random()), retryAfterMs ?? 0);
    this.backoffUntil = this.now() + delay;
    this.options.metrics.backoff.set(delay / 1000);
    if (retryAfterMs !== undefined) this.options.metrics.rateLimited.inc();
    this.kickAt(this.backoffUntil);
  }

  private succeeded(): void {
    this.failures = 0;
    this.options.metrics.backoff.set(0);
  }

  private async pass(): Promise<void> {
    const { options } = this;
    if (!options.isLeader() || !options.source.healthy) return; // signals stay marked for later
    const now = this.now();
    if (now < this.backoffUntil) return this.kickAt(this.backoffUntil);
    const signal = options.signal();
    if (!this.stored || now - this.lastResync >= options.resyncMs) {
      try {
        const { keys, requests } = await options.writer.listOwnedCandidates(signal);
        options.metrics.requests.inc(requests);
        this.stored = new Map(keys.map((k) => [k.key, k]));
        this.lastResync = now;
        this.dirtyAll = true;
        this.succeeded();
      } catch (error) {
        if (signal?.aborted) return;
        options.metrics.errors.inc({ kind: "kv-list" });
        if (error instanceof KvApiError) options.metrics.requests.inc(error.requests);
        options.log.error(
          { error: (error as Error).message },
          "listing KV keys failed; nothing written",
        );
        this.backOff(error instanceof KvApiError ? error.retryAfterMs : undefined);
        return;
      }
    }
    // The caches may have started a relist or a re-fetch while KV was listed.
    if (!options.source.healthy) return;
    const outcome = await this.reconcile(now, signal, false);
    if (outcome === undefined) return;
    if (outcome.failed.length > 0 && !signal?.aborted) {
      options.metrics.errors.inc({ kind: "kv-write" }, outcome.failed.length);
      options.log.error(
        { failed: outcome.failed.slice(0, 10), count: outcome.failed.length },
        "some keys were not written; retrying them together after a back-off",
      );
      this.backOff(outcome.retryAfterMs);
    } else if (outcome.requests > 0) this.succeeded();
    this.kickAt(this.lastResync + options.resyncMs);
  }

  /**
   * One reconcile step: recompute, plan, and apply what the limits allow now (or, with
   * `dryRun`, nothing). Undefined when the Node cache must be listed first.
   */
  async reconcile(
    now: number,
    signal: AbortSignal | undefined,
    dryRun: boolean,
  ): Promise<(PassResult & { retryAfterMs?: number }) | undefined> {
    const { options } = this;
    const started = performance.now();
    if (!this.recompute()) return undefined; // the Node cache is starting; its listing signals
    const recomputed = performance.now();
    const hold = this.held(now);
    const result = plan(this.desired, [...(this.stored?.values() ?? [])], {
      cluster: options.owner,
      now: new Date(now).toISOString(),
      allowMassDelete: options.allowMassDelete,
      hold,
    });
    const timing = {
      recomputeMs: Math.round(recomputed - started),
      planMs: Math.round(performance.now() - recomputed),
    };
    this.report(result, hold);
    const waiting = new Set(result.puts.map((p) => p.service));
    for (const service of this.pendingSince.keys())
      if (!waiting.has(service)) this.pendingSince.delete(service);
    const outcome: PassResult = {
      plan: result,
      written: 0,
      deleted: 0,
      failed: [],
      requests: 0,
      held: [...hold],
    };
    if (dryRun || (result.puts.length === 0 && result.deletes.length === 0)) return outcome;
    if (now < this.lastWrite + options.batchWindowMs) {
      this.kickAt(this.lastWrite + options.batchWindowMs); // merge with what comes meanwhile
      return outcome;
    }
    const ready: Put[] = [];
    let later = Number.POSITIVE_INFINITY;
    for (const put of result.puts) {
      const allowed = this.limiter.nextAllowed(put.key);
      if (allowed <= now) ready.push(put);
      else later = Math.min(later, allowed);
    }
    const deletes = result.deletes.filter((key) => {
      const allowed = this.limiter.nextAllowed(key);
      if (allowed > now) later = Math.min(later, allowed);
      return allowed <= now;
    });
    if (later < Number.POSITIVE_INFINITY) {
      this.kickAt(later);
      outcome.deferredUntil = later;
    }
    this.limiter.prune(now);
    if (ready.length === 0 && deletes.length === 0) return outcome;
    return { ...outcome, ...(await this.apply(ready, deletes, signal, timing)) };
  }

  private async apply(
    puts: Put[],
    deletes: string[],
    signal: AbortSignal | undefined,
    timing: { recomputeMs: number; planMs: number },
  ) {
    const { writer, metrics, log } = this.options;
    const sent = performance.now();
    const applied = await writer.apply(puts, deletes, signal);
    const writeMs = Math.round(performance.now() - sent);
    metrics.requests.inc(applied.requests);
    // The window and each key's interval count from when the answer came: the next write of a
    // key then reaches KV at least that long after this one did, and keys held by either are
    // all free again when the next window opens.
    const done = this.now();
    this.lastWrite = done;
    for (const key of [...applied.written, ...applied.deleted]) this.limiter.written(key, done);
    const byKey = new Map(puts.map((p) => [p.key, p]));
    for (const key of applied.written) {
      const put = byKey.get(key) as Put;
      this.stored?.set(key, { key, metadata: put.metadata });
      const since = this.pendingSince.get(put.service);
      if (since !== undefined) {
        metrics.latency.observe((done - since) / 1000);
        this.pendingSince.delete(put.service);
      }
    }
    for (const key of applied.deleted) this.stored?.delete(key);
    metrics.writes.inc({ operation: "put" }, applied.written.length);
    metrics.writes.inc({ operation: "delete" }, applied.deleted.length);
    metrics.pendingKeys.set(applied.failed.length);
    if (applied.written.length || applied.deleted.length) {
      log.info(
        {
          written: applied.written.length,
          deleted: applied.deleted.length,
          requests: applied.requests,
          ...timing,
          writeMs,
        },
        "applied",
      );
    }
    return {
      written: applied.written.length,
      deleted: applied.deleted.length,
      failed: applied.failed,
      requests: applied.requests,
      ...(applied.retryAfterMs === undefined ? {} : { retryAfterMs: applied.retryAfterMs }),
    };
  }

  private report(result: Plan, hold: ReadonlySet<string>): void {
    const { metrics, log } = this.options;
    metrics.pools.set(this.desired.size);
    let endpoints = 0;
    for (const pool of this.desired.values()) endpoints += pool.body.endpoints.length;
    metrics.endpoints.set(endpoints);
    metrics.conflicts.set(result.conflicts.length);
    metrics.held.set(hold.size);
    for (const conflict of result.conflicts) {
      if (this.reportedConflicts.has(conflict.key)) continue;
      this.reportedConflicts.add(conflict.key);
      log.error(
        { key: conflict.key, heldBy: conflict.heldBy },
        "conflict: the key of a desired pool is held by someone else; not written",
      );
    }
    if (result.refusedDeletes.length > 0) {
      metrics.errors.inc({ kind: "mass-delete-refused" });
      log.error(
        {
          refused: result.refusedDeletes.length,
          owned: [...(this.stored?.values() ?? [])].filter((k) =>
            isOwnedBy(k.metadata, this.options.owner),
          ).length,
        },
        "refusing to delete more than half of the owned pools; pass --allow-mass-delete if this is intended",
      );
    }
    for (const [service, problems] of this.problems) {
      for (const problem of problems) log.warn({ service }, problem.message);
    }
    this.problems.clear();
  }

  /** For --once: KV's keys as listed, instead of listing them in a pass. */
  useStored(keys: readonly StoredKey[]): void {
    this.stored = new Map(keys.map((k) => [k.key, k]));
    this.lastResync = this.now();
  }
}
