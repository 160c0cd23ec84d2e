import type { CompiledRule } from "../core/snapshot.ts";
import {
  cookieValue,
  type HmacKey,
  importStickyKey,
  readSticky,
  type SessionSettings,
  type StickyLimits,
  type StickyRead,
  setCookieHeader,
  signSticky,
} from "../core/sticky-cookie.ts";

/**
 * Session persistence for one request: reads the rule's cookie and, once a backend has
 * answered, says which Set-Cookie to send. Keys are imported once per secret and kept.
 */

const keyCache = new Map<string, Promise<HmacKey>>();

function keyFor(secret: string): Promise<HmacKey> {
  let key = keyCache.get(secret);
  if (key === undefined) {
    key = importStickyKey(secret);
    keyCache.set(secret, key);
  }
  return key;
}

/** The current secret's key first, then the previous one's during a rotation. */
export async function stickyKeys(
  secret: string | undefined,
  previous: string | undefined,
): Promise<HmacKey[]> {
  const secrets = [secret, previous].filter(
    (s): s is string => typeof s === "string" && s.length > 0,
  );
  return Promise.all(secrets.map(keyFor));
}

export interface Session extends SessionSettings {
  /** What the request's cookie said; undefined when it had none. */
  read: StickyRead | undefined;
}

export async function readSession(
  rule: CompiledRule,
  cookieHeader: string | null,
  keys: readonly HmacKey[],
  nowS: number,
): Promise<Session | undefined> {
  const settings = rule.session;
  if (settings === undefined || keys.length === 0) return undefined;
  const { cookieName, limits } = settings;
  const text = cookieValue(cookieHeader, cookieName);
  const read =
    text === undefined ? undefined : await readSticky(text, cookieName, keys, nowS, limits);
  return { cookieName, limits, read };
}

/** How stale last-seen may get before the cookie is re-sent to move it forward. */
function refreshAfterS(limits: StickyLimits): number {
  return limits.idleTimeoutS === undefined
    ? Number.POSITIVE_INFINITY
    : Math.min(60, limits.idleTimeoutS / 4);
}

/** The Set-Cookie for a response served by `endpointId`, or undefined when the cookie stands. */
export async function sessionCookie(
  session: Session,
  endpointId: string,
  key: HmacKey,
  nowS: number,
  secure: boolean,
): Promise<string | undefined> {
  const read = session.read;
  const same = read?.ok === true && read.value.endpointId === endpointId;
  if (same && read.keyIndex === 0 && nowS - read.value.lastSeen < refreshAfterS(session.limits))
    return undefined;
  const issuedAt = same ? read.value.issuedAt : nowS;
  const value = await signSticky({ endpointId, issuedAt, lastSeen: nowS }, session.cookieName, key);
  const { absoluteTimeoutS, idleTimeoutS } = session.limits;
  const maxAgeS =
    absoluteTimeoutS !== undefined ? absoluteTimeoutS - (nowS - issuedAt) : idleTimeoutS;
  return setCookieHeader(session.cookieName, value, { secure, maxAgeS });
}
