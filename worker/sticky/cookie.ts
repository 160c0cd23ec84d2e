/**
 * The session-persistence cookie codec. A cookie names an endpoint by a keyed reference (an HMAC
 * of its id under the sticky secret: without the secret, nothing about the endpoint's address
 * can be learnt or guessed from it) with the times it was issued and last seen, signed with
 * HMAC-SHA-256 over the rule it belongs to (route and rule names), the cookie's name and the
 * value, so a cookie of one rule is never honoured by another:
 *
 *   <endpoint ref, base64url, 96 bits>.<issued, base 36 s>.<last seen, base 36 s>.<MAC, 128 bits>
 *
 * Reading tries each key in order (the current secret, then the previous one during a rotation).
 * Pure: keys and `now` are passed in; HMAC is WebCrypto, deterministic for its inputs.
 */

import { durationMs } from "../../contract/index.ts";
import { stableHash } from "../core/hash.ts";

export const MAX_COOKIE_LENGTH = 200;
/** A WebCrypto HMAC key (named so for both the Node and the workerd type libraries). */
export type HmacKey = Awaited<ReturnType<typeof crypto.subtle.importKey>>;
const MAC_BYTES = 16;
const VALUE = /^([A-Za-z0-9_-]{16})\.([0-9a-z]{1,10})\.([0-9a-z]{1,10})\.([A-Za-z0-9_-]{22})$/;
/** A session without configured timeouts ends after a day: no cookie lives forever. */
export const DEFAULT_MAX_LIFETIME_S = 86_400;

export interface StickyValue {
  /** The endpoint's keyed reference (endpointRef), not its id. */
  endpointRef: string;
  /** Seconds since the epoch. */
  issuedAt: number;
  lastSeen: number;
}

export interface StickyLimits {
  absoluteTimeoutS: number | undefined;
  idleTimeoutS: number | undefined;
}

export type StickyRead =
  | { ok: true; value: StickyValue; keyIndex: number }
  | { ok: false; reason: "malformed" | "oversized" | "tampered" | "expired" };

const encoder = new TextEncoder();

export function importStickyKey(secret: string): Promise<HmacKey> {
  return crypto.subtle.importKey(
    "raw",
    encoder.encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
}

function base64url(bytes: Uint8Array): string {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** Which cookie of which rule: what a cookie's MAC is bound to. */
export interface CookieScope {
  name: string;
  routeName: string;
  ruleName: string | number;
}

async function mac(key: HmacKey, scope: CookieScope, payload: string): Promise<string> {
  // JSON keeps the parts apart: route "a-b" rule "c" never signs like route "a" rule "b-c".
  const input = JSON.stringify([
    "cookie",
    scope.routeName,
    String(scope.ruleName),
    scope.name,
    payload,
  ]);
  const signature = await crypto.subtle.sign("HMAC", key, encoder.encode(input));
  return base64url(new Uint8Array(signature, 0, MAC_BYTES));
}

/** An endpoint's reference in cookies: 96 bits of HMAC of its id under the key. */
export async function endpointRef(key: HmacKey, endpointId: string): Promise<string> {
  const signature = await crypto.subtle.sign(
    "HMAC",
    key,
    encoder.encode(`endpoint\n${endpointId}`),
  );
  return base64url(new Uint8Array(signature, 0, 12));
}

function equalInConstantTime(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let difference = 0;
  for (let i = 0; i < a.length; i++) difference |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return difference === 0;
}

export async function signSticky(
  value: StickyValue,
  scope: CookieScope,
  key: HmacKey,
): Promise<string> {
  const payload = `${value.endpointRef}.${value.issuedAt.toString(36)}.${value.lastSeen.toString(36)}`;
  return `${payload}.${await mac(key, scope, payload)}`;
}

/**
 * A cookie value whose MAC was verified: the rule it was verified for, and the value read, which
 * every request presenting the value shares (never changed once made).
 */
export interface VerifiedCookie {
  scope: CookieScope;
  read: Extract<StickyRead, { ok: true }>;
}

/**
 * Cookie values whose MAC was verified, by their text. The caller owns it (one per isolate and
 * key list) and drops it when the keys change; only genuine values enter it, so it spares a
 * returning client the HMAC, the parse and every allocation, and nothing else: its times are
 * still judged on every request.
 */
export type VerifiedCookies = Map<string, VerifiedCookie>;

/** The same rule's cookie: the MAC binds a value to its scope, so a value of one is not another's. */
function sameScope(a: CookieScope, b: CookieScope): boolean {
  return (
    a === b ||
    (a.name === b.name && a.routeName === b.routeName && String(a.ruleName) === String(b.ruleName))
  );
}

/**
 * A cookie value read: genuine (signed by one of `keys` for this scope) and within its limits,
 * or why not. A value in `verified` is judged at once; any other is verified first (a promise).
 */
export function readSticky(
  text: string,
  scope: CookieScope,
  keys: readonly HmacKey[],
  nowS: number,
  limits: StickyLimits,
  verified?: VerifiedCookies,
): StickyRead | Promise<StickyRead> {
  if (text.length > MAX_COOKIE_LENGTH) return { ok: false, reason: "oversized" };
  // A value verified before, for this rule, is judged at once, without a promise or a parse: a
  // returning client's path. A value verified for one rule proves nothing for another.
  const known = verified?.get(text);
  if (known !== undefined && sameScope(known.scope, scope)) return judged(known.read, nowS, limits);
  const parts = VALUE.exec(text);
  if (!parts) return { ok: false, reason: "malformed" };
  const [, endpointRef, issued, seen, signature] = parts as unknown as [
    string,
    string,
    string,
    string,
    string,
  ];
  return verifiedBy(keys, scope, `${endpointRef}.${issued}.${seen}`, signature).then(
    (keyIndex): StickyRead => {
      if (keyIndex === -1) return { ok: false, reason: "tampered" };
      const read = {
        ok: true,
        value: {
          endpointRef,
          issuedAt: Number.parseInt(issued, 36),
          lastSeen: Number.parseInt(seen, 36),
        },
        keyIndex,
      } as const;
      verified?.set(text, { scope, read });
      return judged(read, nowS, limits);
    },
  );
}

/** The index of the first key whose MAC of `payload` is `signature`, or -1. */
async function verifiedBy(
  keys: readonly HmacKey[],
  scope: CookieScope,
  payload: string,
  signature: string,
): Promise<number> {
  for (let i = 0; i < keys.length; i++) {
    if (equalInConstantTime(await mac(keys[i] as HmacKey, scope, payload), signature)) return i;
  }
  return -1;
}

/** A genuine value, judged against the clock and the limits: itself while it holds. */
function judged(
  read: Extract<StickyRead, { ok: true }>,
  nowS: number,
  limits: StickyLimits,
): StickyRead {
  const value = read.value;
  if (value.issuedAt > nowS + 60 || value.lastSeen < value.issuedAt)
    return { ok: false, reason: "malformed" };
  if (limits.absoluteTimeoutS !== undefined && nowS - value.issuedAt >= limits.absoluteTimeoutS) {
    return { ok: false, reason: "expired" };
  }
  if (limits.idleTimeoutS !== undefined && nowS - value.lastSeen >= limits.idleTimeoutS) {
    return { ok: false, reason: "expired" };
  }
  return read;
}

/** The first value of a cookie in a Cookie header, or undefined. */
export function cookieValue(header: string | null, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq !== -1 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

export interface SessionSettings {
  cookieName: string;
  scope: CookieScope;
  limits: StickyLimits;
  /**
   * Whether the cookie carries a Max-Age: only with Gateway API's lifetimeType "Permanent".
   * Without one ("Session", the default) the browser drops it when its session ends; the limits
   * are judged from the signed times either way.
   */
  maxAge: boolean;
}

/** A rule's cookie name and time limits, from its sessionPersistence block. */
export function sessionSettings(
  persistence: {
    cookieName?: string;
    sessionName?: string;
    absoluteTimeout?: string;
    idleTimeout?: string;
    cookieConfig?: { lifetimeType?: "Permanent" | "Session" };
  },
  routeName: string,
  ruleName: string | number,
): SessionSettings {
  const seconds = (text: string | undefined) =>
    text === undefined ? undefined : durationMs(text) / 1000;
  const absoluteTimeoutS = seconds(persistence.absoluteTimeout);
  const idleTimeoutS = seconds(persistence.idleTimeout);
  const cookieName =
    persistence.cookieName ?? persistence.sessionName ?? defaultCookieName(routeName, ruleName);
  return {
    cookieName,
    scope: { name: cookieName, routeName, ruleName },
    limits: {
      absoluteTimeoutS:
        absoluteTimeoutS ?? (idleTimeoutS === undefined ? DEFAULT_MAX_LIFETIME_S : undefined),
      idleTimeoutS,
    },
    maxAge: persistence.cookieConfig?.lifetimeType === "Permanent",
  };
}

/**
 * The default cookie name of a rule: `sy-` and a hash of route and rule names, one per rule and
 * never the same for two (`sy-<route>-<rule>` was: route "x" rule "y-z" and route "x-y" rule "z").
 */
export function defaultCookieName(routeName: string, ruleName: string | number): string {
  return `sy-${stableHash(JSON.stringify([routeName, String(ruleName)])).slice(0, 12)}`;
}

export function setCookieHeader(
  name: string,
  value: string,
  options: { secure: boolean; maxAgeS: number | undefined },
): string {
  let header = `${name}=${value}; Path=/; HttpOnly; SameSite=Lax`;
  if (options.secure) header += "; Secure";
  if (options.maxAgeS !== undefined)
    header += `; Max-Age=${Math.max(0, Math.floor(options.maxAgeS))}`;
  return header;
}
