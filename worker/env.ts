import type { EscapedSlashes } from "./core/path.ts";

/** Secrets and local flags: set with `wrangler secret put` (or .dev.vars), and may be unset. */
type Unset =
  | "STICKY_SECRET"
  | "STICKY_SECRET_PREVIOUS"
  | "ADMIN_TOKEN"
  | "SWITCHYARD_LOCAL"
  | "ADMIN_HOST"
  | "ALLOWED_BINDINGS"
  | "FORWARDED_FOR"
  | "ACCESS_LOG_SAMPLE"
  | "RESPONSE_REQUEST_ID"
  | "DEBUG_HEADERS"
  | "PATH_ESCAPED_SLASHES";

/**
 * The worker's bindings and settings (README, "Worker settings"), as `wrangler types` generates
 * them from wrangler.toml and worker/secrets.env into worker/env.generated.d.ts (`npm run types`;
 * `npm test` fails when it is stale): the KV namespace SWITCHYARD, the vars ADMIN_PATH and
 * CONFIG_REFRESH_SECONDS, and the secrets STICKY_SECRET (HMAC key of sticky cookies),
 * STICKY_SECRET_PREVIOUS (honoured during a rotation), ADMIN_TOKEN (the admin API is off
 * without it), SWITCHYARD_LOCAL ("true" under `npm start` and the tests) and DEBUG_HEADERS
 * ("true" sends X-Switchyard-Retry-Skipped to clients; for development only), ADMIN_HOST (the
 * admin API answers only on this host), ALLOWED_BINDINGS (the bindings pools may use) and
 * FORWARDED_FOR (append to X-Forwarded-For, or replace it), ACCESS_LOG_SAMPLE and
 * RESPONSE_REQUEST_ID (X-Request-Id on every response, not only on errors); and the
 * optional Analytics Engine dataset ANALYTICS, which wrangler.toml binds only when enabled.
 */
export type Env = Omit<Cloudflare.Env, Unset> &
  Partial<Pick<Cloudflare.Env, Unset>> & {
    /** Optional: one data point per proxied request (contract/analytics.ts). */
    ANALYTICS?: AnalyticsEngineDataset;
  };

export interface Settings {
  adminPath: string;
  /** Set: the admin API answers only for requests to this host. */
  adminHost: string | undefined;
  /** ACCESS_LOG_SAMPLE: the share of requests with an access log line (0 to 1). */
  accessLogSample: number;
  /** RESPONSE_REQUEST_ID: every response carries X-Request-Id (error answers always do). */
  responseRequestId: boolean;
  /** DEBUG_HEADERS: X-Switchyard-Retry-Skipped on responses (development only). */
  debugHeaders: boolean;
  /** FORWARDED_FOR: append the client's address to X-Forwarded-For, or replace it. */
  forwardedFor: "append" | "replace";
  /** PATH_ESCAPED_SLASHES: what a %2F or %5C in a path gets (worker/core/path.ts). */
  escapedSlashes: EscapedSlashes;
  /** The Workers bindings a pool's transport.binding may name (ALLOWED_BINDINGS). */
  allowedBindings: ReadonlySet<string>;
  refreshMs: number;
  local: boolean;
}

export class SettingsError extends Error {}

const parsed = new WeakMap<Env, Settings>();

/**
 * Settings from the environment; every bad one is named at once. Parsed once per env object
 * (the runtime hands an isolate the same one for each request), not on every request.
 */
export function settingsOf(env: Env): Settings {
  let settings = parsed.get(env);
  if (settings === undefined) {
    settings = parseSettings(env);
    parsed.set(env, settings);
  }
  return settings;
}

function parseSettings(env: Env): Settings {
  const problems: string[] = [];
  const refreshText = env.CONFIG_REFRESH_SECONDS ?? "10";
  const refreshSeconds = Number(refreshText);
  if (!(refreshText.trim() !== "" && Number.isFinite(refreshSeconds) && refreshSeconds >= 0)) {
    problems.push(
      `CONFIG_REFRESH_SECONDS must be a number of seconds, 0 or more; got ${JSON.stringify(refreshText)}`,
    );
  }
  const adminPath = env.ADMIN_PATH ?? "/__switchyard";
  if (!/^\/[A-Za-z0-9._~\-/]*[A-Za-z0-9._~-]$/.test(adminPath)) {
    problems.push(
      `ADMIN_PATH must be a path such as "/__switchyard"; got ${JSON.stringify(adminPath)}`,
    );
  }
  const adminHost = env.ADMIN_HOST?.trim().toLowerCase() || undefined;
  if (adminHost !== undefined && !/^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/.test(adminHost))
    problems.push(
      `ADMIN_HOST must be a hostname such as "lb-admin.example.com"; got ${JSON.stringify(env.ADMIN_HOST)}`,
    );
  if (env.SWITCHYARD === undefined)
    problems.push("the KV binding SWITCHYARD is missing (wrangler.toml kv_namespaces)");
  const allowedBindings = new Set(
    (env.ALLOWED_BINDINGS ?? "")
      .split(",")
      .map((b) => b.trim())
      .filter(Boolean),
  );
  for (const binding of allowedBindings)
    if (!/^[A-Za-z_$][A-Za-z0-9_$]*$/.test(binding) || binding === "SWITCHYARD")
      problems.push(
        `ALLOWED_BINDINGS must list binding names such as "VPC_SHOP"; got ${JSON.stringify(binding)}`,
      );
  const local = env.SWITCHYARD_LOCAL === "true";
  const sampleText = env.ACCESS_LOG_SAMPLE ?? (local ? "1" : "0.1");
  const accessLogSample = Number(sampleText);
  if (!(sampleText.trim() !== "" && accessLogSample >= 0 && accessLogSample <= 1))
    problems.push(
      `ACCESS_LOG_SAMPLE must be a number from 0 to 1; got ${JSON.stringify(sampleText)}`,
    );
  const forwardedFor = env.FORWARDED_FOR ?? "append";
  if (forwardedFor !== "append" && forwardedFor !== "replace")
    problems.push(
      `FORWARDED_FOR must be "append" or "replace"; got ${JSON.stringify(forwardedFor)}`,
    );
  const escapedSlashes = env.PATH_ESCAPED_SLASHES || "reject";
  if (escapedSlashes !== "reject" && escapedSlashes !== "decode" && escapedSlashes !== "keep")
    problems.push(
      `PATH_ESCAPED_SLASHES must be "reject", "decode" or "keep"; got ${JSON.stringify(escapedSlashes)}`,
    );
  const flag = (name: "RESPONSE_REQUEST_ID" | "DEBUG_HEADERS") => {
    const text = env[name];
    if (text !== undefined && text !== "" && text !== "true" && text !== "false")
      problems.push(`${name} must be "true" or "false"; got ${JSON.stringify(text)}`);
    return text === "true";
  };
  const responseRequestId = flag("RESPONSE_REQUEST_ID");
  const debugHeaders = flag("DEBUG_HEADERS");
  if (problems.length > 0) throw new SettingsError(problems.join("; "));
  return {
    responseRequestId,
    debugHeaders,
    forwardedFor: forwardedFor as "append" | "replace",
    escapedSlashes: escapedSlashes as EscapedSlashes,
    accessLogSample,
    adminPath,
    adminHost,
    allowedBindings,
    refreshMs: refreshSeconds * 1000,
    local: env.SWITCHYARD_LOCAL === "true",
  };
}
