import { writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { listenOnLoopback } from "../listen.ts";
import { decodeBody, InvalidError } from "./kube-decode.ts";
import {
  type FieldRequirement,
  matches,
  matchesFields,
  parseFieldSelector,
  parseLabelSelector,
  type Requirement,
} from "./kube-select.ts";
import {
  apiVersionOf,
  type KubeObject,
  KubeStore,
  RESOURCES,
  type Resource,
  StoreError,
  type WatchEvent,
} from "./kube-store.ts";

/**
 * A Kubernetes API emulator on loopback, as strict as the API server where discovery-sync and
 * kubectl could tell the difference:
 * - bodies decoded and validated as the server does (kube-decode.ts: Go JSON types, Time and
 *   MicroTime, names, required fields), answering the server's Status bodies (400 BadRequest,
 *   404 NotFound, 409 AlreadyExists/Conflict, 410 Expired, 422 Invalid with causes);
 * - Leases with optimistic concurrency, and the RBAC of the shipped manifests when given
 *   (`leaseNames`): a Lease name the Role does not list is 403 Forbidden for get and update;
 * - LIST in pages (`limit`/`continue`, every page from the first page's snapshot, a token from
 *   before a compaction is 410 Expired), `labelSelector` (equality and set-based) and
 *   `fieldSelector` (metadata.name, metadata.namespace) on lists and watches — a watched object
 *   that stops matching is DELETED, one that starts matching ADDED;
 * - watches from a resourceVersion, `410 Gone` for a compacted one, bookmarks only when
 *   `allowWatchBookmarks=true`; list items without kind/apiVersion, as the server sends them;
 * - the discovery documents kubectl needs.
 * Several emulators can share one store: each is a separate door to one cluster, which a test
 * can cut (`hang`) to partition one client. `kubectl` is its check as a real client.
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
  /** Sends a bookmark on every open watch that asked for bookmarks. */
  bookmark(): void;
  /** While on, requests are never answered (a network partition between a client and this door). */
  hang(on: boolean): void;
  close(): Promise<void>;
}

export interface KubeApiOptions {
  port?: number;
  store?: KubeStore;
  /** Lease names the Role allows get/update of (create is allowed for any); unset: all. */
  leaseNames?: readonly string[];
  /** The user in 403 messages. */
  user?: string;
}

interface Route {
  resource: Resource;
  namespace: string | undefined;
  name: string | undefined;
}

/** A LIST or watch as asked: the resource, the query, and its parsed selectors. */
interface Asked {
  route: Route;
  query: URLSearchParams;
  labels: Requirement[];
  fields: FieldRequirement[];
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

function status(code: number, reason: string, message: string, details?: Record<string, unknown>) {
  return {
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: "Failure",
    message,
    reason,
    ...(details ? { details } : {}),
    code,
  };
}

function qualified(resource: Resource): string {
  return resource.group ? `${resource.plural}.${resource.group}` : resource.plural;
}

const CONTINUE_EXPIRED =
  "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.";

function send(response: ServerResponse, code: number, body: unknown): void {
  const text = JSON.stringify(body);
  response.writeHead(code, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
  });
  response.end(text);
}

async function readText(request: IncomingMessage): Promise<string> {
  const parts: Buffer[] = [];
  for await (const part of request) parts.push(part as Buffer);
  return Buffer.concat(parts).toString("utf8");
}

function positiveInt(query: URLSearchParams, name: string): number | undefined {
  const text = query.get(name);
  if (text === null || text === "") return undefined;
  if (!/^-?\d+$/.test(text))
    throw new StoreError(
      400,
      "BadRequest",
      `strconv.ParseInt: parsing ${JSON.stringify(text)}: invalid syntax`,
    );
  return Number(text);
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

export async function startKubeApi(options: KubeApiOptions = {}): Promise<KubeApi> {
  const store = options.store ?? new KubeStore();
  const requests: string[] = [];
  const watches = new Set<{ response: ServerResponse; resource: Resource; bookmarks: boolean }>();
  const held = new Set<ServerResponse>();
  let hanging = false;
  let listFailures = 0;
  let listFailureStatus = 500;
  const user = options.user ?? "system:serviceaccount:switchyard:switchyard-sync";
  /** LIST snapshots behind continue tokens. */
  const snapshots = new Map<string, { rv: number; items: KubeObject[] }>();
  let snapshotId = 0;

  const writeEvent = (response: ServerResponse, type: string, object: unknown) => {
    response.write(`${JSON.stringify({ type, object })}\n`);
  };
  const withKind = (resource: Resource, object: KubeObject): KubeObject => ({
    kind: resource.kind,
    apiVersion: apiVersionOf(resource),
    ...object,
  });

  const forbidden = (
    resource: Resource,
    verb: string,
    namespace: string | undefined,
    name?: string,
  ) => {
    const subject = name ? `${qualified(resource)} ${JSON.stringify(name)}` : qualified(resource);
    return new StoreError(
      403,
      "Forbidden",
      `${subject} is forbidden: User ${JSON.stringify(user)} cannot ${verb} resource ${JSON.stringify(resource.plural)} in API group ${JSON.stringify(resource.group)}${namespace ? ` in the namespace ${JSON.stringify(namespace)}` : " at the cluster scope"}`,
    );
  };
  /** The shipped Role: create any Lease; get and update only the named ones; no list or watch. */
  const authorize = (
    resource: Resource,
    verb: string,
    namespace: string | undefined,
    name?: string,
  ) => {
    if (resource.plural !== "leases" || options.leaseNames === undefined || verb === "create")
      return;
    if (name === undefined || !options.leaseNames.includes(name))
      throw forbidden(resource, verb, namespace, name);
  };

  const notFound = (resource: Resource, name: string) =>
    new StoreError(404, "NotFound", `${qualified(resource)} ${JSON.stringify(name)} not found`);

  const watch = (request: IncomingMessage, response: ServerResponse, asked: Asked) => {
    const { route, query, labels, fields } = asked;
    const { resource, namespace } = route;
    const from = Number(query.get("resourceVersion") || store.resourceVersion);
    const bookmarks = query.get("allowWatchBookmarks") === "true";
    response.writeHead(200, { "content-type": "application/json", "transfer-encoding": "chunked" });
    response.flushHeaders();
    const passes = (object: KubeObject | undefined) =>
      object !== undefined &&
      (namespace === undefined || object.metadata.namespace === namespace) &&
      matches(object.metadata.labels, labels) &&
      matchesFields(object.metadata, fields);
    const send = (event: WatchEvent) => {
      if (event.resource !== resource.plural) return;
      const now = passes(event.object);
      const before = event.type === "MODIFIED" ? passes(event.previous) : now;
      if (now && before) writeEvent(response, event.type, withKind(resource, event.object));
      else if (now) writeEvent(response, "ADDED", withKind(resource, event.object));
      else if (before) {
        const gone = structuredClone(event.previous as KubeObject);
        gone.metadata.resourceVersion = String(event.resourceVersion);
        writeEvent(response, "DELETED", withKind(resource, gone));
      }
    };
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
    for (const event of backlog) send(event);
    const entry = { response, resource, bookmarks };
    watches.add(entry);
    const unsubscribe = store.subscribe(send);
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

  const list = (asked: Asked) => {
    const { route, query, labels, fields } = asked;
    const { resource, namespace } = route;
    const limit = positiveInt(query, "limit");
    const token = query.get("continue");
    let snapshot: { rv: number; items: KubeObject[] };
    let offset = 0;
    let id: string;
    if (token) {
      let parsed: { rv?: number; id?: string; offset?: number };
      try {
        parsed = JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
      } catch {
        throw new StoreError(400, "BadRequest", "continue key is not valid: illegal base64 data");
      }
      const found = snapshots.get(parsed.id ?? "");
      if ((parsed.rv ?? 0) < store.compactedTo || !found)
        throw new StoreError(410, "Expired", CONTINUE_EXPIRED);
      snapshot = found;
      offset = parsed.offset ?? 0;
      id = parsed.id as string;
    } else {
      snapshot = {
        rv: store.resourceVersion,
        items: store.list(
          resource.plural,
          namespace,
          (o) => matches(o.metadata.labels, labels) && matchesFields(o.metadata, fields),
        ),
      };
      id = String(++snapshotId);
    }
    const end =
      limit && limit > 0 ? Math.min(offset + limit, snapshot.items.length) : snapshot.items.length;
    const items = snapshot.items.slice(offset, end);
    const more = end < snapshot.items.length;
    if (more) snapshots.set(id, snapshot);
    else snapshots.delete(id);
    return {
      kind: `${resource.kind}List`,
      apiVersion: apiVersionOf(resource),
      metadata: {
        resourceVersion: String(snapshot.rv),
        ...(more
          ? {
              continue: Buffer.from(JSON.stringify({ rv: snapshot.rv, id, offset: end })).toString(
                "base64url",
              ),
              remainingItemCount: snapshot.items.length - end,
            }
          : {}),
      },
      items,
    };
  };

  const server = createServer(async (request, response) => {
    const url = new URL(request.url ?? "/", "http://emulator");
    const method = request.method ?? "GET";
    requests.push(`${method} ${url.pathname}${url.search}`);
    if (hanging) {
      held.add(response);
      response.on("close", () => held.delete(response));
      return;
    }
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
          status(404, "NotFound", `the server could not find the requested resource`, {}),
        );
      const { resource, namespace, name } = route;
      const details = (n: string | undefined) => ({
        ...(n ? { name: n } : {}),
        ...(resource.group ? { group: resource.group } : {}),
        kind: resource.plural,
      });
      try {
        if (method === "GET" && name === undefined) {
          const watching =
            url.searchParams.get("watch") === "true" || url.searchParams.get("watch") === "1";
          authorize(resource, watching ? "watch" : "list", namespace);
          const labels = parseLabelSelector(url.searchParams.get("labelSelector"));
          const fields = parseFieldSelector(url.searchParams.get("fieldSelector"));
          positiveInt(url.searchParams, "timeoutSeconds");
          const asked = { route, query: url.searchParams, labels, fields };
          if (watching) return watch(request, response, asked);
          if (listFailures > 0) {
            listFailures--;
            return send(
              response,
              listFailureStatus,
              status(listFailureStatus, "InternalError", "injected list failure"),
            );
          }
          return send(response, 200, list(asked));
        }
        if (method === "GET" && name !== undefined) {
          authorize(resource, "get", namespace, name);
          if (!store.has(resource.plural, namespace, name)) throw notFound(resource, name);
          return send(
            response,
            200,
            withKind(resource, store.get(resource.plural, namespace, name)),
          );
        }
        if (method === "POST" && name === undefined) {
          authorize(resource, "create", namespace);
          const body = decodeBody(
            resource,
            await readText(request),
            "create",
            namespace,
            undefined,
          );
          if (store.has(resource.plural, body.metadata.namespace, body.metadata.name))
            throw new StoreError(
              409,
              "AlreadyExists",
              `${qualified(resource)} ${JSON.stringify(body.metadata.name)} already exists`,
            );
          delete body.metadata.resourceVersion;
          return send(response, 201, withKind(resource, store.create(resource.plural, body)));
        }
        if (method === "PUT" && name !== undefined) {
          authorize(resource, "update", namespace, name);
          const body = decodeBody(resource, await readText(request), "update", namespace, name);
          if (!store.has(resource.plural, namespace, name)) throw notFound(resource, name);
          return send(response, 200, withKind(resource, store.replace(resource.plural, body)));
        }
        if (method === "PATCH" && name !== undefined) {
          authorize(resource, "patch", namespace, name);
          if (!store.has(resource.plural, namespace, name)) throw notFound(resource, name);
          let patch: unknown;
          try {
            patch = JSON.parse(await readText(request));
          } catch (error) {
            throw new StoreError(
              400,
              "BadRequest",
              `error decoding patch: ${(error as Error).message}`,
            );
          }
          // A merge patch applies to the current object: its resourceVersion is that one's.
          const current = store.get(resource.plural, namespace, name);
          const merged = mergePatch(current, patch) as KubeObject;
          merged.metadata.resourceVersion = current.metadata.resourceVersion;
          const body = decodeBody(resource, JSON.stringify(merged), "update", namespace, name);
          return send(response, 200, withKind(resource, store.replace(resource.plural, body)));
        }
        if (method === "DELETE" && name !== undefined) {
          authorize(resource, "delete", namespace, name);
          if (!store.has(resource.plural, namespace, name)) throw notFound(resource, name);
          store.delete(resource.plural, namespace, name);
          return send(response, 200, {
            kind: "Status",
            apiVersion: "v1",
            metadata: {},
            status: "Success",
            details: details(name),
          });
        }
        return send(
          response,
          405,
          status(
            405,
            "MethodNotAllowed",
            `the server does not allow this method on the requested resource`,
            details(name),
          ),
        );
      } catch (error) {
        if (error instanceof InvalidError)
          return send(
            response,
            422,
            status(422, "Invalid", error.message, {
              ...details(error.name_ || undefined),
              kind: resource.kind,
              causes: error.causes,
            }),
          );
        if (error instanceof StoreError)
          return send(
            response,
            error.code,
            status(
              error.code,
              error.reason,
              error.message,
              error.code === 400 ? undefined : details(name),
            ),
          );
        throw error;
      }
    } catch (error) {
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
      for (const { response, resource, bookmarks } of watches) {
        if (!bookmarks) continue;
        writeEvent(response, "BOOKMARK", {
          kind: resource.kind,
          apiVersion: apiVersionOf(resource),
          metadata: { resourceVersion: String(store.resourceVersion) },
        });
      }
    },
    hang(on) {
      hanging = on;
      if (on) {
        for (const { response } of watches) response.socket?.destroy();
        watches.clear();
      }
    },
    async close() {
      for (const response of held) response.socket?.destroy();
      for (const { response } of watches) response.socket?.destroy();
      await close();
    },
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

/** A kubeconfig file that points a real client (kubectl, discovery-sync) at the emulator. */
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
