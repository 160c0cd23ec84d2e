/** The worker's bindings and settings (README, "Worker settings"). */
export interface Env {
  /** The KV namespace that holds the routes and pool documents. */
  SWITCHYARD: KVNamespace;
  /** HMAC key of sticky-session cookies. */
  STICKY_SECRET?: string;
  /** The previous key during a rotation: its cookies are honoured and re-signed. */
  STICKY_SECRET_PREVIOUS?: string;
  /** Bearer token of the admin API; the admin API is off without it. */
  ADMIN_TOKEN?: string;
  /** Path prefix of the admin API, default `/__switchyard`. */
  ADMIN_PATH?: string;
  /** Seconds between background refreshes of the snapshot, default 10. */
  CONFIG_REFRESH_SECONDS?: string;
  /** "true" under `npm start` and tests: loopback IP endpoints are expected. */
  SWITCHYARD_LOCAL?: string;
}

export interface Settings {
  adminPath: string;
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
  if (env.SWITCHYARD === undefined)
    problems.push("the KV binding SWITCHYARD is missing (wrangler.toml kv_namespaces)");
  if (problems.length > 0) throw new SettingsError(problems.join("; "));
  return { adminPath, refreshMs: refreshSeconds * 1000, local: env.SWITCHYARD_LOCAL === "true" };
}
