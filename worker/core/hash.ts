import { endpointOrigin } from "../../contract/index.ts";
/**
 * A fast, stable 53-bit string hash (cyrb53), fed a text in parts: `update` over consecutive
 * ranges gives what one `update` over the whole text gives. Used for endpoint ids, snapshot
 * generations and to recognise a KV text seen before: stable across isolates and restarts, not
 * a secret (cookies are signed separately), and synchronous so the pure core can use it.
 */
export class TextHash {
  private h1: number;
  private h2: number;

  constructor(seed = 0) {
    this.h1 = 0xdeadbeef ^ seed;
    this.h2 = 0x41c6ce57 ^ seed;
  }

  update(text: string, start = 0, end = text.length): this {
    let h1 = this.h1;
    let h2 = this.h2;
    for (let i = start; i < end; i++) {
      const ch = text.charCodeAt(i);
      h1 = Math.imul(h1 ^ ch, 2654435761);
      h2 = Math.imul(h2 ^ ch, 1597334677);
    }
    this.h1 = h1;
    this.h2 = h2;
    return this;
  }

  /** 14 hex digits. */
  digest(): string {
    let h1 = this.h1;
    let h2 = this.h2;
    h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
    h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
    return (4294967296 * (2097151 & h2) + (h1 >>> 0)).toString(16).padStart(14, "0");
  }
}

/** cyrb53 of a whole text, as 14 hex digits. */
export function stableHash(text: string, seed = 0): string {
  return new TextHash(seed).update(text).digest();
}

/** An endpoint's id: a hash of its URL, the same wherever and whenever it is computed. */
export function endpointId(url: string): string {
  return stableHash(endpointOrigin(url).toLowerCase());
}
