import { writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { listenOnLoopback } from "../fixtures/listen.ts";
import {
  apiVersionOf,
  type KubeObject,
  KubeStore,
  matchesSelector,
  RESOURCES,
  type Resource,
  StoreError,
  type WatchEvent,
} from "./kube-store.ts";

/**
 * A Kubernetes API emulator on loopback: list and watch of Services, EndpointSlices and Nodes
 * with resourceVersions, bookmarks and `410 Gone` for a compacted resourceVersion; Leases with
 * optimistic concurrency (409 on a stale resourceVersion); the discovery documents kubectl
 * needs. List items carry no kind/apiVersion, as the real API server's do. A test and demo
 * fixture, not a product part; `kubectl` is its check as a real client.
 */

export interface KubeApi {
  url: string;
  store: KubeStore;
  /** Requests served, by "METHOD path", for assertions (e.g. no Lease request). */
  requests: string[];
  /** Cuts every open watch connection, as a load balancer or API server restart does. */
  dropWatches(): void;
  /** The next `count` list requests answer this status. */
  failLists(count: number, status?: number): void;
  /** Sends a bookmark on every open watch now. */
  bookmark(): void;
  close(): Promise<void>;
}

interface Route {
  resource: Resource;
  namespace: string | undefined;
  name: string | undefined;
}

function parsePath(pathname: string): Route | undefined {
  const parts = pathname.split("/").filter(Boolean);
  let rest: string[];
  let group = "";
  if (parts[0] === "api" && parts[1] === "v1") rest = parts.slice(2);
  else if (parts[0] === "apis" && parts.length >= 3) {
    group = parts[1] as string;
    rest = parts.slice(3);
  } else return undefined;
  let namespace: string | undefined;
  if (rest[0] === "namespaces" && rest.length >= 3) {
    namespace = rest[1];
    rest = rest.slice(2);
  }
  const resource = RESOURCES.find((r) => r.plural === rest[0] && r.group === group);
  if (!resource || rest.length > 2) return undefined;
  return { resource, namespace, name: rest[1] };
}

function status(code: number, reason: string, message: string) {
  return {
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: "Failure",
    message,
    reason,
    code,
  };
}

function send(response: ServerResponse, code: number, body: unknown): void {
  const text = JSON.stringify(body);
  response.writeHead(code, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
  });
  response.end(text);
}

async function readJson(request: IncomingMessage): Promise<KubeObject> {
  const parts: Buffer[] = [];
  for await (const part of request) parts.push(part as Buffer);
  const text = Buffer.concat(parts).toString("utf8");
  const { parse } = await import("yaml"); // kubectl may send YAML-compatible JSON either way
  return parse(text) as KubeObject;
}

function discovery(pathname: string): unknown {
  if (pathname === "/version")
    return {
      major: "1",
      minor: "34",
      gitVersion: "v1.34.0-switchyard-emulator",
      platform: "linux/amd64",
    };
  if (pathname === "/api")
    return { kind: "APIVersions", versions: ["v1"], serverAddressByClientCIDRs: [] };
  const groups = [...new Set(RESOURCES.filter((r) => r.group).map((r) => r.group))];
  if (pathname === "/apis") {
    return {
      kind: "APIGroupList",
      apiVersion: "v1",
      groups: groups.map((name) => ({
        name,
        versions: [{ groupVersion: `${name}/v1`, version: "v1" }],
        preferredVersion: { groupVersion: `${name}/v1`, version: "v1" },
      })),
    };
  }
  const groupVersion =
    pathname === "/api/v1" ? "v1" : pathname.startsWith("/apis/") ? pathname.slice(6) : undefined;
  if (groupVersion === undefined) return undefined;
  const resources = RESOURCES.filter((r) => apiVersionOf(r) === groupVersion);
  if (resources.length === 0) return undefined;
  return {
    kind: "APIResourceList",
    apiVersion: "v1",
    groupVersion,
    resources: resources.map((r) => ({
      name: r.plural,
      singularName: r.kind.toLowerCase(),
      namespaced: r.namespaced,
      kind: r.kind,
      verbs: ["create", "delete", "get", "list", "patch", "update", "watch"],
      shortNames: r.shortNames,
    })),
  };
}

export async function startKubeApi(
  options: { port?: number; store?: KubeStore } = {},
): Promise<KubeApi> {
  const store = options.store ?? new KubeStore();
  const requests: string[] = [];
  const watches = new Set<{ response: ServerResponse; resource: Resource }>();
  let listFailures = 0;
  let listFailureStatus = 500;

  const writeEvent = (response: ServerResponse, type: string, object: unknown) => {
    response.write(`${JSON.stringify({ type, object })}\n`);
  };
  const withKind = (resource: Resource, object: KubeObject): KubeObject => ({
    kind: resource.kind,
    apiVersion: apiVersionOf(resource),
    ...object,
  });

  const watch = (
    request: IncomingMessage,
    response: ServerResponse,
    route: Route,
    query: URLSearchParams,
  ) => {
    const { resource, namespace } = route;
    const selector = query.get("labelSelector");
    const from = Number(query.get("resourceVersion") ?? store.resourceVersion);
    response.writeHead(200, { "content-type": "application/json", "transfer-encoding": "chunked" });
    response.flushHeaders();
    const visible = (event: WatchEvent) =>
      event.resource === resource.plural &&
      (namespace === undefined || event.object.metadata.namespace === namespace) &&
      matchesSelector(event.object.metadata.labels, selector);
    const backlog = query.get("resourceVersion") ? store.since(resource.plural, from) : [];
    if (backlog === undefined) {
      writeEvent(
        response,
        "ERROR",
        status(410, "Expired", `too old resource version: ${from} (${store.resourceVersion})`),
      );
      response.end();
      return;
    }
    for (const event of backlog)
      if (visible(event)) writeEvent(response, event.type, withKind(resource, event.object));
    const entry = { response, resource };
    watches.add(entry);
    const unsubscribe = store.subscribe((event) => {
      if (visible(event)) writeEvent(response, event.type, withKind(resource, event.object));
    });
    const timeout = Number(query.get("timeoutSeconds") ?? 0);
    const timer = timeout > 0 ? setTimeout(() => response.end(), timeout * 1000) : undefined;
    const done = () => {
      clearTimeout(timer);
      unsubscribe();
      watches.delete(entry);
    };
    request.on("close", done);
    response.on("close", done);
  };

  const server = createServer(async (request, response) => {
    const url = new URL(request.url ?? "/", "http://emulator");
    const method = request.method ?? "GET";
    requests.push(`${method} ${url.pathname}`);
    try {
      const document = method === "GET" ? discovery(url.pathname) : undefined;
      if (document) return send(response, 200, document);
      const namespaceGet = /^\/api\/v1\/namespaces\/([^/]+)$/.exec(url.pathname);
      if (method === "GET" && namespaceGet) {
        // Every namespace exists here.
        return send(response, 200, {
          kind: "Namespace",
          apiVersion: "v1",
          metadata: { name: namespaceGet[1] },
          status: { phase: "Active" },
        });
      }
      const route = parsePath(url.pathname);
      if (!route)
        return send(
          response,
          404,
          status(
            404,
            "NotFound",
            `the server could not find the requested resource ${url.pathname}`,
          ),
        );
      const { resource, namespace, name } = route;
      if (method === "GET" && name === undefined) {
        if (url.searchParams.get("watch") === "true" || url.searchParams.get("watch") === "1") {
          return watch(request, response, route, url.searchParams);
        }
        if (listFailures > 0) {
          listFailures--;
          return send(
            response,
            listFailureStatus,
            status(listFailureStatus, "InternalError", "injected list failure"),
          );
        }
        const items = store.list(resource.plural, namespace, url.searchParams.get("labelSelector"));
        return send(response, 200, {
          kind: `${resource.kind}List`,
          apiVersion: apiVersionOf(resource),
          metadata: { resourceVersion: String(store.resourceVersion) },
          items,
        });
      }
      if (method === "GET" && name !== undefined)
        return send(response, 200, withKind(resource, store.get(resource.plural, namespace, name)));
      if (method === "POST" && name === undefined) {
        const body = await readJson(request);
        body.metadata.namespace = resource.namespaced
          ? (namespace ?? body.metadata.namespace ?? "default")
          : undefined;
        return send(response, 201, withKind(resource, store.create(resource.plural, body)));
      }
      if (method === "PUT" && name !== undefined) {
        const body = await readJson(request);
        body.metadata.namespace = resource.namespaced ? namespace : undefined;
        return send(response, 200, withKind(resource, store.replace(resource.plural, body)));
      }
      if (method === "PATCH" && name !== undefined) {
        const patch = await readJson(request);
        const current = store.get(resource.plural, namespace, name);
        const merged = mergePatch(current, patch) as KubeObject;
        delete merged.metadata.resourceVersion;
        return send(response, 200, withKind(resource, store.replace(resource.plural, merged)));
      }
      if (method === "DELETE" && name !== undefined) {
        store.delete(resource.plural, namespace, name);
        return send(response, 200, {
          kind: "Status",
          apiVersion: "v1",
          metadata: {},
          status: "Success",
          code: 200,
        });
      }
      return send(
        response,
        405,
        status(405, "MethodNotAllowed", `${method} is not supported here`),
      );
    } catch (error) {
      if (error instanceof StoreError)
        return send(response, error.code, status(error.code, error.reason, error.message));
      return send(response, 500, status(500, "InternalError", (error as Error).message));
    }
  });
  const { port, close } = await listenOnLoopback(server, options.port);

  return {
    url: `http://127.0.0.1:${port}`,
    store,
    requests,
    dropWatches() {
      for (const { response } of watches) response.socket?.destroy();
      watches.clear();
    },
    failLists(count, code = 500) {
      listFailures = count;
      listFailureStatus = code;
    },
    bookmark() {
      for (const { response, resource } of watches) {
        writeEvent(response, "BOOKMARK", {
          kind: resource.kind,
          apiVersion: apiVersionOf(resource),
          metadata: { resourceVersion: String(store.resourceVersion) },
        });
      }
    },
    close,
  };
}

/** RFC 7386 JSON merge patch. */
function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== "object" || Array.isArray(patch)) return patch;
  const out: Record<string, unknown> =
    target !== null && typeof target === "object" && !Array.isArray(target)
      ? { ...(target as Record<string, unknown>) }
      : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete out[key];
    else out[key] = mergePatch(out[key], value);
  }
  return out;
}

/** A kubeconfig file that points a real client (kubectl, @kubernetes/client-node) at the emulator. */
export async function writeKubeconfig(path: string, server: string): Promise<void> {
  await writeFile(
    path,
    JSON.stringify({
      apiVersion: "v1",
      kind: "Config",
      clusters: [{ name: "emulator", cluster: { server, "insecure-skip-tls-verify": true } }],
      users: [{ name: "emulator", user: { token: "emulator" } }],
      contexts: [{ name: "emulator", context: { cluster: "emulator", user: "emulator" } }],
      "current-context": "emulator",
    }),
  );
}
