import { ALL_HEALTHY, type HealthLens } from "../core/health.ts";
import type { Candidate } from "../core/pick.ts";
import type { CompiledRule } from "../core/snapshot.ts";
import type { Logger } from "../log.ts";
import {
  cookieValue,
  endpointRef,
  type HmacKey,
  importStickyKey,
  readSticky,
  type StickyLimits,
  type StickyRead,
  setCookieHeader,
  signSticky,
  type VerifiedCookies,
} from "./cookie.ts";

/** Verified cookie values an isolate remembers before it starts over. */
const VERIFIED_KEPT = 50_000;

/**
 * Sticky sessions, the one home of session persistence (Gateway API `sessionPersistence`): a
 * request `open`s the session of its rule, which names the endpoint its cookie points at (if
 * that endpoint is still in the rule's pools and not ejected); once a backend has answered, the
 * session `stamp`s the response with a new or refreshed cookie. The cookie codec is pure
 * (cookie.ts); this is the adapter that holds the HMAC keys of STICKY_SECRET (and
 * STICKY_SECRET_PREVIOUS during a rotation) and says once when the secret is missing.
 */

export interface SessionSecrets {
  STICKY_SECRET?: string;
  STICKY_SECRET_PREVIOUS?: string;
}

export interface Session {
  /** The endpoint the request's cookie names, when it can still take the request. */
  readonly sticky: Candidate | undefined;
  /**
   * The Set-Cookie for a response served by `endpointId`, when the cookie must change; undefined
   * when the client's cookie still holds.
   */
  stamp(endpointId: string, nowMs: number, secure: boolean): Promise<string | undefined>;
}

/** How stale last-seen may get before the cookie is re-sent to move it forward. */
function refreshAfterS(limits: StickyLimits): number {
  return limits.idleTimeoutS === undefined
    ? Number.POSITIVE_INFINITY
    : Math.min(60, limits.idleTimeoutS / 4);
}

/** Every endpoint of a rule's pools by id, built on first use and kept with the rule. */
const indexes = new WeakMap<CompiledRule, Map<string, Candidate>>();

function endpointsById(rule: CompiledRule): Map<string, Candidate> {
  let index = indexes.get(rule);
  if (index === undefined) {
    index = new Map();
    for (const tier of rule.tiers) {
      for (const ref of tier.refs) {
        for (const endpoint of ref.pool?.endpoints ?? []) {
          if (!index.has(endpoint.id) && ref.pool)
            index.set(endpoint.id, { endpoint, pool: ref.pool });
        }
      }
    }
    indexes.set(rule, index);
  }
  return index;
}

/** The candidate a sticky cookie names, if it is still in the rule's pools and not ejected. */
export function stickyCandidate(
  rule: CompiledRule,
  endpointId: string,
  health: HealthLens = ALL_HEALTHY,
): Candidate | undefined {
  const found = endpointsById(rule).get(endpointId);
  if (!found || health(found.pool)?.avoided.has(endpointId)) return undefined;
  return found;
}

/** Endpoint ids by their keyed reference, per key: what a cookie's reference resolves to. */
type RefIndex = Map<string, string>;

export class Sessions {
  private readonly keys = new Map<string, Promise<HmacKey>>();
  /** Each key's references of the endpoint ids seen so far. */
  private readonly refs = new Map<HmacKey, Map<string, Promise<string>>>();
  private readonly indexes = new WeakMap<CompiledRule, Map<HmacKey, Promise<RefIndex>>>();
  private warnedNoSecret = false;
  private keyList: { current?: string; previous?: string; keys: HmacKey[] } | undefined;
  /** Cookie values verified under the current keys (bounded: cleared when it grows past a limit). */
  private readonly verified: VerifiedCookies = new Map();
  private readonly log: Logger;

  constructor(log: Logger) {
    this.log = log;
  }

  private keyFor(secret: string): Promise<HmacKey> {
    let key = this.keys.get(secret);
    if (key === undefined) {
      key = importStickyKey(secret);
      this.keys.set(secret, key);
    }
    return key;
  }

  private refOf(key: HmacKey, endpointId: string): Promise<string> {
    let byId = this.refs.get(key);
    if (!byId || byId.size > 100_000) {
      byId = new Map();
      this.refs.set(key, byId);
    }
    let ref = byId.get(endpointId);
    if (ref === undefined) {
      ref = endpointRef(key, endpointId);
      byId.set(endpointId, ref);
    }
    return ref;
  }

  /** The rule's endpoints by their reference under `key`, computed once per rule and key. */
  private refIndex(rule: CompiledRule, key: HmacKey): Promise<RefIndex> {
    let byKey = this.indexes.get(rule);
    if (!byKey) {
      byKey = new Map();
      this.indexes.set(rule, byKey);
    }
    let index = byKey.get(key);
    if (index === undefined) {
      const ids = new Set<string>();
      for (const tier of rule.tiers)
        for (const ref of tier.refs) for (const e of ref.pool?.endpoints ?? []) ids.add(e.id);
      index = Promise.all(
        [...ids].map(async (id) => [await this.refOf(key, id), id] as const),
      ).then((pairs) => new Map(pairs));
      byKey.set(key, index);
    }
    return index;
  }

  /**
   * The current secret's key first, then the previous one's during a rotation; resolved once per
   * pair of secrets. A new pair also forgets the cookies verified with the old keys.
   */
  private async keysOf(env: SessionSecrets): Promise<HmacKey[]> {
    const current = env.STICKY_SECRET;
    const previous = env.STICKY_SECRET_PREVIOUS;
    const held = this.keyList;
    if (held && held.current === current && held.previous === previous) return held.keys;
    const secrets = [current, previous].filter(
      (s): s is string => typeof s === "string" && s.length > 0,
    );
    const keys = await Promise.all(secrets.map((s) => this.keyFor(s)));
    this.keyList = { current, previous, keys };
    this.verified.clear();
    return keys;
  }

  /** The session of a request for its rule; undefined when the rule has none or no secret is set. */
  async open(
    rule: CompiledRule,
    request: Request,
    env: SessionSecrets,
    nowMs: number,
    health: HealthLens,
  ): Promise<Session | undefined> {
    const settings = rule.session;
    if (settings === undefined) return undefined;
    const keys = await this.keysOf(env);
    const signing = keys[0];
    if (signing === undefined) {
      if (!this.warnedNoSecret) {
        this.warnedNoSecret = true;
        this.log.error("STICKY_SECRET is not set: sessionPersistence is off until it is", {
          route: rule.routeName,
        });
      }
      return undefined;
    }
    const { cookieName, scope, limits } = settings;
    const text = cookieValue(request.headers.get("cookie"), cookieName);
    const read: StickyRead | undefined =
      text === undefined
        ? undefined
        : await readSticky(text, scope, keys, Math.floor(nowMs / 1000), limits, this.verified);
    if (this.verified.size > VERIFIED_KEPT) this.verified.clear();
    let cookieEndpoint: string | undefined;
    if (read?.ok) {
      const index = await this.refIndex(rule, keys[read.keyIndex] as HmacKey);
      cookieEndpoint = index.get(read.value.endpointRef);
    }
    const sticky =
      cookieEndpoint === undefined ? undefined : stickyCandidate(rule, cookieEndpoint, health);
    const refOf = (id: string) => this.refOf(signing, id);
    return {
      sticky,
      async stamp(endpointId, stampMs, secure) {
        const nowS = Math.floor(stampMs / 1000);
        const same = read?.ok === true && cookieEndpoint === endpointId;
        if (same && read.keyIndex === 0 && nowS - read.value.lastSeen < refreshAfterS(limits))
          return undefined;
        const issuedAt = same ? read.value.issuedAt : nowS;
        const value = await signSticky(
          { endpointRef: await refOf(endpointId), issuedAt, lastSeen: nowS },
          scope,
          signing,
        );
        const { absoluteTimeoutS, idleTimeoutS } = limits;
        const maxAgeS =
          absoluteTimeoutS !== undefined ? absoluteTimeoutS - (nowS - issuedAt) : idleTimeoutS;
        return setCookieHeader(cookieName, value, { secure, maxAgeS });
      },
    };
  }
}
