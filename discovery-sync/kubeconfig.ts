import { execFile } from "node:child_process";
import { existsSync, readFileSync, statSync } from "node:fs";
import { homedir } from "node:os";
import { delimiter, dirname, isAbsolute, join } from "node:path";
import { Agent, type Dispatcher, ProxyAgent } from "undici";
import { parse } from "yaml";

/**
 * How discovery-sync reaches the API server: client-go's rules for finding the configuration
 * (in-cluster first: the ServiceAccount's token, re-read as the kubelet rotates it, and CA;
 * otherwise $KUBECONFIG's files, merged as kubectl merges them, or ~/.kube/config) and the
 * user's credentials: a token or token file, a client certificate, basic auth, or an exec
 * credential plugin (`aws eks get-token`, `gke-gcloud-auth-plugin`, `kubelogin`) whose
 * credential is kept until it expires. Not @kubernetes/client-node's KubeConfig: importing that
 * library loads every generated API, 26 MB of the sync's 128 MB heap (docs/deploy.md, sizing);
 * the legacy `auth-provider` entries it also reads are refused with a word on what to use.
 */

export interface KubeConnection {
  server: string;
  /** The Authorization header for a request now, if any. */
  authorization(): Promise<string | undefined>;
  /** TLS (the cluster's CA, a client certificate) and any proxy. */
  dispatcher: Dispatcher | undefined;
}

export class KubeconfigError extends Error {}

const SERVICE_ACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount";

interface Named<T> {
  name: string;
  value: T;
}

interface Cluster {
  server?: string;
  "certificate-authority"?: string;
  "certificate-authority-data"?: string;
  "insecure-skip-tls-verify"?: boolean;
  "tls-server-name"?: string;
  "proxy-url"?: string;
}

interface ExecConfig {
  command: string;
  args?: string[];
  env?: { name: string; value: string }[] | null;
  apiVersion?: string;
}

interface User {
  token?: string;
  tokenFile?: string;
  "client-certificate"?: string;
  "client-certificate-data"?: string;
  "client-key"?: string;
  "client-key-data"?: string;
  username?: string;
  password?: string;
  exec?: ExecConfig;
  "auth-provider"?: { name?: string };
}

interface Config {
  clusters: Named<Cluster>[];
  users: Named<User>[];
  contexts: Named<{ cluster?: string; user?: string }>[];
  currentContext: string | undefined;
}

/** The in-cluster connection when running in a pod, else the kubeconfig's current context. */
export function loadKubeConnection(env: NodeJS.ProcessEnv = process.env): KubeConnection {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  if (host && port && existsSync(`${SERVICE_ACCOUNT}/token`)) return inCluster(host, port);
  const files = env.KUBECONFIG
    ? env.KUBECONFIG.split(delimiter).filter(Boolean)
    : [join(env.HOME ?? homedir(), ".kube", "config")];
  const present = files.filter((file) => existsSync(file));
  if (present.length === 0)
    throw new KubeconfigError(
      `no kubeconfig: not in a pod, and ${files.join(delimiter)} ${files.length === 1 ? "does not exist" : "do not exist"} (set KUBECONFIG)`,
    );
  return connectionFromFiles(present);
}

function inCluster(host: string, port: string): KubeConnection {
  const server = `https://${host.includes(":") ? `[${host}]` : host}:${port}`;
  return {
    server,
    authorization: rereadToken(`${SERVICE_ACCOUNT}/token`),
    dispatcher: new Agent({ connect: { ca: readFileSync(`${SERVICE_ACCOUNT}/ca.crt`) } }),
  };
}

/** A token file read again when it changes (the kubelet rotates projected tokens). */
function rereadToken(file: string): () => Promise<string> {
  let token = "";
  let stamp = -1;
  return async () => {
    const mtime = statSync(file).mtimeMs;
    if (mtime !== stamp) {
      token = readFileSync(file, "utf8").trim();
      stamp = mtime;
    }
    return `Bearer ${token}`;
  };
}

/** kubectl's merge: the first file to name a cluster, user, context or current-context wins. */
export function connectionFromFiles(files: readonly string[]): KubeConnection {
  const merged: Config = { clusters: [], users: [], contexts: [], currentContext: undefined };
  for (const file of files) {
    const config = readConfig(file);
    for (const kind of ["clusters", "users", "contexts"] as const)
      for (const entry of config[kind])
        if (!merged[kind].some((e) => e.name === entry.name)) merged[kind].push(entry as never);
    merged.currentContext ??= config.currentContext;
  }
  return connectionOf(merged, files.join(delimiter));
}

function readConfig(file: string): Config {
  let raw: Record<string, unknown>;
  try {
    raw = (parse(readFileSync(file, "utf8")) ?? {}) as Record<string, unknown>;
  } catch (error) {
    throw new KubeconfigError(`${file}: not a kubeconfig: ${(error as Error).message}`);
  }
  // Paths in a kubeconfig are relative to the file that names them.
  const base = dirname(file);
  const resolve = (path: unknown) =>
    typeof path === "string" && path !== "" && !isAbsolute(path) ? join(base, path) : path;
  const list = <T>(key: string, inner: string, paths: string[]): Named<T>[] =>
    ((raw[key] as { name: string; [k: string]: unknown }[] | undefined) ?? []).map((entry) => {
      const value = { ...((entry[inner] as Record<string, unknown>) ?? {}) };
      for (const path of paths) if (path in value) value[path] = resolve(value[path]);
      return { name: entry.name, value: value as T };
    });
  return {
    clusters: list<Cluster>("clusters", "cluster", ["certificate-authority"]),
    users: list<User>("users", "user", ["tokenFile", "client-certificate", "client-key"]),
    contexts: list("contexts", "context", []),
    currentContext: (raw["current-context"] as string | undefined) || undefined,
  };
}

function connectionOf(config: Config, where: string): KubeConnection {
  const contextName = config.currentContext;
  if (!contextName) throw new KubeconfigError(`${where}: no current-context`);
  const context = config.contexts.find((c) => c.name === contextName)?.value;
  if (!context) throw new KubeconfigError(`${where}: context ${contextName} is not defined`);
  const cluster = config.clusters.find((c) => c.name === context.cluster)?.value;
  if (!cluster?.server)
    throw new KubeconfigError(
      `${where}: context ${contextName} names cluster ${context.cluster ?? "(none)"}, which has no server`,
    );
  const user = config.users.find((u) => u.name === context.user)?.value ?? {};
  if (user["auth-provider"])
    throw new KubeconfigError(
      `${where}: user ${context.user} uses auth-provider ${user["auth-provider"].name ?? ""}, which Kubernetes removed: use an exec credential plugin (kubelogin, gke-gcloud-auth-plugin)`,
    );
  const bytes = (data: string | undefined, path: string | undefined) =>
    data ? Buffer.from(data, "base64") : path ? readFileSync(path) : undefined;
  const tls = {
    ca: bytes(cluster["certificate-authority-data"], cluster["certificate-authority"]),
    cert: bytes(user["client-certificate-data"], user["client-certificate"]),
    key: bytes(user["client-key-data"], user["client-key"]),
    rejectUnauthorized: cluster["insecure-skip-tls-verify"] !== true,
    ...(cluster["tls-server-name"] ? { servername: cluster["tls-server-name"] } : {}),
  };
  const proxy = cluster["proxy-url"];
  const https = cluster.server.startsWith("https:");
  return {
    server: cluster.server,
    authorization: authorizationOf(user),
    dispatcher: proxy
      ? new ProxyAgent({ uri: proxy, requestTls: tls })
      : https
        ? new Agent({ connect: tls })
        : undefined,
  };
}

function authorizationOf(user: User): () => Promise<string | undefined> {
  if (user.token) {
    const header = `Bearer ${user.token}`;
    return async () => header;
  }
  if (user.tokenFile) return rereadToken(user.tokenFile);
  if (user.username !== undefined) {
    const header = `Basic ${Buffer.from(`${user.username}:${user.password ?? ""}`).toString("base64")}`;
    return async () => header;
  }
  if (user.exec) return execCredential(user.exec);
  return async () => undefined;
}

interface ExecCredential {
  status?: { token?: string; expirationTimestamp?: string };
}

/**
 * A client-go exec credential plugin: runs the command, takes the ExecCredential's token, and
 * runs it again once the token has expired (or a minute before). One run at a time.
 */
function execCredential(exec: ExecConfig): () => Promise<string> {
  let token: string | undefined;
  let expires = 0;
  let running: Promise<string> | undefined;
  const run = () =>
    new Promise<string>((resolve, reject) => {
      const apiVersion = exec.apiVersion ?? "client.authentication.k8s.io/v1";
      const env = { ...process.env };
      for (const { name, value } of exec.env ?? []) env[name] = value;
      env.KUBERNETES_EXEC_INFO = JSON.stringify({
        apiVersion,
        kind: "ExecCredential",
        spec: { interactive: false },
      });
      execFile(exec.command, exec.args ?? [], { env, timeout: 60_000 }, (error, stdout) => {
        if (error)
          return reject(new KubeconfigError(`exec plugin ${exec.command}: ${error.message}`));
        try {
          const credential = JSON.parse(stdout) as ExecCredential;
          const found = credential.status?.token;
          if (!found) throw new Error("its ExecCredential has no status.token");
          token = `Bearer ${found}`;
          const at = credential.status?.expirationTimestamp;
          expires = at ? Date.parse(at) - 60_000 : Number.POSITIVE_INFINITY;
          resolve(token);
        } catch (e) {
          reject(new KubeconfigError(`exec plugin ${exec.command}: ${(e as Error).message}`));
        }
      });
    });
  return () => {
    if (token !== undefined && Date.now() < expires) return Promise.resolve(token);
    running ??= run().finally(() => {
      running = undefined;
    });
    return running;
  };
}
