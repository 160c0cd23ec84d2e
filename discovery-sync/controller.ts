import type { Logger } from "pino";
import {
  type DesiredPool,
  type DesiredProblem,
  desiredForService,
  isSelected,
  type Selection,
} from "./desired.ts";
import type { KvWriter } from "./kv-writer.ts";
import type { Metrics } from "./metrics.ts";
import { DEFAULT_URL_TEMPLATE, objectKey, URL_TEMPLATE_ANNOTATION } from "./model.ts";
import { bodyHash, type Plan, type Put, plan, type StoredKey } from "./plan.ts";
import { KeyWriteLimiter } from "./rate-limit.ts";
import { ALL, type ClusterView } from "./source.ts";
import { needsNodes } from "./template.ts";

/**
 * The loop of a running discovery-sync: signals mark Services dirty; a pass recomputes their
 * pools from the informer caches, plans against what KV holds, and applies what the per-key rate
 * limit allows now, scheduling another pass for the rest. Passes never overlap; signals during a
 * pass start another one after it. Nothing is written unless this replica leads and every
 * informer is synced and healthy. A periodic resync re-lists KV and recomputes everything, which
 * repairs drift.
 */

export interface SourceLike {
  readonly healthy: boolean;
  view(): ClusterView;
  serviceView(key: string): {
    service: ClusterView["services"][number] | undefined;
    slices: ClusterView["slicesByService"] extends Map<string, infer S> ? S : never;
  };
  nodes(): ClusterView["nodes"];
  /** Whether Nodes are cached; asking starts watching them. */
  requireNodes(): boolean;
}

export interface ControllerOptions {
  source: SourceLike;
  writer: KvWriter;
  cluster: string;
  /** Prefix of pool names; undefined without --cluster. */
  poolPrefix: string | undefined;
  selection: Selection;
  allowMassDelete: boolean;
  resyncMs: number;
  isLeader: () => boolean;
  now?: () => number;
  log: Logger;
  metrics: Metrics;
}

/** A pass found failures: try again after this long. */
const RETRY_MS = 2_000;

export class Controller {
  private stored: Map<string, StoredKey> | undefined;
  private readonly desired = new Map<string, DesiredPool>();
  private readonly keysOfService = new Map<string, string[]>();
  private readonly problems = new Map<string, DesiredProblem[]>();
  private readonly dirty = new Set<string>();
  private dirtyAll = true;
  private readonly pendingSince = new Map<string, number>();
  private readonly limiter = new KeyWriteLimiter();
  private lastResync = Number.NEGATIVE_INFINITY;
  private running: Promise<void> | undefined;
  private again = false;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private timerAt = Number.POSITIVE_INFINITY;
  private stopped = false;
  private readonly reportedConflicts = new Set<string>();
  private readonly options: ControllerOptions;
  private readonly now: () => number;

  constructor(options: ControllerOptions) {
    this.options = options;
    this.now = options.now ?? Date.now;
  }

  /** Something about this Service (or, with "*", anything) changed. */
  signal(serviceKey: string): void {
    if (serviceKey === ALL) this.dirtyAll = true;
    else {
      this.dirty.add(serviceKey);
      if (!this.pendingSince.has(serviceKey)) this.pendingSince.set(serviceKey, this.now());
    }
    this.kick();
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

  private needsNodes(service: ClusterView["services"][number]): boolean {
    return (
      isSelected(service, this.options.selection) &&
      needsNodes(service.metadata?.annotations?.[URL_TEMPLATE_ANNOTATION] ?? DEFAULT_URL_TEMPLATE)
    );
  }

  /** Recomputes the dirty Services; false when it must wait for the Node cache first. */
  private recompute(): boolean {
    const { source, poolPrefix } = this.options;
    if (this.dirtyAll) {
      const view = source.view();
      if (view.services.some((s) => this.needsNodes(s)) && !source.requireNodes()) return false;
      this.dirtyAll = false;
      this.dirty.clear();
      this.desired.clear();
      this.keysOfService.clear();
      this.problems.clear();
      for (const service of view.services) {
        if (!isSelected(service, this.options.selection)) continue;
        const key = objectKey(service.metadata);
        this.adopt(
          key,
          desiredForService(service, view.slicesByService.get(key) ?? [], poolPrefix, view.nodes),
        );
      }
      return true;
    }
    for (const key of this.dirty) {
      const { service } = source.serviceView(key);
      if (service && this.needsNodes(service) && !source.requireNodes()) return false;
    }
    const nodes = this.dirty.size > 0 ? source.nodes() : undefined;
    for (const key of this.dirty) {
      for (const poolKey of this.keysOfService.get(key) ?? []) this.desired.delete(poolKey);
      this.keysOfService.delete(key);
      this.problems.delete(key);
      const { service, slices } = source.serviceView(key);
      if (!service || !isSelected(service, this.options.selection)) continue;
      this.adopt(key, desiredForService(service, slices, poolPrefix, nodes));
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

  private async pass(): Promise<void> {
    const { options } = this;
    const { log, metrics } = options;
    if (!options.isLeader() || !options.source.healthy) return; // signals stay marked for later
    const now = this.now();
    try {
      if (!this.stored || now - this.lastResync >= options.resyncMs) {
        const keys = await options.writer.listOwnedCandidates();
        metrics.requests.inc(Math.max(1, Math.ceil(keys.length / 1000)));
        this.stored = new Map(keys.map((k) => [k.key, k]));
        this.lastResync = now;
        this.dirtyAll = true;
      }
    } catch (error) {
      metrics.errors.inc({ kind: "kv-list" });
      log.error({ error: (error as Error).message }, "listing KV keys failed; nothing written");
      this.kickAt(this.now() + RETRY_MS);
      return;
    }
    if (!this.recompute()) return; // the Node cache is starting; its listing signals again
    const result = plan(this.desired, [...this.stored.values()], {
      cluster: options.cluster,
      now: new Date(now).toISOString(),
      allowMassDelete: options.allowMassDelete,
    });
    this.report(result);
    // No-op services are done: nothing to wait for.
    const waiting = new Set(result.puts.map((p) => p.service));
    for (const service of this.pendingSince.keys())
      if (!waiting.has(service)) this.pendingSince.delete(service);

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
    if (ready.length > 0 || deletes.length > 0) await this.apply(ready, deletes);
    if (later < Number.POSITIVE_INFINITY) this.kickAt(later);
    this.limiter.prune(this.now());
    if (now - this.lastResync >= 0) this.kickAt(this.lastResync + options.resyncMs);
  }

  private async apply(puts: Put[], deletes: string[]): Promise<void> {
    const { writer, metrics, log, isLeader } = this.options;
    const applied = await writer.apply(puts, deletes, isLeader);
    metrics.requests.inc(applied.requests);
    const done = this.now();
    const byKey = new Map(puts.map((p) => [p.key, p]));
    for (const key of applied.written) {
      const put = byKey.get(key) as Put;
      this.stored?.set(key, { key, metadata: put.metadata });
      this.limiter.written(key, done);
      const since = this.pendingSince.get(put.service);
      if (since !== undefined) {
        metrics.latency.observe((done - since) / 1000);
        this.pendingSince.delete(put.service);
      }
    }
    for (const key of applied.deleted) {
      this.stored?.delete(key);
      this.limiter.written(key, done);
    }
    metrics.writes.inc({ operation: "put" }, applied.written.length);
    metrics.writes.inc({ operation: "delete" }, applied.deleted.length);
    if (applied.written.length || applied.deleted.length) {
      log.info(
        {
          written: applied.written.length,
          deleted: applied.deleted.length,
          requests: applied.requests,
        },
        "applied",
      );
    }
    if (applied.failed.length > 0) {
      metrics.errors.inc({ kind: "kv-write" }, applied.failed.length);
      log.error(
        { failed: applied.failed.slice(0, 10), count: applied.failed.length },
        "some keys were not written; retrying",
      );
      this.kickAt(this.now() + RETRY_MS);
    }
  }

  private report(result: Plan): void {
    const { metrics, log } = this.options;
    metrics.pools.set(this.desired.size);
    let endpoints = 0;
    for (const pool of this.desired.values()) endpoints += pool.body.endpoints.length;
    metrics.endpoints.set(endpoints);
    metrics.conflicts.set(result.conflicts.length);
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
        { refused: result.refusedDeletes.length, owned: [...(this.stored?.values() ?? [])].length },
        "refusing to delete more than half of the owned pools; pass --allow-mass-delete if this is intended",
      );
    }
    for (const [service, problems] of this.problems) {
      for (const problem of problems) log.warn({ service }, problem.message);
    }
    this.problems.clear();
  }
}
