import { EventEmitter } from "node:events";
import type * as k8s from "@kubernetes/client-node";
import type { Logger } from "pino";
import { Controller } from "./controller.ts";
import { desiredState, type Selection } from "./desired.ts";
import { startHttp } from "./http.ts";
import { kvWriter } from "./kv-writer.ts";
import { LeaderElector } from "./leader.ts";
import { createMetrics, type Metrics } from "./metrics.ts";
import { DEFAULT_URL_TEMPLATE, URL_TEMPLATE_ANNOTATION } from "./model.ts";
import { type Plan, plan } from "./plan.ts";
import type { Settings } from "./settings.ts";
import { ClusterSource, listOnce } from "./source.ts";
import { needsNodes } from "./template.ts";

/** Wires the stages together: `--once`/`--dry-run` as one pass, otherwise the long-running loop. */

export const EXIT_OK = 0;
export const EXIT_INCOMPLETE = 3;

function selectionOf(settings: Settings): Selection {
  return settings.serviceSelector === undefined
    ? {}
    : { serviceSelector: settings.serviceSelector };
}

function writerOf(settings: Settings) {
  return kvWriter({
    apiToken: settings.apiToken,
    accountId: settings.accountId,
    namespaceId: settings.namespaceId,
    baseUrl: settings.apiBaseUrl,
  });
}

/** Lines of `--dry-run`: one per planned change, naming the key. */
export function describePlan(result: Plan): string[] {
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

/** One list → plan → apply (or print), with no Lease request. Returns the exit code. */
export async function runOnce(
  settings: Settings,
  kc: k8s.KubeConfig,
  log: Logger,
  out: (line: string) => void,
): Promise<number> {
  let view: Awaited<ReturnType<typeof listOnce>>;
  try {
    // Node objects are listed only when some selected Service's template needs them; listing
    // Services first would cost another request, so ask for them whenever the cluster has
    // any Service annotated with such a template.
    view = await listOnce(kc, false);
    const wantNodes = view.services.some((s) =>
      needsNodes(s.metadata?.annotations?.[URL_TEMPLATE_ANNOTATION] ?? DEFAULT_URL_TEMPLATE),
    );
    if (wantNodes) view = await listOnce(kc, true);
  } catch (error) {
    log.error({ error: (error as Error).message }, "listing the cluster failed; nothing written");
    return EXIT_INCOMPLETE;
  }
  const { pools, problems } = desiredState({
    cluster: settings.clusterFlag,
    selection: selectionOf(settings),
    ...view,
  });
  for (const problem of problems) log.warn({ service: problem.service }, problem.message);
  const writer = writerOf(settings);
  let stored: Awaited<ReturnType<typeof writer.listOwnedCandidates>>;
  try {
    stored = await writer.listOwnedCandidates();
  } catch (error) {
    log.error({ error: (error as Error).message }, "listing KV keys failed; nothing written");
    return EXIT_INCOMPLETE;
  }
  const result = plan(pools, stored, {
    cluster: settings.cluster,
    now: new Date().toISOString(),
    allowMassDelete: settings.allowMassDelete,
  });
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
          unchanged: result.unchanged,
        }),
      );
    } else {
      for (const line of describePlan(result)) out(line);
      out(
        `${result.puts.length} to put, ${result.deletes.length} to delete, ${result.unchanged} unchanged (dry run: nothing written)`,
      );
    }
    return EXIT_OK;
  }
  for (const conflict of result.conflicts)
    log.error(conflict, "conflict: the key of a desired pool is held by someone else; not written");
  const applied = await writer.apply(result.puts, result.deletes, () => true);
  log.info(
    {
      written: applied.written.length,
      deleted: applied.deleted.length,
      unchanged: result.unchanged,
      requests: applied.requests + 1,
    },
    "applied",
  );
  if (applied.failed.length > 0) {
    log.error(
      { failed: applied.failed.slice(0, 20), count: applied.failed.length },
      "some keys were not written",
    );
    return EXIT_INCOMPLETE;
  }
  if (result.refusedDeletes.length > 0) {
    log.error(
      { refused: result.refusedDeletes },
      "refused to delete more than half of the owned pools; pass --allow-mass-delete if this is intended",
    );
    return EXIT_INCOMPLETE;
  }
  return EXIT_OK;
}

/** The long-running discovery-sync: informers, leader election, the controller, HTTP. */
export class SyncService {
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

  constructor(
    settings: Settings,
    kc: k8s.KubeConfig,
    log: Logger,
    options: {
      needNodes?: boolean;
      leaseDurationSeconds?: number;
      renewSeconds?: number;
      retrySeconds?: number;
    } = {},
  ) {
    this.settings = settings;
    this.log = log;
    this.source = new ClusterSource(kc, {
      // Nodes are watched only once a selected Service's URL template names {node} or {nodePort}.
      needNodes: options.needNodes ?? false,
      log,
      onChange: (key) => this.controller.signal(key),
      onRestart: (resource) => this.metrics.restarts.inc({ resource }),
    });
    this.elector = new LeaderElector(kc, {
      namespace: settings.leaseNamespace,
      name: `switchyard-sync-${settings.cluster}`,
      identity: settings.identity,
      leaseDurationSeconds: options.leaseDurationSeconds,
      renewSeconds: options.renewSeconds,
      retrySeconds: options.retrySeconds,
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
    });
    this.controller = new Controller({
      source: this.source,
      writer: writerOf(settings),
      cluster: settings.cluster,
      poolPrefix: settings.clusterFlag,
      selection: selectionOf(settings),
      allowMassDelete: settings.allowMassDelete,
      resyncMs: settings.resyncMs,
      isLeader: () => this.elector.isLeader,
      log,
      metrics: this.metrics,
    });
  }

  async start(): Promise<void> {
    this.http = await startHttp(this.settings.httpPort, this.metrics, () => ({
      ok: this.source.healthy,
      detail: { informers: this.source.status, leader: this.elector.isLeader },
    }));
    this.httpPort = this.http.port;
    this.log.info({ port: this.httpPort }, "serving /healthz, /readyz, /metrics");
    this.elector.start();
    await this.source.start();
  }

  /** Finishes the write in flight, releases the Lease, stops. */
  async stop(): Promise<void> {
    await this.controller.stop();
    await this.elector.stop();
    await this.source.stop();
    await new Promise<void>((resolve) => this.http?.server.close(() => resolve()) ?? resolve());
  }
}
