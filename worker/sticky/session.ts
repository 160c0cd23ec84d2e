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
  type SessionSettings,
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
   * The Set-Cookie for a response served by `endpointId`, when the cookie must change; undefined,
   * without a promise, when the client's cookie still holds.
   */
  stamp(
    endpointId: string,
    nowMs: number,
    secure: boolean,
  ): string | undefined | Promise<string | undefined>;
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
  private readonly indexes = new WeakMap<
    CompiledRule,
    Map<HmacKey, RefIndex | Promise<RefIndex>>
  >();
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

  /**
   * The rule's endpoints by their reference under `key`, computed once per rule and key: a
   * promise until the HMACs are done, the index itself from then on.
   */
  private refIndex(rule: CompiledRule, key: HmacKey): RefIndex | Promise<RefIndex> {
    let byKey = this.indexes.get(rule);
    if (!byKey) {
      byKey = new Map();
      this.indexes.set(rule, byKey);
    }
    const index = byKey.get(key);
    if (index === undefined) {
      const ids = new Set<string>();
      for (const tier of rule.tiers)
        for (const ref of tier.refs) for (const e of ref.pool?.endpoints ?? []) ids.add(e.id);
      const held = byKey;
      const computing = Promise.all(
        [...ids].map(async (id) => [await this.refOf(key, id), id] as const),
      ).then((pairs) => {
        const done = new Map(pairs);
        held.set(key, done);
        return done;
      });
      byKey.set(key, computing);
      return computing;
    }
    return index;
  }

  /**
   * The current secret's key first, then the previous one's during a rotation; resolved once per
   * pair of secrets, and from then on given without a promise. A new pair also forgets the
   * cookies verified with the old keys.
   */
  private keysOf(env: SessionSecrets): HmacKey[] | Promise<HmacKey[]> {
    const current = env.STICKY_SECRET;
    const previous = env.STICKY_SECRET_PREVIOUS;
    const held = this.keyList;
    if (held && held.current === current && held.previous === previous) return held.keys;
    const secrets = [current, previous].filter(
      (s): s is string => typeof s === "string" && s.length > 0,
    );
    return Promise.all(secrets.map((s) => this.keyFor(s))).then((keys) => {
      this.keyList = { current, previous, keys };
      this.verified.clear();
      return keys;
    });
  }

  /**
   * The session of a request for its rule; undefined when the rule has none or no secret is set.
   * A returning client's session (keys imported, cookie verified before, the rule's references
   * computed) opens without a promise; anything else resolves once the HMACs are done.
   */
  open(
    rule: CompiledRule,
    request: Request,
    env: SessionSecrets,
    nowMs: number,
    health: HealthLens,
  ): Session | undefined | Promise<Session | undefined> {
    const settings = rule.session;
    if (settings === undefined) return undefined;
    const keys = this.keysOf(env);
    return keys instanceof Promise
      ? keys.then((held) => this.openWith(held, settings, rule, request, nowMs, health))
      : this.openWith(keys, settings, rule, request, nowMs, health);
  }

  private openWith(
    keys: HmacKey[],
    settings: SessionSettings,
    rule: CompiledRule,
    request: Request,
    nowMs: number,
    health: HealthLens,
  ): Session | undefined | Promise<Session | undefined> {
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
    const text = cookieValue(request.headers.get("cookie"), settings.cookieName);
    const read =
      text === undefined
        ? undefined
        : readSticky(
            text,
            settings.scope,
            keys,
            Math.floor(nowMs / 1000),
            settings.limits,
            this.verified,
          );
    return read instanceof Promise
      ? read.then((done) => this.sessionOf(done, keys, signing, settings, rule, health))
      : this.sessionOf(read, keys, signing, settings, rule, health);
  }

  private sessionOf(
    read: StickyRead | undefined,
    keys: HmacKey[],
    signing: HmacKey,
    settings: SessionSettings,
    rule: CompiledRule,
    health: HealthLens,
  ): Session | Promise<Session> {
    if (this.verified.size > VERIFIED_KEPT) this.verified.clear();
    if (!read?.ok) return this.session(read, undefined, signing, settings, rule, health);
    const index = this.refIndex(rule, keys[read.keyIndex] as HmacKey);
    return index instanceof Promise
      ? index.then((refs) =>
          this.session(read, refs.get(read.value.endpointRef), signing, settings, rule, health),
        )
      : this.session(read, index.get(read.value.endpointRef), signing, settings, rule, health);
  }

  private session(
    read: StickyRead | undefined,
    cookieEndpoint: string | undefined,
    signing: HmacKey,
    settings: SessionSettings,
    rule: CompiledRule,
    health: HealthLens,
  ): Session {
    const { cookieName, scope, limits, maxAge } = settings;
    const sticky =
      cookieEndpoint === undefined ? undefined : stickyCandidate(rule, cookieEndpoint, health);
    const refOf = (id: string) => this.refOf(signing, id);
    return {
      sticky,
      stamp(endpointId, stampMs, secure) {
        const nowS = Math.floor(stampMs / 1000);
        const same = read?.ok === true && cookieEndpoint === endpointId;
        // The client's cookie still holds: nothing to sign, no promise.
        if (same && read.keyIndex === 0 && nowS - read.value.lastSeen < refreshAfterS(limits))
          return undefined;
        const issuedAt = same ? read.value.issuedAt : nowS;
        return refOf(endpointId)
          .then((endpointRef) =>
            signSticky({ endpointRef, issuedAt, lastSeen: nowS }, scope, signing),
          )
          .then((value) => {
            // A permanent cookie (which validation gives an absoluteTimeout) lives what is left.
            const { absoluteTimeoutS } = limits;
            const maxAgeS =
              maxAge && absoluteTimeoutS !== undefined
                ? absoluteTimeoutS - (nowS - issuedAt)
                : undefined;
            return setCookieHeader(cookieName, value, { secure, maxAgeS });
          });
      },
    };
  }
}
