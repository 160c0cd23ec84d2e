import { convertV4MiniflareOptions, Miniflare } from "miniflare";
import type { KvBackend } from "./kv-rest.ts";

/**
 * A KV REST emulator backend that is Miniflare's local KV: the same persisted state that
 * `wrangler dev --persist-to DIR` serves (`DIR/v3`), opened as wrangler's own `kv --local`
 * commands open it, so that writes through the REST endpoint reach the running worker.
 */
export async function miniflareKv(
  persistTo: string,
  namespaceId: string,
): Promise<KvBackend & { dispose(): Promise<void> }> {
  const mf = new Miniflare(
    convertV4MiniflareOptions({
      script:
        'addEventListener("fetch", (e) => e.respondWith(new Response(null, { status: 404 })))',
      resourcePersistencePath: `${persistTo}/v3`,
      kvNamespaces: { NAMESPACE: namespaceId },
    }),
  );
  const kv = await mf.getKVNamespace("NAMESPACE");
  return {
    async get(key) {
      const { value, metadata } = await kv.getWithMetadata(key, "text");
      return value === null ? undefined : { value, metadata: metadata ?? null };
    },
    async put(key, entry) {
      await kv.put(
        key,
        entry.value,
        entry.metadata === null || entry.metadata === undefined ? {} : { metadata: entry.metadata },
      );
    },
    async delete(key) {
      await kv.delete(key);
    },
    async list(prefix) {
      const out: { name: string; metadata: unknown }[] = [];
      let cursor: string | undefined;
      do {
        const page = await kv.list({ prefix, cursor });
        for (const key of page.keys) out.push({ name: key.name, metadata: key.metadata ?? null });
        cursor = page.list_complete ? undefined : page.cursor;
      } while (cursor);
      return out;
    },
    dispose: () => mf.dispose(),
  };
}
