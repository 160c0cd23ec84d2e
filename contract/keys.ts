/** KV keys of the Switchyard namespace (docs/kv-schema.md). */

/** The routes document, owned by operators. */
export const ROUTES_KEY = "routes";

/** Prefix of pool documents: `pool:<pool name>`. */
export const POOL_KEY_PREFIX = "pool:";

/** KV's own limit on one bulk `get` from a Worker. */
export const KV_BULK_GET_MAX_KEYS = 100;

export function poolKey(poolName: string): string {
  return `${POOL_KEY_PREFIX}${poolName}`;
}

/** The pool name of a `pool:` key, or `undefined` for any other key. */
export function poolNameOfKey(key: string): string | undefined {
  return key.startsWith(POOL_KEY_PREFIX) ? key.slice(POOL_KEY_PREFIX.length) : undefined;
}

export const SYNC_OWNER = "switchyard-sync";

/**
 * KV metadata of a key written by discovery-sync (docs/kv-schema.md): who owns it (`owner` and
 * the owning `cluster` name), plus the document's `generation` and a `hash` of its content, so
 * that one key listing is enough to plan.
 */
export interface SyncMetadata {
  owner: typeof SYNC_OWNER;
  cluster: string;
  generation: number;
  /** SHA-256 (base64url, 22 characters) of the canonical pool body. */
  hash: string;
}

/** Whether a key's metadata says discovery-sync of this owner wrote it. */
export function isOwnedBy(metadata: unknown, owner: string): metadata is SyncMetadata {
  const m = metadata as Partial<SyncMetadata> | null;
  return m?.owner === SYNC_OWNER && m.cluster === owner;
}

/** Who holds a key, in words, from its metadata. */
export function holderOf(metadata: unknown): string {
  const m = metadata as Partial<SyncMetadata> | null;
  if (m?.owner === SYNC_OWNER) return `discovery-sync of cluster ${JSON.stringify(m.cluster)}`;
  return "a key without discovery-sync ownership (hand-kept)";
}
