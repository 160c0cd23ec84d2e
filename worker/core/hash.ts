import { endpointOrigin } from "../../contract/index.ts";
/**
 * A fast, stable 53-bit string hash (cyrb53), printed as 14 hex digits. Used for endpoint ids
 * and snapshot generations: stable across isolates and restarts, not a secret (cookies are
 * signed separately), and synchronous so the pure core can use it.
 */
export function stableHash(text: string, seed = 0): string {
  let h1 = 0xdeadbeef ^ seed;
  let h2 = 0x41c6ce57 ^ seed;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ ch, 2654435761);
    h2 = Math.imul(h2 ^ ch, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return (4294967296 * (2097151 & h2) + (h1 >>> 0)).toString(16).padStart(14, "0");
}

/** An endpoint's id: a hash of its URL, the same wherever and whenever it is computed. */
export function endpointId(url: string): string {
  return stableHash(endpointOrigin(url).toLowerCase());
}
