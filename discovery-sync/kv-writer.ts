import { setTimeout as sleep } from "node:timers/promises";
import { fetch } from "undici";
import { POOL_KEY_PREFIX } from "../contract/index.ts";
import type { Put, StoredKey } from "./plan.ts";
import { retryAfterMs, type TokenBucket } from "./rate-limit.ts";

/**
 * The apply stage's adapter, the one place discovery-sync talks to Workers KV: three calls of the
 * documented Cloudflare REST API (list keys, bulk write, bulk delete) with undici's fetch. Not
 * the `cloudflare` SDK: it loads its whole API surface, 15 MB of the sync's 128 MB heap, for
 * these three (docs/deploy.md, sizing). Every request first takes a token from the API budget.
 * Writes and deletes go in bulk requests of up to 10,000 keys; keys a bulk request reports as
 * unsuccessful are returned as failed, for the controller to retry together on a later pass.
 * The SDK neither retries nor waits on its own: each request has a timeout and the caller's
 * signal (the leadership's), and a 429's Retry-After is returned to the controller, which backs
 * off. A deposed leader's request in flight is aborted.
 */

const BULK_MAX_KEYS = 10_000;
/** The API's limit is 100 MB a request; stay well below it. */
const BULK_MAX_BYTES = 64 * 1024 * 1024;

export interface KvWriterOptions {
  apiToken: string;
  accountId: string;
  namespaceId: string;
  baseUrl: string;
  /** Per-request timeout in milliseconds (default 30 s). */
  timeoutMs?: number;
  budget: ApiBudget;
}

export interface ApplyResult {
  written: string[];
  deleted: string[];
  /** Keys that could not be written or deleted, with the reason. */
  failed: { key: string; reason: string }[];
  requests: number;
  /** The API answered 429 and asked to wait this long (capped). */
  retryAfterMs?: number;
}

export interface KvWriter {
  /** Every pool key with its metadata, and how many requests listing them took. */
  listOwnedCandidates(signal?: AbortSignal): Promise<{ keys: StoredKey[]; requests: number }>;
  apply(
    puts: readonly Put[],
    deletes: readonly string[],
    signal?: AbortSignal,
  ): Promise<ApplyResult>;
}

/** A failed API request, with the wait a 429 asked for. */
export class KvApiError extends Error {
  readonly retryAfterMs: number | undefined;
  readonly requests: number;
  constructor(message: string, retryAfterMs: number | undefined, requests: number) {
    super(message);
    this.retryAfterMs = retryAfterMs;
    this.requests = requests;
  }
}

/** Waits for a token of the shared bucket before each request. */
export class ApiBudget {
  private readonly bucket: TokenBucket;
  private readonly now: () => number;
  constructor(bucket: TokenBucket, now: () => number = Date.now) {
    this.bucket = bucket;
    this.now = now;
  }

  async take(signal?: AbortSignal): Promise<void> {
    for (;;) {
      const wait = this.bucket.take(this.now());
      if (wait === 0) return;
      await sleep(wait, undefined, { signal });
    }
  }

  /** After a 429: spend nothing more until the bucket refills. */
  drain(): void {
    this.bucket.drain(this.now());
  }
}

/** The API's envelope: `{ success, errors: [{ code, message }], result, result_info }`. */
interface Envelope<T> {
  success?: boolean;
  errors?: { code?: number; message?: string }[];
  result?: T;
  result_info?: { cursor?: string };
}

/** An answer of the API that is not a success: its status, first error and Retry-After. */
class ApiAnswerError extends Error {
  readonly status: number;
  readonly retryAfter: string | null;
  constructor(status: number, errors: Envelope<unknown>["errors"], retryAfter: string | null) {
    const first = errors?.[0];
    super(`${status}${first ? ` ${first.code}: ${first.message}` : ""}`);
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

function describe(error: unknown, signal?: AbortSignal): string {
  if (signal?.aborted) return "no longer the leader";
  return (error as Error).message;
}

/** Chunks of at most BULK_MAX_KEYS items and BULK_MAX_BYTES of values. */
function bulkChunks<T extends { value: string }>(items: readonly T[]): T[][] {
  const out: T[][] = [];
  let current: T[] = [];
  let bytes = 0;
  for (const item of items) {
    const size = item.value.length + 256;
    if (current.length === BULK_MAX_KEYS || (current.length > 0 && bytes + size > BULK_MAX_BYTES)) {
      out.push(current);
      current = [];
      bytes = 0;
    }
    current.push(item);
    bytes += size;
  }
  if (current.length > 0) out.push(current);
  return out;
}

/**
 * A JSON array sent as it is written, about 64 KiB at a time: a bulk write of 10,000 pools is
 * about 9 MB of JSON, which would otherwise be held whole, twice (text and bytes), beside the
 * pools themselves, at the moment the sync's heap is fullest.
 */
async function* jsonArray(items: readonly unknown[]): AsyncGenerator<Uint8Array> {
  const encoder = new TextEncoder();
  let text = "[";
  for (let i = 0; i < items.length; i++) {
    text += (i === 0 ? "" : ",") + JSON.stringify(items[i]);
    if (text.length >= 65_536) {
      yield encoder.encode(text);
      text = "";
    }
  }
  yield encoder.encode(`${text}]`);
}

function retryAfterOf(error: unknown): number | undefined {
  if (!(error instanceof ApiAnswerError) || error.status !== 429) return undefined;
  return retryAfterMs(error.retryAfter, Date.now()) ?? 60_000;
}

export function kvWriter(options: KvWriterOptions): KvWriter {
  const { accountId, namespaceId, budget } = options;
  const base = `${options.baseUrl.replace(/\/$/, "")}/accounts/${encodeURIComponent(accountId)}/storage/kv/namespaces/${encodeURIComponent(namespaceId)}`;
  const timeoutMs = options.timeoutMs ?? 30_000;
  /** Takes a token, sends one request, reads its envelope; a 429 drains the budget. */
  const send = async <T>(
    signal: AbortSignal | undefined,
    method: "GET" | "PUT" | "POST",
    path: string,
    body?: readonly unknown[],
  ): Promise<Envelope<T>> => {
    await budget.take(signal);
    const timeout = AbortSignal.timeout(timeoutMs);
    const response = await fetch(`${base}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${options.apiToken}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      body: body === undefined ? undefined : jsonArray(body),
      duplex: "half",
      signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
    }).catch((error: Error & { cause?: { code?: string; message?: string } }) => {
      // undici says "fetch failed" and puts the reason (ECONNREFUSED, a timeout) in `cause`.
      const reason = error.cause?.code ?? error.cause?.message ?? error.message;
      throw new Error(`${method} ${path.split("?")[0]}: ${reason}`, { cause: error });
    });
    const text = await response.text();
    let envelope: Envelope<T> = {};
    try {
      envelope = JSON.parse(text) as Envelope<T>;
    } catch {
      // not the API's JSON: said by the status below
    }
    if (!response.ok || envelope.success === false) {
      const error = new ApiAnswerError(
        response.status,
        envelope.errors ?? [{ message: text.slice(0, 200) }],
        response.headers.get("retry-after"),
      );
      if (response.status === 429) budget.drain();
      throw error;
    }
    return envelope;
  };

  return {
    async listOwnedCandidates(signal) {
      const keys: StoredKey[] = [];
      let cursor: string | undefined;
      let requests = 0;
      try {
        do {
          requests++;
          const query = new URLSearchParams({ prefix: POOL_KEY_PREFIX, limit: "1000" });
          if (cursor) query.set("cursor", cursor);
          const page = await send<{ name: string; metadata?: unknown }[]>(
            signal,
            "GET",
            `/keys?${query}`,
          );
          for (const key of page.result ?? [])
            keys.push({ key: key.name, metadata: (key.metadata as StoredKey["metadata"]) ?? null });
          cursor = page.result_info?.cursor || undefined;
        } while (cursor);
      } catch (error) {
        throw new KvApiError(describe(error, signal), retryAfterOf(error), requests);
      }
      return { keys, requests };
    },

    async apply(puts, deletes, signal) {
      const result: ApplyResult = { written: [], deleted: [], failed: [], requests: 0 };
      const fail = (keys: readonly string[], error: unknown) => {
        const reason = describe(error, signal);
        for (const key of keys) result.failed.push({ key, reason });
        result.retryAfterMs ??= retryAfterOf(error);
      };
      const chunks = [
        ...bulkChunks(puts).map((chunk) => ({ puts: chunk, deletes: [] as string[] })),
        ...Array.from({ length: Math.ceil(deletes.length / BULK_MAX_KEYS) }, (_, i) => ({
          puts: [] as Put[],
          deletes: deletes.slice(i * BULK_MAX_KEYS, (i + 1) * BULK_MAX_KEYS),
        })),
      ];
      for (const chunk of chunks) {
        const keys = chunk.puts.length ? chunk.puts.map((p) => p.key) : chunk.deletes;
        if (signal?.aborted || result.retryAfterMs !== undefined) {
          fail(keys, signal?.aborted ? signal.reason : new Error("rate limited; not sent"));
          continue;
        }
        try {
          result.requests++;
          const response = await send<{ unsuccessful_keys?: string[] }>(
            signal,
            chunk.puts.length ? "PUT" : "POST",
            chunk.puts.length ? "/bulk" : "/bulk/delete",
            chunk.puts.length
              ? chunk.puts.map((p) => ({ key: p.key, value: p.value, metadata: p.metadata }))
              : chunk.deletes,
          );
          const unsuccessful = new Set(response.result?.unsuccessful_keys ?? []);
          for (const key of keys) {
            if (unsuccessful.has(key))
              result.failed.push({ key, reason: "the bulk request reported it unsuccessful" });
            else (chunk.puts.length ? result.written : result.deleted).push(key);
          }
        } catch (error) {
          fail(keys, error);
        }
      }
      return result;
    },
  };
}
