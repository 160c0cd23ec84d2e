import type { KvReader } from "./store.ts";

/**
 * KV as the config store reads it, over texts in memory: for the warm-up (warm.ts), the
 * benchmarks and the unit tests that run the store without a KV service. `read` gives a key's
 * text (null: no such key); `metadata` gives a key's KV metadata (null: none).
 */
export function memoryKv(
  read: (key: string) => string | null,
  metadata: (key: string) => unknown = () => null,
): KvReader {
  const get = async (key: string | string[]) =>
    Array.isArray(key) ? new Map(key.map((k) => [k, read(k)])) : read(key);
  const getWithMetadata = async (key: string, options: { type: "stream" | "text" }) => {
    const text = read(key);
    const value = text === null || options.type === "text" ? text : lazyStream(text);
    return { value, metadata: metadata(key) };
  };
  return { get, getWithMetadata } as KvReader;
}

/**
 * The bytes of `text`, encoded only when read: the store cancels the stream of the `routes` key
 * unread, and encoding 7 MB for nothing would be the benchmark's cost, not the store's.
 */
function lazyStream(text: string): ReadableStream {
  return new ReadableStream(
    {
      pull(controller) {
        controller.enqueue(new TextEncoder().encode(text));
        controller.close();
      },
    },
    { highWaterMark: 0 },
  );
}
