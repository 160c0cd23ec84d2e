import * as z from "zod";
import { DURATION_PATTERN, parseDuration } from "./duration.ts";
import { filtersSchema, prefixReplacements } from "./filters.ts";
import { HTTP_METHODS, TOKEN } from "./http.ts";
import { inlinePoolSchema, weight, wholeNumber } from "./pool.ts";
import { regexProblem } from "./regex.ts";

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

const duration = z
  .string()
  .regex(DURATION_PATTERN, { error: 'must be a duration such as "500ms", "10s", "5m" or "1h"' });

const pathMatchSchema = z
  .strictObject({
    type: z.enum(["Exact", "PathPrefix", "RegularExpression"]).default("PathPrefix"),
    value: z.string().max(1024, { error: "must be at most 1024 characters" }).default("/"),
  })
  .superRefine((path, ctx) => {
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
  });

function valueMatchSchema(kind: "header" | "query parameter", namePattern: RegExp) {
  return z
    .strictObject({
      type: z.enum(["Exact", "RegularExpression"]).default("Exact"),
      name: z
        .string()
        .regex(namePattern, { error: `must be a valid ${kind} name` })
        .max(256, { error: "must be at most 256 characters" }),
      value: z.string().max(4096, { error: "must be at most 4096 characters" }),
    })
    .superRefine((match, ctx) => {
      if (match.type !== "RegularExpression") return;
      const problem = regexProblem(match.value);
      if (problem) ctx.addIssue({ code: "custom", path: ["value"], message: problem });
    });
}

function uniqueNames<T extends { name: string }>(fold: (name: string) => string) {
  return (items: T[], ctx: z.RefinementCtx) => {
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
  path: pathMatchSchema.default({ type: "PathPrefix", value: "/" }),
  method: z.enum(HTTP_METHODS, { error: `must be one of ${HTTP_METHODS.join(", ")}` }).optional(),
  headers: z
    .array(valueMatchSchema("header", TOKEN))
    .max(16, { error: "must have at most 16 entries" })
    .superRefine(uniqueNames((name) => name.toLowerCase()))
    .default(() => NO_CONDITIONS),
  queryParams: z
    .array(valueMatchSchema("query parameter", /^[^\s]+$/))
    .max(16, { error: "must have at most 16 entries" })
    .superRefine(uniqueNames((name) => name))
    .default(() => NO_CONDITIONS),
});

const backendRefSchema = z.strictObject({
  pool: z
    .string()
    .min(1, { error: "must name a pool" })
    .max(500, { error: "must be at most 500 characters" })
    .describe("Pool name: an inline pool of this document or a KV key pool:<name>"),
  weight: weight.default(1).describe("Share of new traffic among refs of one priority; 0 = none"),
  priority: wholeNumber(0, 16)
    .default(0)
    .describe("0 takes traffic; higher values only while every lower one has no healthy endpoint"),
  filters: filtersSchema.optional().describe("Applied only when this backendRef is picked"),
});

const sessionPersistenceSchema = z.strictObject({
  type: z.literal("Cookie", { error: 'must be "Cookie"' }).default("Cookie"),
  cookieName: z.string().regex(TOKEN, { error: "must be a valid cookie name" }).max(64).optional(),
  absoluteTimeout: duration.optional(),
  idleTimeout: duration.optional(),
});

const retrySchema = z.strictObject({
  attempts: wholeNumber(0, 10).default(1).describe("Retries after the first try (GEP-1731)"),
  codes: z
    .array(
      z
        .int({ error: "must be a whole number" })
        .min(400, { error: "must be an HTTP status from 400 to 599" })
        .max(599, { error: "must be an HTTP status from 400 to 599" }),
    )
    .default([]),
  backoff: duration.optional(),
  bodyBufferBytes: z
    .int({ error: "must be a whole number of bytes" })
    .min(0, { error: "must be 0 or more" })
    .max(16 * 1024 * 1024, { error: "must be at most 16777216 (16 MiB)" })
    .optional()
    .describe(
      "Largest request body buffered for retries (default 1 MiB); larger bodies stream once",
    ),
  idempotencyKey: z
    .enum(["Ignore", "Honor"], { error: 'must be "Ignore" or "Honor"' })
    .default("Ignore")
    .describe(
      "Honor: a POST or PATCH carrying an Idempotency-Key header may be retried (the backend must deduplicate)",
    ),
});

const passiveHealthSchema = z.strictObject({
  failureCodes: z
    .array(
      z
        .int({ error: "must be a whole number" })
        .min(500, { error: "must be an HTTP status from 500 to 599" })
        .max(599, { error: "must be an HTTP status from 500 to 599" }),
    )
    .default([])
    .describe(
      "Statuses that count as an endpoint's failure for passive health (no answer and timeouts always do)",
    ),
});

const timeoutsSchema = z
  .strictObject({
    request: duration.optional().describe("Bounds the whole exchange, retries included"),
    backendRequest: duration.optional().describe("Bounds each try"),
  })
  .superRefine((timeouts, ctx) => {
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
  });

const httpRouteRuleSchema = z
  .strictObject({
    name: z
      .string()
      .regex(NAME, { error: "must be a name of letters, digits, '.', '_', '-'" })
      .optional(),
    matches: z
      .array(httpRouteMatchSchema)
      .max(64, { error: "must have at most 64 entries" })
      .default([{ path: { type: "PathPrefix", value: "/" }, headers: [], queryParams: [] }]),
    filters: filtersSchema.optional().describe("Gateway API HTTPRouteFilters (docs/filters.md)"),
    backendRefs: z
      .array(backendRefSchema)
      .max(16, { error: "must have at most 16 entries" })
      .default([])
      .describe("May be empty when a RequestRedirect answers; otherwise an empty list answers 500"),
    sessionPersistence: sessionPersistenceSchema.optional(),
    retry: retrySchema.optional(),
    passiveHealth: passiveHealthSchema.optional(),
    timeouts: timeoutsSchema.optional(),
  })
  .superRefine((rule, ctx) => {
    // Gateway API: a redirect answers by itself, so it never comes with backends.
    const redirect = rule.filters?.findIndex((f) => f.type === "RequestRedirect") ?? -1;
    if (redirect !== -1 && rule.backendRefs.length > 0)
      ctx.addIssue({
        code: "custom",
        path: ["filters", redirect, "type"],
        message: "a RequestRedirect answers the request itself: the rule must have no backendRefs",
      });
    // ReplacePrefixMatch replaces what one PathPrefix match matched.
    const uses = [
      ...prefixReplacements(rule.filters ?? []).map((u) => ["filters", ...u.path]),
      ...rule.backendRefs.flatMap((ref, i) =>
        prefixReplacements(ref.filters ?? []).map((u) => ["backendRefs", i, "filters", ...u.path]),
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
  });

/** The most rules a route may have. */
export const MAX_RULES_PER_ROUTE = 64;

const httpRouteSchema = z.strictObject({
  name: z.string().regex(NAME, { error: "must be a name of letters, digits, '.', '_', '-'" }),
  hostnames: z
    .array(
      z.string().max(253, { error: "must be at most 253 characters" }).regex(HOSTNAME, {
        error: 'must be a hostname such as "shop.example.com" or "*.example.com"',
      }),
    )
    .max(16, { error: "must have at most 16 entries" })
    .default([]),
  rules: z
    .array(httpRouteRuleSchema)
    .min(1, { error: "must have at least one rule" })
    .max(MAX_RULES_PER_ROUTE, { error: `must have at most ${MAX_RULES_PER_ROUTE} entries` }),
});

/** Routes without the document-wide rule (unique names): for validating a long list in slices. */
export const routeSliceSchema = z.array(httpRouteSchema);
/** Route names must be unique across the document. */
export const uniqueRouteNames = uniqueNames<{ name: string }>((name) => name);

export const routesDocumentSchema = z
  .strictObject({
    $schema: z.string().optional(),
    version: z.literal(1, { error: "must be 1" }),
    routes: z.array(httpRouteSchema).superRefine(uniqueRouteNames),
    pools: z
      .record(z.string().min(1, { error: "pool names must not be empty" }), inlinePoolSchema)
      .default({}),
  })
  .describe("Switchyard routes document: the value of the KV key routes");

export type RoutesDocument = z.output<typeof routesDocumentSchema>;
export type RoutesDocumentInput = z.input<typeof routesDocumentSchema>;
export type HttpRoute = z.output<typeof httpRouteSchema>;
export type HttpRouteRule = z.output<typeof httpRouteRuleSchema>;
export type HttpRouteMatch = z.output<typeof httpRouteMatchSchema>;
export type { HttpMethod } from "./http.ts";
