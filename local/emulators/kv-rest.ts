import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { listenOnLoopback } from "../listen.ts";

/**
 * A Cloudflare Workers KV REST emulator on loopback, with the API's paths, envelopes and errors
 * (`{ success, errors: [{ code, message }], messages, result }`): bulk write and delete, key
 * listing with metadata and cursors, single values, bulk get. Its store can be memory or any
 * KvBackend (the local stack plugs in Miniflare's KV).
 *
 * It enforces what the real API enforces, so that tests see it: the account's rate limit
 * (1,200 requests per 5 minutes; past it every request is answered 429 with Retry-After for the
 * rest of the window), keys of at most 512 bytes, metadata of at most 1,024 bytes, and bulk
 * requests of at most 10,000 pairs and 100 MB. Faults can be injected: 429 with Retry-After,
 * 5xx, keys that a bulk write or delete reports as unsuccessful, and writes that stall until
 * released (a client that gives up on a stalled write leaves nothing written). Every write is
 * recorded with its time, so tests can check the one-write-per-second-per-key limit.
 */

export interface KvEntry {
  value: string;
  metadata: unknown;
}

export interface KvBackend {
  get(key: string): Promise<KvEntry | undefined>;
  put(key: string, entry: KvEntry): Promise<void>;
  delete(key: string): Promise<void>;
  /** Keys with a prefix, sorted, with metadata. */
  list(prefix: string): Promise<{ name: string; metadata: unknown }[]>;
}

export function memoryBackend(): KvBackend & { entries: Map<string, KvEntry> } {
  const entries = new Map<string, KvEntry>();
  return {
    entries,
    get: async (key) => entries.get(key),
    put: async (key, entry) => {
      entries.set(key, entry);
    },
    delete: async (key) => {
      entries.delete(key);
    },
    list: async (prefix) =>
      [...entries.keys()]
        .filter((k) => k.startsWith(prefix))
        .sort()
        .map((name) => ({ name, metadata: entries.get(name)?.metadata ?? null })),
  };
}

export interface KvWrite {
  key: string;
  at: number;
  kind: "put" | "delete";
  /** The value written, for puts. */
  value?: string;
}

export interface KvRestEmulator {
  /** Base URL including /client/v4, for CLOUDFLARE_API_BASE_URL. */
  baseUrl: string;
  accountId: string;
  namespaceId: string;
  token: string;
  backend: KvBackend;
  writes: KvWrite[];
  /** Requests served, as "METHOD path". */
  requests: string[];
  /** The next `count` requests answer 429 with this Retry-After (seconds). */
  rateLimit(count: number, retryAfterSeconds: number): void;
  /** The next `count` requests answer this 5xx status. */
  serverErrors(count: number, status?: number): void;
  /** Bulk writes and deletes report these keys as unsuccessful (not done), `times` times each. */
  failKeys(keys: string[], times?: number): void;
  /** While on, bulk writes and deletes are held unanswered; off commits the held ones. */
  stallWrites(on: boolean): void;
  /** Resolves when a write is held by `stallWrites` (one already held counts); rejects after `timeoutMs`. */
  writeHeld(timeoutMs?: number): Promise<void>;
  /** Held writes whose client went away: never committed. */
  abandonedWrites(): number;
  /** 429s answered so far (injected or for the account limit). */
  rateLimited(): number;
  /** Resolves with the first write (now or later) that `match` accepts; rejects after `timeoutMs`. */
  nextWrite(match: (write: KvWrite) => boolean, timeoutMs?: number): Promise<KvWrite>;
  close(): Promise<void>;
}

const LIST_LIMIT_MAX = 1000;
const BULK_MAX = 10_000;
const BULK_MAX_BYTES = 100 * 1024 * 1024;
const KEY_MAX_BYTES = 512;
const METADATA_MAX_BYTES = 1024;
export const ACCOUNT_LIMIT = { requests: 1_200, windowMs: 300_000 };

function envelope(result: unknown, extra: Record<string, unknown> = {}) {
  return { success: true, errors: [], messages: [], result, ...extra };
}

/** The Cloudflare API's body of a failed call (the other emulators of Cloudflare APIs use it too). */
export function failure(code: number, message: string) {
  return { success: false, errors: [{ code, message }], messages: [], result: null };
}

/** The environment that points discovery-sync at this emulator, as it would at Cloudflare's API. */
export function clientEnv(kv: KvRestEmulator): Record<string, string> {
  return {
    CLOUDFLARE_API_TOKEN: kv.token,
    CLOUDFLARE_ACCOUNT_ID: kv.accountId,
    SWITCHYARD_KV_NAMESPACE_ID: kv.namespaceId,
    CLOUDFLARE_API_BASE_URL: kv.baseUrl,
  };
}

function send(
  response: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  response.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
    ...headers,
  });
  response.end(text);
}

async function readBody(request: IncomingMessage): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of request) parts.push(part as Buffer);
  return Buffer.concat(parts);
}

/** The `value` and `metadata` parts of a multipart/form-data body. */
function multipart(body: Buffer, contentType: string): Record<string, string> {
  const boundary = /boundary=(?:"([^"]+)"|([^;]+))/.exec(contentType);
  const marker = `--${boundary?.[1] ?? boundary?.[2]}`;
  const out: Record<string, string> = {};
  for (const part of body.toString("utf8").split(marker)) {
    const split = part.indexOf("\r\n\r\n");
    if (split === -1) continue;
    const name = /name="([^"]+)"/.exec(part.slice(0, split))?.[1];
    if (name) out[name] = part.slice(split + 4).replace(/\r\n$/, "");
  }
  return out;
}

export async function startKvRest(
  options: {
    port?: number;
    backend?: KvBackend;
    accountId?: string;
    namespaceId?: string;
    token?: string;
    /** The account's rate limit (default 1,200 requests per 5 minutes). */
    accountLimit?: { requests: number; windowMs: number };
  } = {},
): Promise<KvRestEmulator> {
  const accountLimit = options.accountLimit ?? ACCOUNT_LIMIT;
  let windowStart = 0;
  let windowCount = 0;
  let tooMany = 0;
  let stalled = false;
  const held = new Set<() => void>();
  const holdWaiters = new Set<() => void>();
  let abandoned = 0;
  /** Resolves when writes may go on; false when the client went away meanwhile. */
  const writeGate = (request: IncomingMessage): Promise<boolean> => {
    if (!stalled) return Promise.resolve(true);
    return new Promise((resolve) => {
      const release = () => {
        held.delete(release);
        resolve(!request.socket.destroyed);
      };
      held.add(release);
      for (const waiter of [...holdWaiters]) waiter();
      request.socket.once("close", () => {
        if (!held.has(release)) return;
        held.delete(release);
        abandoned++;
        resolve(false);
      });
    });
  };
  /** An injected fault: the bulk request reports this key unsuccessful. */
  const refused = (key: string): boolean => {
    const left = failing.get(key) ?? 0;
    if (left > 0) failing.set(key, left - 1);
    return left > 0;
  };
  const bulkAnswer = (response: ServerResponse, count: number, unsuccessful: string[]) =>
    send(
      response,
      200,
      envelope({
        successful_key_count: count - unsuccessful.length,
        unsuccessful_keys: unsuccessful,
      }),
    );
  const keyProblem = (key: unknown): string | undefined => {
    if (typeof key !== "string" || key === "") return "a key must be a non-empty string";
    if (Buffer.byteLength(key) > KEY_MAX_BYTES)
      return `key ${JSON.stringify(key.slice(0, 40))}… is ${Buffer.byteLength(key)} bytes; the limit is ${KEY_MAX_BYTES}`;
    return undefined;
  };
  const backend = options.backend ?? memoryBackend();
  const accountId = options.accountId ?? "local-account";
  const namespaceId = options.namespaceId ?? "local-namespace";
  const token = options.token ?? "local-token";
  const writes: KvWrite[] = [];
  const requests: string[] = [];
  let limited = 0;
  let retryAfter = 1;
  let errors = 0;
  let errorStatus = 500;
  const failing = new Map<string, number>();
  const base = `/client/v4/accounts/${accountId}/storage/kv/namespaces/`;

  const waiters = new Set<(write: KvWrite) => void>();
  const record = (key: string, kind: KvWrite["kind"], value?: string) => {
    const write = { key, at: Date.now(), kind, value };
    writes.push(write);
    for (const waiter of [...waiters]) waiter(write);
  };

  const server = createServer(async (request, response) => {
    const url = new URL(request.url ?? "/", "http://emulator");
    const method = request.method ?? "GET";
    requests.push(`${method} ${url.pathname}`);
    try {
      if (request.headers.authorization !== `Bearer ${token}`) {
        return send(response, 401, failure(10000, "Authentication error"));
      }
      const now = Date.now();
      if (now - windowStart >= accountLimit.windowMs) {
        windowStart = now;
        windowCount = 0;
      }
      windowCount++;
      if (windowCount > accountLimit.requests) {
        tooMany++;
        const left = Math.ceil((windowStart + accountLimit.windowMs - now) / 1000);
        return send(
          response,
          429,
          failure(971, "Please wait and consider throttling your request speed"),
          {
            "retry-after": String(left),
          },
        );
      }
      if (limited > 0) {
        limited--;
        tooMany++;
        return send(response, 429, failure(10022, "too many requests"), {
          "retry-after": String(retryAfter),
        });
      }
      if (errors > 0) {
        errors--;
        return send(response, errorStatus, failure(10001, "service unavailable, try again"));
      }
      if (!url.pathname.startsWith(base))
        return send(response, 404, failure(7003, `no route for ${url.pathname}`));
      const [namespace, ...rest] = url.pathname.slice(base.length).split("/");
      if (namespace !== namespaceId)
        return send(response, 404, failure(10013, "namespace not found"));
      const path = rest.join("/");

      if (method === "PUT" && path === "bulk") {
        const items = JSON.parse((await readBody(request)).toString("utf8")) as {
          key: string;
          value: string;
          metadata?: unknown;
          base64?: boolean;
        }[];
        if (!Array.isArray(items))
          return send(response, 400, failure(10026, "request body must be a JSON array"));
        if (items.length > BULK_MAX)
          return send(response, 413, failure(10024, `at most ${BULK_MAX} pairs per request`));
        if (Number(request.headers["content-length"] ?? 0) > BULK_MAX_BYTES)
          return send(
            response,
            413,
            failure(10024, `a bulk request is at most ${BULK_MAX_BYTES} bytes`),
          );
        for (const item of items) {
          const problem = keyProblem(item.key);
          if (problem) return send(response, 400, failure(10026, problem));
          const metadataBytes =
            item.metadata === undefined ? 0 : Buffer.byteLength(JSON.stringify(item.metadata));
          if (metadataBytes > METADATA_MAX_BYTES)
            return send(
              response,
              400,
              failure(
                10026,
                `metadata of ${JSON.stringify(item.key)} is ${metadataBytes} bytes; the limit is ${METADATA_MAX_BYTES}`,
              ),
            );
          if (typeof item.value !== "string")
            return send(
              response,
              400,
              failure(10026, `the value of ${JSON.stringify(item.key)} must be a string`),
            );
        }
        if (!(await writeGate(request))) return;
        const unsuccessful: string[] = [];
        for (const item of items) {
          if (refused(item.key)) {
            unsuccessful.push(item.key);
            continue;
          }
          const value = item.base64
            ? Buffer.from(item.value, "base64").toString("utf8")
            : item.value;
          await backend.put(item.key, { value, metadata: item.metadata ?? null });
          record(item.key, "put", value);
        }
        return bulkAnswer(response, items.length, unsuccessful);
      }
      if (method === "POST" && path === "bulk/delete") {
        const keys = JSON.parse((await readBody(request)).toString("utf8")) as string[];
        if (!Array.isArray(keys))
          return send(response, 400, failure(10026, "request body must be a JSON array of keys"));
        if (keys.length > BULK_MAX)
          return send(response, 413, failure(10024, `at most ${BULK_MAX} keys per request`));
        for (const key of keys) {
          const problem = keyProblem(key);
          if (problem) return send(response, 400, failure(10026, problem));
        }
        if (!(await writeGate(request))) return;
        const unsuccessful: string[] = [];
        for (const key of keys) {
          if (refused(key)) {
            unsuccessful.push(key);
            continue;
          }
          await backend.delete(key);
          record(key, "delete");
        }
        return bulkAnswer(response, keys.length, unsuccessful);
      }
      if (method === "POST" && path === "bulk/get") {
        const body = JSON.parse((await readBody(request)).toString("utf8")) as {
          keys: string[];
          withMetadata?: boolean;
        };
        if (body.keys.length > 100)
          return send(response, 400, failure(10026, "at most 100 keys per request"));
        const values: Record<string, unknown> = {};
        for (const key of body.keys) {
          const entry = await backend.get(key);
          values[key] =
            entry === undefined
              ? null
              : body.withMetadata
                ? { value: entry.value, metadata: entry.metadata }
                : entry.value;
        }
        return send(response, 200, envelope({ values }));
      }
      if (method === "GET" && path === "keys") {
        const limit = Math.min(
          Number(url.searchParams.get("limit") ?? LIST_LIMIT_MAX),
          LIST_LIMIT_MAX,
        );
        const all = await backend.list(url.searchParams.get("prefix") ?? "");
        const start = Number(url.searchParams.get("cursor") ?? 0);
        const page = all.slice(start, start + limit);
        const cursor = start + limit < all.length ? String(start + limit) : "";
        return send(response, 200, envelope(page, { result_info: { count: page.length, cursor } }));
      }
      const valueKey = path.startsWith("values/") ? decodeURIComponent(path.slice(7)) : undefined;
      const metadataKey = path.startsWith("metadata/")
        ? decodeURIComponent(path.slice(9))
        : undefined;
      if (valueKey !== undefined && method === "GET") {
        const entry = await backend.get(valueKey);
        if (!entry) return send(response, 404, failure(10009, "get: 'key not found'"));
        response.writeHead(200, { "content-type": "application/octet-stream" });
        return response.end(entry.value);
      }
      if (valueKey !== undefined && method === "PUT") {
        const problem = keyProblem(valueKey);
        if (problem) return send(response, 400, failure(10026, problem));
        const body = await readBody(request);
        const type = request.headers["content-type"] ?? "";
        if (type.startsWith("multipart/form-data")) {
          const parts = multipart(body, type);
          await backend.put(valueKey, {
            value: parts.value ?? "",
            metadata: parts.metadata ? JSON.parse(parts.metadata) : null,
          });
        } else {
          await backend.put(valueKey, { value: body.toString("utf8"), metadata: null });
        }
        record(valueKey, "put");
        return send(response, 200, envelope({}));
      }
      if (valueKey !== undefined && method === "DELETE") {
        await backend.delete(valueKey);
        record(valueKey, "delete");
        return send(response, 200, envelope({}));
      }
      if (metadataKey !== undefined && method === "GET") {
        const entry = await backend.get(metadataKey);
        if (!entry) return send(response, 404, failure(10009, "get: 'key not found'"));
        return send(response, 200, envelope(entry.metadata));
      }
      return send(response, 404, failure(7003, `no route for ${method} ${url.pathname}`));
    } catch (error) {
      return send(response, 400, failure(10026, `bad request: ${(error as Error).message}`));
    }
  });
  const { port, close } = await listenOnLoopback(server, options.port);
  return {
    baseUrl: `http://127.0.0.1:${port}/client/v4`,
    accountId,
    namespaceId,
    token,
    backend,
    writes,
    requests,
    rateLimit(count, seconds) {
      limited = count;
      retryAfter = seconds;
    },
    serverErrors(count, status = 500) {
      errors = count;
      errorStatus = status;
    },
    failKeys(keys, times = 1) {
      for (const key of keys) failing.set(key, times);
    },
    stallWrites(on) {
      stalled = on;
      if (!on) for (const release of [...held]) release();
    },
    writeHeld(timeoutMs = 10_000) {
      if (held.size > 0) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          holdWaiters.delete(waiter);
          reject(new Error(`no write was held within ${timeoutMs} ms`));
        }, timeoutMs);
        const waiter = () => {
          clearTimeout(timer);
          holdWaiters.delete(waiter);
          resolve();
        };
        holdWaiters.add(waiter);
      });
    },
    abandonedWrites: () => abandoned,
    rateLimited: () => tooMany,
    nextWrite(match, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          reject(new Error(`no matching KV write within ${timeoutMs} ms`));
        }, timeoutMs);
        const waiter = (write: KvWrite) => {
          if (!match(write)) return;
          clearTimeout(timer);
          waiters.delete(waiter);
          resolve(write);
        };
        waiters.add(waiter);
      });
    },
    close,
  };
}
