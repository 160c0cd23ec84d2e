import { Counter, Gauge, Histogram, Registry } from "prom-client";

/** Prometheus metrics of discovery-sync, on GET /metrics. */
export function createMetrics() {
  const registry = new Registry();
  const metrics = {
    registry,
    writes: new Counter({
      name: "switchyard_sync_kv_writes_total",
      help: "KV keys written or deleted",
      labelNames: ["operation"],
      registers: [registry],
    }),
    requests: new Counter({
      name: "switchyard_sync_kv_requests_total",
      help: "KV REST requests made",
      registers: [registry],
    }),
    errors: new Counter({
      name: "switchyard_sync_errors_total",
      help: "Errors by kind",
      labelNames: ["kind"],
      registers: [registry],
    }),
    pools: new Gauge({
      name: "switchyard_sync_pools",
      help: "Pools this replica wants published",
      registers: [registry],
    }),
    endpoints: new Gauge({
      name: "switchyard_sync_endpoints",
      help: "Endpoints in those pools",
      registers: [registry],
    }),
    conflicts: new Gauge({
      name: "switchyard_sync_conflicts",
      help: "Desired pools whose key is held by someone else",
      registers: [registry],
    }),
    leader: new Gauge({
      name: "switchyard_sync_leader",
      help: "1 while this replica holds the lease",
      registers: [registry],
    }),
    latency: new Histogram({
      name: "switchyard_sync_event_to_kv_seconds",
      help: "From a Kubernetes event to its pool written in KV",
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 1.5, 2, 5, 10, 30],
      registers: [registry],
    }),
    restarts: new Counter({
      name: "switchyard_sync_informer_restarts_total",
      help: "List or watch failures of a cache, each followed by a retry",
      labelNames: ["resource"],
      registers: [registry],
    }),
    leadership: new Gauge({
      name: "switchyard_sync_leadership",
      help: "1 for this replica's leadership state: leading, standby, lease-error, starting, stopped",
      labelNames: ["state"],
      registers: [registry],
    }),
    leaseErrors: new Counter({
      name: "switchyard_sync_lease_errors_total",
      help: "Lease requests that failed, by HTTP status (0: no answer)",
      labelNames: ["status"],
      registers: [registry],
    }),
    ready: new Gauge({
      name: "switchyard_sync_ready",
      help: "1 while /readyz answers 200",
      registers: [registry],
    }),
    synced: new Gauge({
      name: "switchyard_sync_cache_synced",
      help: "1 while a cache has listed and its watch is healthy",
      labelNames: ["resource"],
      registers: [registry],
    }),
    rateLimited: new Counter({
      name: "switchyard_sync_kv_rate_limited_total",
      help: "Cloudflare API answers 429 (rate limited)",
      registers: [registry],
    }),
    backoff: new Gauge({
      name: "switchyard_sync_kv_backoff_seconds",
      help: "Current wait before the next KV request after failures (0: none)",
      registers: [registry],
    }),
    pendingKeys: new Gauge({
      name: "switchyard_sync_kv_pending_keys",
      help: "Keys whose last write or delete failed, waiting for the next pass",
      registers: [registry],
    }),
    heapExhausted: new Gauge({
      name: "switchyard_sync_heap_exhausted",
      help: "1 while the cluster does not fit in the heap (SYNC_HEAP_MB): nothing is held or written",
      registers: [registry],
    }),
    held: new Gauge({
      name: "switchyard_sync_pools_held",
      help: "Pools of Services without EndpointSlices, held within the grace period",
      registers: [registry],
    }),
  };
  return metrics;
}

export type Metrics = ReturnType<typeof createMetrics>;
