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
      help: "Informer restarts",
      labelNames: ["resource"],
      registers: [registry],
    }),
  };
  return metrics;
}

export type Metrics = ReturnType<typeof createMetrics>;
