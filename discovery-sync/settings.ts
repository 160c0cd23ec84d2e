import { parseArgs } from "node:util";
import { parseDuration } from "../contract/index.ts";
import { timingProblems } from "./leader.ts";

/**
 * discovery-sync's settings from the environment and flags (docs/deploy.md). Every missing or
 * malformed one is reported at once; the caller exits 2 without making a request.
 */

export interface Settings {
  apiToken: string;
  accountId: string;
  namespaceId: string;
  apiBaseUrl: string;
  /** --cluster: the prefix of pool names (none without it). */
  poolPrefix: string | undefined;
  /** The owner id in KV metadata: the --cluster name, or "default". */
  owner: string;
  once: boolean;
  dryRun: boolean;
  json: boolean;
  allowMassDelete: boolean;
  serviceSelector: string | undefined;
  /** Namespaces that may set url-template ("*": all). */
  allowUrlTemplate: string[];
  /** Namespaces whose ExternalName Services are published ("*": all). */
  allowExternalName: string[];
  /** `namespace=BINDING` pairs that may set transport-binding. */
  allowTransportBinding: string[];
  resyncMs: number;
  httpPort: number;
  leaseNamespace: string;
  leaseName: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  identity: string;
  apiRatePerSecond: number;
  apiBurst: number;
  batchWindowMs: number;
  emptyGraceMs: number;
}

export class SettingsError extends Error {
  readonly problems: string[];
  constructor(problems: string[]) {
    super(problems.join("\n"));
    this.problems = problems;
  }
}

export const USAGE = `Usage: npm run sync -- [flags]

Publishes the backends of selected Kubernetes Services to Workers KV as Switchyard pools.

Environment:
  KUBECONFIG                   kubeconfig to use (default: ~/.kube/config, else in-cluster)
  CLOUDFLARE_API_TOKEN         API token with "Workers KV Storage: Edit"   (required)
  CLOUDFLARE_ACCOUNT_ID        account of the namespace                   (required)
  SWITCHYARD_KV_NAMESPACE_ID   the namespace bound as SWITCHYARD          (required)
  CLOUDFLARE_API_BASE_URL      default https://api.cloudflare.com/client/v4
  POD_NAMESPACE, POD_NAME      lease namespace and identity inside a cluster
  SWITCHYARD_CLUSTER           as --cluster (the flag wins)
  SWITCHYARD_LEASE_NAME        as --lease-name (the flag wins)

Flags:
  --cluster NAME               prefix pool names with NAME/ and own keys as NAME
  --once                       list, plan and apply once, without leader election; exit
  --dry-run                    print the plan of one pass; write nothing
  --json                       with --dry-run: the plan as JSON
  --allow-mass-delete          apply deletes even of more than half of the owned pools
  --service-selector SELECTOR  select Services by label selector instead of the annotation
                               switchyard.dev/publish: "true"
  --allow-url-template NS      Services in namespace NS may set switchyard.dev/url-template
                               (repeatable; "*" for every namespace; default: none may)
  --allow-external-name NS     ExternalName Services in namespace NS are published (repeatable;
                               "*" for every namespace; default: none are)
  --allow-transport-binding NS=BINDING
                               Services in NS may set switchyard.dev/transport-binding: BINDING
                               (repeatable; NS "*" for any namespace; default: none may)
  --resync DURATION            full resync period (default 5m)
  --http-port PORT             /healthz, /readyz, /metrics (default 8080; 0 = any free port)
  --lease-namespace NS         namespace of the Lease (default POD_NAMESPACE, else default)
  --lease-name NAME            the Lease (default switchyard-sync-<cluster>, or
                               switchyard-sync-default); the RBAC Role must name it
  --lease-duration DURATION    a standby takes over this long after the last renewal it saw
                               (default 15s)
  --renew-deadline DURATION    a leader that has not renewed for this long stops writing
                               (default 10s; shorter than the lease duration)
  --retry-period DURATION      renew and acquire attempts (default 2s)
  --api-rate N                 Cloudflare API requests per second, all calls (default 2)
  --api-burst N                requests that may go at once after a quiet time (default 10)
  --batch-window DURATION      at most one write pass per window (default 600ms)
  --empty-grace DURATION       publish a Service with no EndpointSlices as an empty pool only
                               after this long (default 30s; never with --once)
  --help                       this text
`;

const NAME = /^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$/;
const SELECTOR_TERM = /^!?[A-Za-z0-9./_-]+((==?|!=)[A-Za-z0-9._-]*)?$/;

export function parseSettings(argv: string[], env: NodeJS.ProcessEnv): Settings | "help" {
  const problems: string[] = [];
  const options = {
    cluster: { type: "string" },
    once: { type: "boolean" },
    "dry-run": { type: "boolean" },
    json: { type: "boolean" },
    "allow-mass-delete": { type: "boolean" },
    "service-selector": { type: "string" },
    "allow-url-template": { type: "string", multiple: true },
    "allow-external-name": { type: "string", multiple: true },
    "allow-transport-binding": { type: "string", multiple: true },
    resync: { type: "string" },
    "http-port": { type: "string" },
    "lease-namespace": { type: "string" },
    "lease-name": { type: "string" },
    "lease-duration": { type: "string" },
    "renew-deadline": { type: "string" },
    "retry-period": { type: "string" },
    "api-rate": { type: "string" },
    "api-burst": { type: "string" },
    "batch-window": { type: "string" },
    "empty-grace": { type: "string" },
    help: { type: "boolean" },
  } as const;
  let values: Record<string, string | boolean | string[] | undefined>;
  try {
    ({ values } = parseArgs({ args: argv, strict: true, allowPositionals: false, options }));
  } catch (error) {
    problems.push((error as Error).message);
    // Read the rest anyway, so that every problem is reported in one go.
    ({ values } = parseArgs({ args: argv, strict: false, allowPositionals: true, options }));
  }
  if (values.help) return "help";
  const required = (name: string): string => {
    const value = env[name];
    if (value === undefined || value.trim() === "") problems.push(`${name} is not set`);
    return value?.trim() ?? "";
  };
  const apiToken = required("CLOUDFLARE_API_TOKEN");
  const accountId = required("CLOUDFLARE_ACCOUNT_ID");
  const namespaceId = required("SWITCHYARD_KV_NAMESPACE_ID");
  const apiBaseUrl = (
    env.CLOUDFLARE_API_BASE_URL ?? "https://api.cloudflare.com/client/v4"
  ).replace(/\/$/, "");
  try {
    const url = new URL(apiBaseUrl);
    if (url.protocol !== "https:" && url.protocol !== "http:") throw new Error();
    if (!url.pathname.endsWith("/client/v4"))
      problems.push(
        `CLOUDFLARE_API_BASE_URL must end with /client/v4, got ${JSON.stringify(apiBaseUrl)}`,
      );
  } catch {
    problems.push(
      `CLOUDFLARE_API_BASE_URL must be an http(s) URL, got ${JSON.stringify(apiBaseUrl)}`,
    );
  }
  const clusterFlag =
    (values.cluster as string | undefined) ?? (env.SWITCHYARD_CLUSTER?.trim() || undefined);
  if (clusterFlag !== undefined && !NAME.test(clusterFlag)) {
    problems.push(
      `--cluster must be a lower-case DNS label such as "eu1", got ${JSON.stringify(clusterFlag)}`,
    );
  }
  const selector = values["service-selector"] as string | undefined;
  if (selector !== undefined && !selector.split(",").every((t) => SELECTOR_TERM.test(t.trim()))) {
    problems.push(
      `--service-selector must be equality terms such as "tier=edge,!canary", got ${JSON.stringify(selector)}`,
    );
  }
  const resyncText = (values.resync as string | undefined) ?? "5m";
  const resyncMs = parseDuration(resyncText);
  if (resyncMs === undefined || resyncMs < 1000)
    problems.push(
      `--resync must be a duration of at least 1s such as "5m", got ${JSON.stringify(resyncText)}`,
    );
  const portText = (values["http-port"] as string | undefined) ?? "8080";
  const httpPort = Number(portText);
  if (!/^\d+$/.test(portText) || httpPort > 65535)
    problems.push(`--http-port must be a port number, got ${JSON.stringify(portText)}`);
  if (values.json && !values["dry-run"]) problems.push("--json goes with --dry-run");
  const duration = (flag: string, fallback: string, min = 0): number => {
    const text = (values[flag] as string | undefined) ?? fallback;
    const ms = parseDuration(text);
    if (ms === undefined || ms < min) {
      problems.push(
        `--${flag} must be a duration such as "${fallback}", got ${JSON.stringify(text)}`,
      );
      return 0;
    }
    return ms;
  };
  const number = (flag: string, fallback: string): number => {
    const text = (values[flag] as string | undefined) ?? fallback;
    const n = Number(text);
    if (!/^\d+(\.\d+)?$/.test(text) || n <= 0) {
      problems.push(`--${flag} must be a positive number, got ${JSON.stringify(text)}`);
      return 1;
    }
    return n;
  };
  const timings = {
    leaseDurationMs: duration("lease-duration", "15s", 1000),
    renewDeadlineMs: duration("renew-deadline", "10s", 100),
    retryPeriodMs: duration("retry-period", "2s", 50),
  };
  if (timings.leaseDurationMs && timings.renewDeadlineMs && timings.retryPeriodMs)
    problems.push(...timingProblems(timings).map((p) => `lease timings: ${p}`));
  const apiRatePerSecond = number("api-rate", "2");
  const apiBurst = number("api-burst", "10");
  if (apiBurst < 1) problems.push("--api-burst must be at least 1");
  const batchWindowMs = duration("batch-window", "600ms");
  const emptyGraceMs = duration("empty-grace", "30s");
  const leaseName =
    (values["lease-name"] as string | undefined) ??
    (env.SWITCHYARD_LEASE_NAME?.trim() || `switchyard-sync-${clusterFlag ?? "default"}`);
  if (!NAME.test(leaseName) && !problems.some((p) => p.startsWith("--cluster")))
    problems.push(`--lease-name must be a lower-case DNS name, got ${JSON.stringify(leaseName)}`);
  /** A repeatable flag of namespaces ("*" for all), each checked. */
  const namespaces = (flag: "allow-url-template" | "allow-external-name") => {
    const list = ((values[flag] as unknown as string[] | undefined) ?? []).map((t) => t.trim());
    for (const ns of list)
      if (ns !== "*" && !NAME.test(ns))
        problems.push(`--${flag} must be a namespace or "*", got ${JSON.stringify(ns)}`);
    return list;
  };
  const allowUrlTemplate = namespaces("allow-url-template");
  const allowExternalName = namespaces("allow-external-name");
  const allowTransportBinding = (
    (values["allow-transport-binding"] as unknown as string[] | undefined) ?? []
  ).map((t) => t.trim());
  for (const pair of allowTransportBinding)
    if (!/^(\*|[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?)=[A-Za-z_$][A-Za-z0-9_$]*$/.test(pair))
      problems.push(
        `--allow-transport-binding must be NAMESPACE=BINDING such as "shop=VPC_SHOP", got ${JSON.stringify(pair)}`,
      );
  if (problems.length > 0) throw new SettingsError(problems);
  return {
    allowUrlTemplate,
    allowExternalName,
    allowTransportBinding,
    apiToken,
    accountId,
    namespaceId,
    apiBaseUrl,
    poolPrefix: clusterFlag,
    owner: clusterFlag ?? "default",
    once: Boolean(values.once),
    dryRun: Boolean(values["dry-run"]),
    json: Boolean(values.json),
    allowMassDelete: Boolean(values["allow-mass-delete"]),
    serviceSelector: selector,
    resyncMs: resyncMs as number,
    httpPort,
    leaseNamespace:
      (values["lease-namespace"] as string | undefined) ?? env.POD_NAMESPACE ?? "default",
    leaseName,
    ...timings,
    apiRatePerSecond,
    apiBurst,
    batchWindowMs,
    emptyGraceMs,
    identity: env.POD_NAME ?? `${(env.HOSTNAME ?? "discovery-sync").trim()}-${process.pid}`,
  };
}
