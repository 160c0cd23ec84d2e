import { EventEmitter } from "node:events";
import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "pino";
import { Controller, type SourceLike } from "./controller.ts";
import { serviceKey } from "./desired.ts";
import { HeapExhausted, HeapGuard, type HeapReading } from "./heap-guard.ts";
import { startHttp } from "./http.ts";
import { type KubeClient, kubeClient } from "./kube-client.ts";
import type { KubeConnection } from "./kubeconfig.ts";
import { ApiBudget, KvApiError, kvWriter } from "./kv-writer.ts";
import { LeaderElector, type LeaderRole, type LeaderState } from "./leader.ts";
import { createMetrics, type Metrics } from "./metrics.ts";
import { DEFAULT_URL_TEMPLATE } from "./model.ts";
import type { Plan } from "./plan.ts";
import { backoffMs, TokenBucket } from "./rate-limit.ts";
import type { Selection } from "./records.ts";
import type { Settings } from "./settings.ts";
import { ClusterSource, type ClusterView, listOnce } from "./source.ts";
import { needsNodes } from "./template.ts";

/**
 * Wires the stages together: `--once`/`--dry-run` as one reconcile step over a listed view,
 * otherwise the long-running daemon (caches, leader election, the reconcile loop, HTTP).
 */

export const EXIT_OK = 0;
const EXIT_INCOMPLETE = 3;
/** Passes --once makes before it gives up on keys that failed. */
const ONCE_ATTEMPTS = 5;

const ROLES: LeaderRole[] = ["starting", "leading", "standby", "lease-error", "stopped"];

/** How long a sync whose heap was full waits before it lists the cluster again. */
const HEAP_RETRY_MS = 5 * 60_000;
/** How often the heap is read besides after each page of a list. */
const HEAP_CHECK_MS = 5_000;

const mib = (bytes: number) => Math.round(bytes / 2 ** 20);

function selectionOf(settings: Settings): Selection {
  const trust = {
    templates: settings.allowUrlTemplate,
    bindings: settings.allowTransportBinding,
    externalNames: settings.allowExternalName,
  };
  return settings.serviceSelector === undefined
    ? { trust }
    : { serviceSelector: settings.serviceSelector, trust };
}

function writerOf(settings: Settings) {
  return kvWriter({
    apiToken: settings.apiToken,
    accountId: settings.accountId,
    namespaceId: settings.namespaceId,
    baseUrl: settings.apiBaseUrl,
    budget: new ApiBudget(
      new TokenBucket(settings.apiRatePerSecond, settings.apiBurst, Date.now()),
    ),
  });
}

/** Lines of `--dry-run`: one per planned change, naming the key. */
function describePlan(result: Plan): string[] {
  return [
    ...result.puts.map(
      (p) => `put ${p.key} (${p.endpoints} endpoint${p.endpoints === 1 ? "" : "s"})`,
    ),
    ...result.deletes.map((key) => `delete ${key}`),
    ...result.conflicts.map((c) => `conflict ${c.key}: held by ${c.heldBy}; not written`),
    ...result.refusedDeletes.map(
      (key) =>
        `refused delete ${key}: more than half of the owned pools would go (--allow-mass-delete)`,
    ),
  ];
}

/** A source over one listed view, for --once. */
function staticSource(view: ClusterView): SourceLike {
  const services = [...view.services];
  return {
    healthy: true,
    view: () => ({ ...view, services }),
    serviceView: (key) => ({
      service: services.find((s) => serviceKey(s) === key),
      slices: [...(view.slicesByService.get(key) ?? [])],
    }),
    nodes: () => view.nodes,
    requireNodes: () => view.nodes !== undefined,
  };
}

/** One list → plan → apply (or print), with no Lease request. Returns the exit code. */
export async function runOnce(
  settings: Settings,
  kc: KubeConnection,
  log: Logger,
  out: (line: string) => void,
  client: KubeClient = kubeClient(kc),
): Promise<number> {
  let view: ClusterView;
  try {
    view = await listOnce(
      client,
      selectionOf(settings),
      (services) => [...services].some((s) => needsNodes(s.template ?? DEFAULT_URL_TEMPLATE)),
      log,
    );
  } catch (error) {
    log.error({ error: (error as Error).message }, "listing the cluster failed; nothing written");
    return EXIT_INCOMPLETE;
  }
  const writer = writerOf(settings);
  const metrics = createMetrics();
  const controller = new Controller({
    source: staticSource(view),
    writer,
    owner: settings.owner,
    poolPrefix: settings.poolPrefix,
    allowMassDelete: settings.allowMassDelete,
    resyncMs: Number.POSITIVE_INFINITY,
    batchWindowMs: 0,
    // One look at the cluster cannot tell a Service without slices from slices being replaced.
    emptyGraceMs: Number.POSITIVE_INFINITY,
    isLeader: () => true,
    signal: () => undefined,
    log,
    metrics,
  });
  let requests = 0;
  let attempt = 0;
  /** --once is a job: it retries failures a few times, backing off as the daemon does. */
  const again = async (retryAfter: number | undefined, what: string): Promise<boolean> => {
    if (++attempt >= ONCE_ATTEMPTS) return false;
    const delay = Math.max(backoffMs(attempt, Math.random()), retryAfter ?? 0);
    log.warn({ attempt, retryInMs: delay }, `${what}; retrying`);
    await sleep(delay);
    return true;
  };
  for (;;) {
    try {
      const listed = await writer.listOwnedCandidates();
      requests += listed.requests;
      controller.useStored(listed.keys);
      break;
    } catch (error) {
      if (error instanceof KvApiError) requests += error.requests;
      if (
        await again(
          error instanceof KvApiError ? error.retryAfterMs : undefined,
          "listing KV keys failed",
        )
      )
        continue;
      log.error({ error: (error as Error).message }, "listing KV keys failed; nothing written");
      return EXIT_INCOMPLETE;
    }
  }
  let outcome = await controller.reconcile(Date.now(), undefined, settings.dryRun);
  let written = outcome?.written ?? 0;
  while (outcome && !settings.dryRun && outcome.failed.length > 0) {
    requests += outcome.requests;
    if (!(await again(outcome.retryAfterMs, `${outcome.failed.length} keys were not written`)))
      break;
    outcome = await controller.reconcile(Date.now(), undefined, false);
    written += outcome?.written ?? 0;
  }
  await controller.stop();
  if (!outcome) return EXIT_INCOMPLETE;
  const result = outcome.plan;
  if (settings.dryRun) {
    if (settings.json) {
      out(
        JSON.stringify({
          puts: result.puts.map((p) => ({
            key: p.key,
            endpoints: p.endpoints,
            generation: p.metadata.generation,
          })),
          deletes: result.deletes,
          conflicts: result.conflicts,
          refusedDeletes: result.refusedDeletes,
          held: outcome.held,
          unchanged: result.unchanged,
        }),
      );
    } else {
      for (const line of describePlan(result)) out(line);
      for (const key of outcome.held) out(`held ${key}: its Service has no EndpointSlices`);
      out(
        `${result.puts.length} to put, ${result.deletes.length} to delete, ${result.unchanged} unchanged (dry run: nothing written)`,
      );
    }
    return EXIT_OK;
  }
  if (outcome.held.length > 0)
    log.warn({ held: outcome.held }, "Services without EndpointSlices are not published by --once");
  log.info(
    {
      written,
      deleted: outcome.deleted,
      unchanged: result.unchanged,
      requests: requests + outcome.requests,
      attempts: attempt + 1,
    },
    "applied",
  );
  if (outcome.failed.length > 0) {
    log.error(
      { failed: outcome.failed.slice(0, 20), count: outcome.failed.length },
      "some keys were not written",
    );
    return EXIT_INCOMPLETE;
  }
  return result.refusedDeletes.length > 0 ? EXIT_INCOMPLETE : EXIT_OK;
}

/** The long-running discovery-sync: caches, leader election, the reconcile loop, HTTP. */
export class SyncDaemon {
  readonly metrics: Metrics = createMetrics();
  /** Emits "change" with true or false when this replica starts or stops leading. */
  readonly leadership = new EventEmitter();
  readonly source: ClusterSource;
  readonly controller: Controller;
  readonly elector: LeaderElector;
  httpPort = 0;
  private http: Awaited<ReturnType<typeof startHttp>> | undefined;
  private readonly settings: Settings;
  private readonly log: Logger;
  private readonly guard: HeapGuard;
  private readonly heapRetryMs: number;
  /** Set while the cluster does not fit in the heap: what was read, and what was held. */
  private exhausted:
    | { reading: HeapReading; services: number; endpoints: number; retryAt: number }
    | undefined;
  private heapTimer: ReturnType<typeof setInterval> | undefined;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private stopping = false;

  constructor(
    settings: Settings,
    kc: KubeConnection,
    log: Logger,
    options: {
      needNodes?: boolean;
      retryDelayMs?: number;
      pageSize?: number;
      client?: KubeClient;
      guard?: HeapGuard;
      heapRetryMs?: number;
    } = {},
  ) {
    this.settings = settings;
    this.log = log;
    this.guard = options.guard ?? new HeapGuard();
    this.heapRetryMs = options.heapRetryMs ?? HEAP_RETRY_MS;
    const client = options.client ?? kubeClient(kc);
    this.source = new ClusterSource({
      client,
      selection: selectionOf(settings),
      // Nodes are watched only once a selected Service's URL template names {node} or {nodePort}.
      needNodes: options.needNodes ?? false,
      log,
      onChange: (key) => this.controller.signal(key),
      onError: (resource) => this.metrics.restarts.inc({ resource }),
      retryDelayMs: options.retryDelayMs,
      pageSize: options.pageSize,
      afterPage: () => {
        const reading = this.guard.over();
        if (reading) throw new HeapExhausted(reading);
      },
      onHeapExhausted: (error) => void this.heapExhausted(error.reading),
    });
    this.elector = new LeaderElector({
      client,
      namespace: settings.leaseNamespace,
      name: settings.leaseName,
      identity: settings.identity,
      leaseDurationMs: settings.leaseDurationMs,
      renewDeadlineMs: settings.renewDeadlineMs,
      retryPeriodMs: settings.retryPeriodMs,
      log,
      onStartedLeading: () => {
        this.metrics.leader.set(1);
        this.controller.leadershipChanged();
        this.leadership.emit("change", true);
      },
      onStoppedLeading: () => {
        this.metrics.leader.set(0);
        this.leadership.emit("change", false);
      },
      onState: (state) => this.stateChanged(state),
    });
    this.stateChanged(this.elector.state);
    this.controller = new Controller({
      source: this.source,
      writer: writerOf(settings),
      owner: settings.owner,
      poolPrefix: settings.poolPrefix,
      allowMassDelete: settings.allowMassDelete,
      resyncMs: settings.resyncMs,
      batchWindowMs: settings.batchWindowMs,
      emptyGraceMs: settings.emptyGraceMs,
      isLeader: () => this.elector.isLeader,
      signal: () => this.elector.signal,
      log,
      metrics: this.metrics,
      overHeap: () => {
        const reading = this.guard.over();
        if (reading) void this.heapExhausted(reading);
        return reading !== undefined;
      },
    });
  }

  private stateChanged(state: LeaderState): void {
    for (const role of ROLES)
      this.metrics.leadership.set({ state: role }, role === state.role ? 1 : 0);
    if (state.role === "lease-error")
      this.metrics.leaseErrors.inc({ status: String(state.status ?? 0) });
  }

  /**
   * Ready: every cache synced, and the Lease readable and writable — a standby that can read it
   * is ready; a replica whose Lease calls fail is not, whatever it believed before.
   */
  readiness(): { ok: boolean; detail: Record<string, unknown> } {
    const lease = this.elector.state;
    const caches = this.source.status;
    for (const [resource, status] of Object.entries(caches))
      this.metrics.synced.set({ resource }, status === "synced" ? 1 : 0);
    const leaseOk = lease.role === "leading" || lease.role === "standby";
    const exhausted = this.exhausted;
    const ok = leaseOk && this.source.healthy && exhausted === undefined;
    this.metrics.ready.set(ok ? 1 : 0);
    return {
      ok,
      detail: {
        ready: ok,
        leader: this.elector.isLeader,
        lease: { role: lease.role, reason: lease.reason },
        informers: caches,
        ...(exhausted && {
          heap: {
            reason: "the cluster does not fit in the heap: raise SYNC_HEAP_MB",
            usedMiB: mib(exhausted.reading.usedBytes),
            limitMiB: mib(exhausted.reading.limitBytes),
            services: exhausted.services,
            endpoints: exhausted.endpoints,
            retryAt: new Date(exhausted.retryAt).toISOString(),
          },
        }),
      },
    };
  }

  /** Reads the heap between lists: watch events add to the caches too. */
  private checkHeap(): void {
    if (this.exhausted || this.stopping) return;
    const reading = this.guard.over();
    if (reading) void this.heapExhausted(reading);
  }

  /**
   * The cluster does not fit in the heap. Says so, with what it held and the setting to change;
   * drops every cache and the desired state, so that nothing partial can be written and the
   * process lives on, not ready; and lists again after a while (a cluster can shrink, a
   * compaction can pass).
   */
  private async heapExhausted(reading: HeapReading): Promise<void> {
    if (this.exhausted || this.stopping) return;
    const held = this.source.holding();
    this.exhausted = { reading, ...held, retryAt: Date.now() + this.heapRetryMs };
    this.metrics.heapExhausted.set(1);
    this.log.error(
      {
        usedMiB: mib(reading.usedBytes),
        limitMiB: mib(reading.limitBytes),
        services: held.services,
        endpoints: held.endpoints,
        retryInMs: this.heapRetryMs,
      },
      `the cluster does not fit in the heap: ${held.services} selected Services and ${held.endpoints} endpoints held when ${mib(reading.usedBytes)} of ${mib(reading.limitBytes)} MiB were in use; raise SYNC_HEAP_MB (the image: --max-old-space-size) as docs/deploy.md sizes it. Not ready, nothing written; listing again in ${Math.round(this.heapRetryMs / 1000)} s`,
    );
    await this.source.stop();
    this.source.clear();
    this.controller.forget();
    (globalThis as { gc?: () => void }).gc?.();
    this.retryTimer = setTimeout(() => {
      if (this.stopping) return;
      this.exhausted = undefined;
      this.metrics.heapExhausted.set(0);
      this.log.info("listing the cluster again after the heap was full");
      void this.source.start();
    }, this.heapRetryMs);
  }

  async start(): Promise<void> {
    this.http = await startHttp(this.settings.httpPort, this.metrics, () => this.readiness());
    this.httpPort = this.http.port;
    this.log.info({ port: this.httpPort }, "serving /healthz, /readyz, /metrics");
    this.elector.start();
    this.heapTimer = setInterval(() => this.checkHeap(), HEAP_CHECK_MS);
    this.heapTimer.unref();
    await this.source.start();
  }

  /** Finishes the write in flight (it is still the leader's), releases the Lease, stops. */
  async stop(): Promise<void> {
    this.stopping = true;
    clearInterval(this.heapTimer);
    clearTimeout(this.retryTimer);
    await this.controller.stop();
    await this.elector.stop();
    await this.source.stop();
    await new Promise<void>((resolve) => this.http?.server.close(() => resolve()) ?? resolve());
  }
}
