import { setTimeout as sleep } from "node:timers/promises";
import Cloudflare from "cloudflare";
import { POOL_KEY_PREFIX } from "../contract/index.ts";
import type { Put, StoredKey } from "./plan.ts";
import { retryAfterMs, type TokenBucket } from "./rate-limit.ts";

/**
 * The apply stage's adapter, the one place discovery-sync talks to Workers KV: the Cloudflare
 * REST API through the official SDK. Every request first takes a token from the API budget.
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

function describe(error: unknown, signal?: AbortSignal): string {
  if (signal?.aborted) return "no longer the leader";
  if (error instanceof Cloudflare.APIError) {
    const first = (error.errors as { code?: number; message?: string }[] | undefined)?.[0];
    return `${error.status ?? "no status"}${first ? ` ${first.code}: ${first.message}` : ""}`;
  }
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

function retryAfterOf(error: unknown): number | undefined {
  if (!(error instanceof Cloudflare.APIError) || error.status !== 429) return undefined;
  return retryAfterMs(error.headers?.get("retry-after"), Date.now()) ?? 60_000;
}

export function kvWriter(options: KvWriterOptions): KvWriter {
  const client = new Cloudflare({
    apiToken: options.apiToken,
    baseURL: options.baseUrl,
    maxRetries: 0,
    timeout: options.timeoutMs ?? 30_000,
  });
  const { accountId: account_id, namespaceId, budget } = options;
  /** Takes a token, sends; a 429 drains the budget. */
  const send = async <T>(signal: AbortSignal | undefined, call: () => Promise<T>): Promise<T> => {
    await budget.take(signal);
    try {
      return await call();
    } catch (error) {
      if (retryAfterOf(error) !== undefined) budget.drain();
      throw error;
    }
  };

  return {
    async listOwnedCandidates(signal) {
      const keys: StoredKey[] = [];
      let cursor: string | undefined;
      let requests = 0;
      try {
        do {
          requests++;
          const page = await send(signal, () =>
            client.kv.namespaces.keys.list(
              namespaceId,
              { account_id, prefix: POOL_KEY_PREFIX, limit: 1000, ...(cursor ? { cursor } : {}) },
              { signal },
            ),
          );
          for (const key of page.result)
            keys.push({ key: key.name, metadata: key.metadata ?? null });
          cursor = (page.result_info as { cursor?: string } | undefined)?.cursor || undefined;
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
          const response = await send(signal, () =>
            chunk.puts.length
              ? client.kv.namespaces.bulkUpdate(
                  namespaceId,
                  {
                    account_id,
                    body: chunk.puts.map((p) => ({
                      key: p.key,
                      value: p.value,
                      metadata: p.metadata,
                    })),
                  },
                  { signal },
                )
              : client.kv.namespaces.bulkDelete(
                  namespaceId,
                  { account_id, body: chunk.deletes },
                  { signal },
                ),
          );
          const unsuccessful = new Set(response?.unsuccessful_keys ?? []);
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
