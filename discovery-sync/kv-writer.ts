import Cloudflare from "cloudflare";
import { POOL_KEY_PREFIX } from "../contract/index.ts";
import type { Put, StoredKey } from "./plan.ts";

/**
 * The apply stage's adapter, the one place discovery-sync talks to Workers KV: the Cloudflare
 * REST API through the official SDK. Writes go in bulk requests of up to 10,000 pairs; keys a bulk
 * write reports as unsuccessful are retried one at a time. 429 and 5xx are retried by the SDK,
 * which waits out Retry-After.
 */

export const BULK_MAX_KEYS = 10_000;
/** The API's limit is 100 MB a request; stay well below it. */
const BULK_MAX_BYTES = 64 * 1024 * 1024;

export interface KvWriterOptions {
  apiToken: string;
  accountId: string;
  namespaceId: string;
  baseUrl: string;
  maxRetries?: number;
  /** Per-request timeout in milliseconds. */
  timeoutMs?: number;
}

export interface ApplyResult {
  written: string[];
  deleted: string[];
  /** Keys that could not be written or deleted, with the reason. */
  failed: { key: string; reason: string }[];
  requests: number;
}

export interface KvWriter {
  listOwnedCandidates(): Promise<StoredKey[]>;
  apply(
    puts: readonly Put[],
    deletes: readonly string[],
    stillLeader: () => boolean,
  ): Promise<ApplyResult>;
}

function describe(error: unknown): string {
  if (error instanceof Cloudflare.APIError) {
    const first = (error.errors as { code?: number; message?: string }[] | undefined)?.[0];
    return `${error.status ?? "no status"}${first ? ` ${first.code}: ${first.message}` : ""}`;
  }
  return (error as Error).message;
}

/** Chunks of at most BULK_MAX_KEYS items and BULK_MAX_BYTES of values. */
export function bulkChunks<T extends { value: string }>(items: readonly T[]): T[][] {
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

export function kvWriter(options: KvWriterOptions): KvWriter {
  const client = new Cloudflare({
    apiToken: options.apiToken,
    baseURL: options.baseUrl,
    maxRetries: options.maxRetries ?? 6,
    timeout: options.timeoutMs ?? 60_000,
  });
  const { accountId: account_id, namespaceId } = options;

  return {
    async listOwnedCandidates() {
      const keys: StoredKey[] = [];
      for await (const key of client.kv.namespaces.keys.list(namespaceId, {
        account_id,
        prefix: POOL_KEY_PREFIX,
        limit: 1000,
      })) {
        keys.push({ key: key.name, metadata: key.metadata ?? null });
      }
      return keys;
    },

    async apply(puts, deletes, stillLeader) {
      const result: ApplyResult = { written: [], deleted: [], failed: [], requests: 0 };
      for (const chunk of bulkChunks(puts)) {
        if (!stillLeader()) {
          for (const put of chunk)
            result.failed.push({ key: put.key, reason: "no longer the leader" });
          continue;
        }
        let unsuccessful: string[];
        try {
          result.requests++;
          const response = await client.kv.namespaces.bulkUpdate(namespaceId, {
            account_id,
            body: chunk.map((put) => ({ key: put.key, value: put.value, metadata: put.metadata })),
          });
          unsuccessful = response?.unsuccessful_keys ?? [];
        } catch (error) {
          for (const put of chunk) result.failed.push({ key: put.key, reason: describe(error) });
          continue;
        }
        const retry = new Set(unsuccessful);
        for (const put of chunk) {
          if (!retry.has(put.key)) {
            result.written.push(put.key);
            continue;
          }
          if (!stillLeader()) {
            result.failed.push({ key: put.key, reason: "no longer the leader" });
            continue;
          }
          try {
            result.requests++;
            await client.kv.namespaces.values.update(put.key, {
              account_id,
              namespace_id: namespaceId,
              value: put.value,
              metadata: JSON.stringify(put.metadata),
            });
            result.written.push(put.key);
          } catch (error) {
            result.failed.push({ key: put.key, reason: describe(error) });
          }
        }
      }
      for (let i = 0; i < deletes.length; i += BULK_MAX_KEYS) {
        const chunk = deletes.slice(i, i + BULK_MAX_KEYS);
        if (!stillLeader()) {
          for (const key of chunk) result.failed.push({ key, reason: "no longer the leader" });
          continue;
        }
        try {
          result.requests++;
          await client.kv.namespaces.bulkDelete(namespaceId, { account_id, body: chunk });
          result.deleted.push(...chunk);
        } catch (error) {
          for (const key of chunk) result.failed.push({ key, reason: describe(error) });
        }
      }
      return result;
    },
  };
}
