import { DURATION_PATTERN, parseDuration } from "./duration.ts";
import { filtersSchema, prefixReplacements } from "./filters.ts";
import { HTTP_METHODS, TOKEN } from "./http.ts";
import { inlinePoolSchema, maxEntries, weight, wholeNumber } from "./pool.ts";
import { regexProblem } from "./regex.ts";
import * as z from "./zod.ts";

/**
 * The routes document, the value of the KV key `routes` (docs/kv-schema.md). Field names and semantics
 * are Gateway API HTTPRoute v1. Objects are strict: a misspelt field is an error, not ignored.
 */

/** A route or rule name: letters, digits, '.', '_', '-'. */
export const NAME_PATTERN = /^[A-Za-z0-9]([A-Za-z0-9._-]{0,251}[A-Za-z0-9])?$/;
const NAME = NAME_PATTERN;
/** RFC 1123 hostname, optionally with a leading `*.` (Gateway API `Hostname`). */
const HOSTNAME =
  /^(\*\.)?[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?(\.[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?)*$/;

const duration = () =>
  z.string().check(
    z.regex(DURATION_PATTERN, {
      error: 'must be a duration such as "500ms", "10s", "5m" or "1h"',
    }),
  );

/**
 * How long a sticky session lasts: at least a second. Its cookie's Max-Age counts whole seconds,
 * and a cookie of Max-Age 0 is deleted as it arrives, so "0s" would end every session at once.
 */
const sessionTimeout = () =>
  duration().check(
    z.superRefine((text, ctx) => {
      const ms = parseDuration(text);
      if (ms !== undefined && ms < 1000)
        ctx.addIssue({
          code: "custom",
          message: 'must be at least "1s": a session cookie lives whole seconds',
        });
    }),
  );

const pathMatchSchema = z
  .strictObject({
    type: z._default(z.enum(["Exact", "PathPrefix", "RegularExpression"]), "PathPrefix"),
    value: z._default(
      z.string().check(z.maxLength(1024, { error: "must be at most 1024 characters" })),
      "/",
    ),
  })
  .check(
    z.superRefine((path, ctx) => {
      if (path.type === "RegularExpression") {
        const problem = regexProblem(path.value);
        if (problem) ctx.addIssue({ code: "custom", path: ["value"], message: problem });
        return;
      }
      if (!path.value.startsWith("/")) {
        ctx.addIssue({ code: "custom", path: ["value"], message: 'must start with "/"' });
      } else if (/[?#\s]/.test(path.value)) {
        ctx.addIssue({
          code: "custom",
          path: ["value"],
          message: "must not contain '?', '#' or white space",
        });
      }
    }),
  );

function valueMatchSchema(kind: "header" | "query parameter", namePattern: RegExp) {
  return z
    .strictObject({
      type: z._default(z.enum(["Exact", "RegularExpression"]), "Exact"),
      name: z
        .string()
        .check(
          z.regex(namePattern, { error: `must be a valid ${kind} name` }),
          z.maxLength(256, { error: "must be at most 256 characters" }),
        ),
      value: z.string().check(z.maxLength(4096, { error: "must be at most 4096 characters" })),
    })
    .check(
      z.superRefine((match, ctx) => {
        if (match.type !== "RegularExpression") return;
        const problem = regexProblem(match.value);
        if (problem) ctx.addIssue({ code: "custom", path: ["value"], message: problem });
      }),
    );
}

function uniqueNames<T extends { name: string }>(fold: (name: string) => string) {
  return (items: T[], ctx: z.$RefinementCtx<T[]>) => {
    const seen = new Map<string, number>();
    items.forEach((item, index) => {
      const first = seen.get(fold(item.name));
      if (first === undefined) seen.set(fold(item.name), index);
      else {
        ctx.addIssue({
          code: "custom",
          path: [index, "name"],
          message: `repeats the name of entry [${first}]`,
        });
      }
    });
  };
}

/**
 * An empty or omitted list of conditions: one frozen array shared by every match, as a large
 * document has tens of thousands of them (32 bytes each when each is its own).
 */
const NO_CONDITIONS: never[] = Object.freeze([]) as never[];

/** Gives every empty list of conditions of a validated document the one shared array, in place. */
export function shareEmptyConditions<
  D extends { routes: { rules: { matches: HttpRouteMatch[] }[] }[] },
>(document: D): D {
  for (const route of document.routes)
    for (const rule of route.rules)
      for (const match of rule.matches) {
        if (match.headers.length === 0) match.headers = NO_CONDITIONS;
        if (match.queryParams.length === 0) match.queryParams = NO_CONDITIONS;
      }
  return document;
}

const httpRouteMatchSchema = z.strictObject({
  path: z._default(pathMatchSchema, { type: "PathPrefix", value: "/" }),
  method: z.optional(z.enum(HTTP_METHODS, { error: `must be one of ${HTTP_METHODS.join(", ")}` })),
  headers: z._default(
    z
      .array(valueMatchSchema("header", TOKEN))
      .check(maxEntries(16), z.superRefine(uniqueNames((name) => name.toLowerCase()))),
    () => NO_CONDITIONS,
  ),
  queryParams: z._default(
    z
      .array(valueMatchSchema("query parameter", /^[^\s]+$/))
      .check(maxEntries(16), z.superRefine(uniqueNames((name) => name))),
    () => NO_CONDITIONS,
  ),
});

const backendRefSchema = z.strictObject({
  pool: z
    .string()
    .check(
      z.minLength(1, { error: "must name a pool" }),
      z.maxLength(500, { error: "must be at most 500 characters" }),
      z.describe("Pool name: an inline pool of this document or a KV key pool:<name>"),
    ),
  weight: z
    ._default(weight, 1)
    .check(z.describe("Share of new traffic among refs of one priority; 0 = none")),
  priority: z
    ._default(wholeNumber(0, 16), 0)
    .check(
      z.describe(
        "0 takes traffic; higher values only while every lower one has no healthy endpoint",
      ),
    ),
  filters: z
    .optional(filtersSchema)
    .check(z.describe("Applied only when this backendRef is picked")),
});

const cookieName = () =>
  z.string().check(z.regex(TOKEN, { error: "must be a valid cookie name" }), z.maxLength(64));

const sessionPersistenceSchema = z
  .strictObject({
    type: z._default(z.literal("Cookie", { error: 'must be "Cookie"' }), "Cookie"),
    cookieName: z.optional(cookieName()),
    /** Gateway API's name for the cookie's name. */
    sessionName: z.optional(cookieName()),
    absoluteTimeout: z.optional(sessionTimeout()),
    idleTimeout: z.optional(sessionTimeout()),
    cookieConfig: z.optional(
      z.strictObject({
        lifetimeType: z.optional(
          z.enum(["Permanent", "Session"], { error: 'must be "Permanent" or "Session"' }),
        ),
      }),
    ),
  })
  .check(
    z.superRefine((persistence, ctx) => {
      if (persistence.cookieName !== undefined && persistence.sessionName !== undefined)
        ctx.addIssue({
          code: "custom",
          path: ["sessionName"],
          message: "names the cookie as cookieName does: give one of them",
        });
      if (
        persistence.cookieConfig?.lifetimeType === "Permanent" &&
        persistence.absoluteTimeout === undefined
      )
        ctx.addIssue({
          code: "custom",
          path: ["cookieConfig", "lifetimeType"],
          message: '"Permanent" needs absoluteTimeout: it is the cookie\'s Max-Age',
        });
    }),
  );

/** A status within [min, max], said as such. */
const status = (min: number, max: number) => {
  const error = `must be an HTTP status from ${min} to ${max}`;
  return z
    .int({ error: "must be a whole number" })
    .check(z.gte(min, { error }), z.lte(max, { error }));
};

/** The most retries a rule may ask for: the per-pool retry budget bounds what a broken pool gets. */
export const MAX_RETRY_ATTEMPTS = 100;

const retrySchema = z.strictObject({
  attempts: z
    ._default(wholeNumber(0, MAX_RETRY_ATTEMPTS), 1)
    .check(z.describe("Retries after the first try (GEP-1731)")),
  codes: z._default(z.array(status(400, 599)), []),
  backoff: z.optional(duration()),
  bodyBufferBytes: z
    .optional(
      z
        .int({ error: "must be a whole number of bytes" })
        .check(
          z.gte(0, { error: "must be 0 or more" }),
          z.lte(16 * 1024 * 1024, { error: "must be at most 16777216 (16 MiB)" }),
        ),
    )
    .check(
      z.describe(
        "Largest request body buffered for retries (default 1 MiB); larger bodies stream once",
      ),
    ),
  idempotencyKey: z
    ._default(z.enum(["Ignore", "Honor"], { error: 'must be "Ignore" or "Honor"' }), "Ignore")
    .check(
      z.describe(
        "Honor: a POST or PATCH carrying an Idempotency-Key header may be retried (the backend must deduplicate)",
      ),
    ),
});

/** The most hedges a request may have: with the first try, within Workers' six open connections. */
export const MAX_HEDGES = 5;

const hedgeSchema = z.strictObject({
  delay: duration()
    .check(
      z.superRefine((text, ctx) => {
        if (parseDuration(text) === 0)
          ctx.addIssue({ code: "custom", message: 'must be more than "0s"' });
      }),
    )
    .check(
      z.describe(
        "Time without response headers after which another try goes to another endpoint; the first answer wins",
      ),
    ),
  percentile: z
    .optional(
      z
        .number({ error: "must be a number" })
        .check(
          z.gte(50, { error: "must be from 50 to 99.9" }),
          z.lte(99.9, { error: "must be from 50 to 99.9" }),
        ),
    )
    .check(
      z.describe(
        "Hedge at this percentile of the pool's recent times to headers in the isolate instead; delay until 20 are known",
      ),
    ),
  maxHedges: z
    ._default(wholeNumber(1, MAX_HEDGES), 1)
    .check(z.describe("Hedges a request may have beside its first try")),
});

const passiveHealthSchema = z.strictObject({
  failureCodes: z
    ._default(z.array(status(500, 599)), [])
    .check(
      z.describe(
        "Statuses that count as an endpoint's failure for passive health (no answer and timeouts always do)",
      ),
    ),
});

const timeoutsSchema = z
  .strictObject({
    request: z
      .optional(duration())
      .check(
        z.describe(
          'Bounds the whole exchange, retries and the response body included; "0s" for none',
        ),
      ),
    backendRequest: z
      .optional(duration())
      .check(z.describe('Bounds each try, until its whole response has come; "0s" for none')),
  })
  .check(
    z.superRefine((timeouts, ctx) => {
      const request = timeouts.request === undefined ? undefined : parseDuration(timeouts.request);
      const backend =
        timeouts.backendRequest === undefined ? undefined : parseDuration(timeouts.backendRequest);
      if (request && backend && backend > request) {
        ctx.addIssue({
          code: "custom",
          path: ["backendRequest"],
          message: "must not be longer than timeouts.request",
        });
      }
    }),
  );

const NAME_ERROR = "must be a name of letters, digits, '.', '_', '-'";

const httpRouteRuleSchema = z
  .strictObject({
    name: z.optional(z.string().check(z.regex(NAME, { error: NAME_ERROR }))),
    matches: z._default(z.array(httpRouteMatchSchema).check(maxEntries(64)), [
      { path: { type: "PathPrefix", value: "/" }, headers: [], queryParams: [] },
    ]),
    filters: z
      .optional(filtersSchema)
      .check(z.describe("Gateway API HTTPRouteFilters (docs/filters.md)")),
    backendRefs: z
      ._default(z.array(backendRefSchema).check(maxEntries(16)), [])
      .check(
        z.describe(
          "May be empty when a RequestRedirect or a DirectResponse answers; otherwise an empty list answers 500",
        ),
      ),
    sessionPersistence: z.optional(sessionPersistenceSchema),
    retry: z.optional(retrySchema),
    hedge: z
      .optional(hedgeSchema)
      .check(z.describe("Hedged requests for idempotent methods (Envoy's HedgePolicy)")),
    passiveHealth: z.optional(passiveHealthSchema),
    timeouts: z.optional(timeoutsSchema),
  })
  .check(
    z.superRefine((rule, ctx) => {
      // Gateway API: a redirect or a direct response answers by itself, never with backends.
      for (const type of ["RequestRedirect", "DirectResponse"] as const) {
        const at = rule.filters?.findIndex((f) => f.type === type) ?? -1;
        if (at !== -1 && rule.backendRefs.length > 0)
          ctx.addIssue({
            code: "custom",
            path: ["filters", at, "type"],
            message: `a ${type} answers the request itself: the rule must have no backendRefs`,
          });
      }
      rule.backendRefs.forEach((ref, i) => {
        const at = ref.filters?.findIndex((f) => f.type === "DirectResponse") ?? -1;
        if (at !== -1)
          ctx.addIssue({
            code: "custom",
            path: ["backendRefs", i, "filters", at, "type"],
            message:
              "a DirectResponse answers for the whole rule: put it in the rule's filters, without backendRefs",
          });
      });
      // A request is mirrored by the rule's mirrors and by those of the backendRef it goes to.
      const own = mirrorIndexes(rule.filters);
      const tooMany = (count: number) =>
        `a request of this rule would be mirrored ${count} times: at most ${MAX_MIRRORS_PER_REQUEST}, the rule's and a backendRef's together (each mirror sends the whole request again)`;
      if (own.length > MAX_MIRRORS_PER_REQUEST)
        ctx.addIssue({
          code: "custom",
          path: ["filters", own[MAX_MIRRORS_PER_REQUEST] as number],
          message: tooMany(own.length),
        });
      else
        rule.backendRefs.forEach((ref, i) => {
          const refs = mirrorIndexes(ref.filters);
          if (own.length + refs.length > MAX_MIRRORS_PER_REQUEST)
            ctx.addIssue({
              code: "custom",
              path: [
                "backendRefs",
                i,
                "filters",
                refs[MAX_MIRRORS_PER_REQUEST - own.length] as number,
              ],
              message: tooMany(own.length + refs.length),
            });
        });
      // ReplacePrefixMatch replaces what one PathPrefix match matched.
      const uses = [
        ...prefixReplacements(rule.filters ?? []).map((u) => ["filters", ...u.path]),
        ...rule.backendRefs.flatMap((ref, i) =>
          prefixReplacements(ref.filters ?? []).map((u) => [
            "backendRefs",
            i,
            "filters",
            ...u.path,
          ]),
        ),
      ];
      const only = rule.matches.length === 1 ? rule.matches[0] : undefined;
      if (only?.path.type === "PathPrefix") return;
      const has =
        rule.matches.length === 1
          ? `its match is ${only?.path.type}`
          : `it has ${rule.matches.length} matches`;
      for (const path of uses)
        ctx.addIssue({
          code: "custom",
          path,
          message: `ReplacePrefixMatch needs the rule to have exactly one match, of type PathPrefix: ${has}`,
        });
    }),
  );

/**
 * The most copies of one request its mirrors may send (the rule's and a backendRef's together):
 * each sends the whole request again, body included, and takes one of the six connections a
 * Worker's request may have open.
 */
export const MAX_MIRRORS_PER_REQUEST = 4;

/** Indexes of a filter list's RequestMirror filters. */
function mirrorIndexes(filters: readonly { type: string }[] | undefined): number[] {
  return (filters ?? []).flatMap((f, i) => (f.type === "RequestMirror" ? [i] : []));
}

/** The most rules a route may have. */
export const MAX_RULES_PER_ROUTE = 64;

const httpRouteSchema = z.strictObject({
  name: z.string().check(z.regex(NAME, { error: NAME_ERROR })),
  hostnames: z._default(
    z
      .array(
        z.string().check(
          z.maxLength(253, { error: "must be at most 253 characters" }),
          z.regex(HOSTNAME, {
            error: 'must be a hostname such as "shop.example.com" or "*.example.com"',
          }),
        ),
      )
      .check(maxEntries(16)),
    [],
  ),
  rules: z
    .array(httpRouteRuleSchema)
    .check(
      z.minLength(1, { error: "must have at least one rule" }),
      maxEntries(MAX_RULES_PER_ROUTE),
    ),
});

/** Routes without the document-wide rule (unique names): for validating a long list in slices. */
export const routeSliceSchema = z.array(httpRouteSchema);
/** Route names must be unique across the document. */
export const uniqueRouteNames = uniqueNames<{ name: string }>((name) => name);

export const routesDocumentSchema = z
  .strictObject({
    $schema: z.optional(z.string()),
    version: z.literal(1, { error: "must be 1" }),
    routes: z.array(httpRouteSchema).check(z.superRefine(uniqueRouteNames)),
    pools: z._default(
      z.record(
        z.string().check(z.minLength(1, { error: "pool names must not be empty" })),
        inlinePoolSchema,
      ),
      {},
    ),
  })
  .check(z.describe("Switchyard routes document: the value of the KV key routes"));

export type RoutesDocument = z.output<typeof routesDocumentSchema>;
export type RoutesDocumentInput = z.input<typeof routesDocumentSchema>;
export type HttpRoute = z.output<typeof httpRouteSchema>;
export type HttpRouteRule = z.output<typeof httpRouteRuleSchema>;
export type HttpRouteMatch = z.output<typeof httpRouteMatchSchema>;
export type { HttpMethod } from "./http.ts";
