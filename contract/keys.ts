/** KV keys of the Switchyard namespace (docs/kv-schema.md). */

/** The routes document, owned by operators. */
export const ROUTES_KEY = "routes";

/** Prefix of pool documents: `pool:<pool name>`. */
export const POOL_KEY_PREFIX = "pool:";

/** KV's own limit on one bulk `get` from a Worker. */
export const KV_BULK_GET_MAX_KEYS = 100;

/** KV's limit on a key's length in bytes. */
export const KV_KEY_MAX_BYTES = 512;

export function poolKey(poolName: string): string {
  return `${POOL_KEY_PREFIX}${poolName}`;
}

/** The pool name of a `pool:` key, or `undefined` for any other key. */
export function poolNameOfKey(key: string): string | undefined {
  return key.startsWith(POOL_KEY_PREFIX) ? key.slice(POOL_KEY_PREFIX.length) : undefined;
}

/** KV metadata that marks a key as written by discovery-sync for one cluster (docs/kv-schema.md). */
export interface OwnerMetadata {
  owner: "switchyard-sync";
  cluster: string;
}

export const SYNC_OWNER = "switchyard-sync";
