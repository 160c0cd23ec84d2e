import { createHash } from "node:crypto";
import {
  holderOf,
  isOwnedBy,
  type PoolDocumentInput,
  SYNC_OWNER,
  type SyncMetadata,
} from "../contract/index.ts";
import type { DesiredPool, PoolBody } from "./desired.ts";

/**
 * The plan stage (pure), after external-dns: the difference between the desired pools and what
 * KV holds, restricted to keys this cluster owns. Ownership, the last generation and a hash of
 * the content live in each key's KV metadata, so one key listing (1,000 keys a call) is enough
 * to plan, without reading values. No-ops are dropped. A plan that would delete more than half
 * of the owned pools keeps its writes and drops its deletes, unless mass deletes are allowed.
 * Held keys (a Service whose slices are all gone, within its grace period) are neither written
 * nor deleted: KV keeps what it has.
 */

export interface StoredKey {
  key: string;
  metadata: unknown;
}

export interface Put {
  key: string;
  service: string;
  value: string;
  metadata: SyncMetadata;
  endpoints: number;
}

export interface Plan {
  puts: Put[];
  deletes: string[];
  /** Desired keys held by someone else: never written. */
  conflicts: { key: string; heldBy: string }[];
  /** Deletes dropped because they were more than half of the owned pools. */
  refusedDeletes: string[];
  unchanged: number;
}

export interface PlanOptions {
  cluster: string;
  /** RFC 3339 time written as updatedAt. */
  now: string;
  allowMassDelete: boolean;
  /** Desired keys to leave as KV has them for now. */
  hold?: ReadonlySet<string>;
}

export function bodyHash(body: PoolBody): string {
  return createHash("sha256").update(JSON.stringify(body)).digest("base64url").slice(0, 22);
}

export function plan(
  desired: ReadonlyMap<string, DesiredPool>,
  stored: readonly StoredKey[],
  options: PlanOptions,
): Plan {
  const held = new Map(stored.map((s) => [s.key, s.metadata]));
  const puts: Put[] = [];
  const conflicts: Plan["conflicts"] = [];
  let unchanged = 0;
  for (const pool of desired.values()) {
    if (options.hold?.has(pool.key)) continue;
    const hash = pool.hash ?? bodyHash(pool.body);
    const current = held.get(pool.key);
    let generation = 1;
    if (held.has(pool.key)) {
      if (!isOwnedBy(current, options.cluster)) {
        conflicts.push({ key: pool.key, heldBy: holderOf(current) });
        continue;
      }
      if (current.hash === hash) {
        unchanged++;
        continue;
      }
      generation = (Number.isSafeInteger(current.generation) ? current.generation : 0) + 1;
    }
    const document: PoolDocumentInput = {
      version: 1,
      generation,
      updatedAt: options.now,
      ...pool.body,
    };
    puts.push({
      key: pool.key,
      service: pool.service,
      value: JSON.stringify(document),
      metadata: { owner: SYNC_OWNER, cluster: options.cluster, generation, hash },
      endpoints: pool.body.endpoints.length,
    });
  }
  const owned = stored.filter((s) => isOwnedBy(s.metadata, options.cluster));
  const deletes = owned
    .filter((s) => !desired.has(s.key) && !options.hold?.has(s.key))
    .map((s) => s.key);
  const mass = deletes.length > owned.length / 2;
  if (mass && !options.allowMassDelete && deletes.length > 0) {
    return { puts, deletes: [], conflicts, refusedDeletes: deletes, unchanged };
  }
  return { puts, deletes, conflicts, refusedDeletes: [], unchanged };
}
