import * as z from "./zod.ts";

/** Name of a Workers binding, as wrangler accepts it. */
const BINDING_NAME = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

/** RFC 3339 date-time, e.g. `2026-11-25T10:00:00Z`. */
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

const MAX_WEIGHT = 1_000_000;

/** An endpoint URL is an origin: scheme, host and optional port, nothing else. */
export function originProblem(text: string): string | undefined {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return "must be an absolute http:// or https:// URL";
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    return `must use http or https, not ${url.protocol.slice(0, -1)}`;
  }
  if (url.username || url.password) return "must not carry credentials";
  // `http://a.test/?` and `http://a.test/#` parse with an empty query and fragment, but the
  // request path appended to them would land in the query or fragment.
  if (/[?#]/.test(text)) {
    return "must be an origin only (scheme, host, port): the request path is appended to it";
  }
  if (url.pathname !== "/" || url.search || url.hash) {
    return "must be an origin only (scheme, host, port): the request path is appended to it";
  }
  return undefined;
}

/**
 * The origin of an endpoint URL that `originProblem` accepted: the URL without its optional
 * trailing slash. Every place that compares, hashes or fetches endpoints uses this form.
 */
export function endpointOrigin(url: string): string {
  return url.endsWith("/") ? url.slice(0, -1) : url;
}

const endpointUrl = z.string().check(
  z.superRefine((text, ctx) => {
    const problem = originProblem(text);
    if (problem) ctx.addIssue({ code: "custom", message: problem });
  }),
);

/** A whole number from `min` to `max`, with the contract's wording for each way it can fail. */
export function wholeNumber(min: number, max = Number.MAX_SAFE_INTEGER) {
  return max === Number.MAX_SAFE_INTEGER
    ? z
        .int({ error: "must be a whole number" })
        .check(z.gte(min, { error: `must be ${min} or more` }))
    : z
        .int({ error: "must be a whole number" })
        .check(
          z.gte(min, { error: `must be ${min} or more` }),
          z.lte(max, { error: `must be at most ${max}` }),
        );
}

/** At most `n` entries in a list, with the contract's wording. */
export function maxEntries(n: number) {
  return z.maxLength(n, { error: `must have at most ${n} entries` });
}

export const weight = wholeNumber(0, MAX_WEIGHT);

const endpointSchema = z
  .strictObject({
    url: endpointUrl.check(
      z.describe("Origin the request is sent to, e.g. https://pod-a.example.com:8443"),
    ),
    weight: z
      ._default(weight, 1)
      .check(z.describe("Share of new traffic within the pool; 0 = none")),
    state: z
      ._default(z.enum(["ready", "draining"]), "ready")
      .check(z.describe("draining: keeps sticky sessions, gets no new ones")),
    zone: z.optional(z.string().check(z.minLength(1))),
    readySince: z.optional(
      z.string().check(z.regex(RFC3339, { error: "must be an RFC 3339 date-time" })),
    ),
  })
  .check(z.describe("One backend of a pool"));

const transportSchema = z.strictObject({
  binding: z
    .string()
    .check(
      z.regex(BINDING_NAME, { error: "must be a Workers binding name such as VPC_SHOP" }),
      z.describe("Fetch through env[binding].fetch (Workers VPC / Tunnel) instead of the Internet"),
    ),
});

const poolFields = {
  endpoints: z.array(endpointSchema).check(
    z.superRefine((endpoints, ctx) => {
      const seen = new Map<string, number>();
      endpoints.forEach((endpoint, index) => {
        const key = endpointOrigin(endpoint.url).toLowerCase();
        const first = seen.get(key);
        if (first === undefined) seen.set(key, index);
        else {
          ctx.addIssue({
            code: "custom",
            path: [index, "url"],
            message: `duplicates endpoints[${first}].url`,
          });
        }
      });
    }),
  ),
  transport: z.optional(transportSchema),
};

const rfc3339 = () =>
  z.string().check(z.regex(RFC3339, { error: "must be an RFC 3339 date-time" }));

/** A pool document, the value of a `pool:<name>` key (docs/kv-schema.md). */
export const poolDocumentSchema = z
  .strictObject({
    $schema: z.optional(z.string()),
    version: z.literal(1, { error: "must be 1" }),
    generation: z.optional(wholeNumber(0)).check(z.describe("Grows with every write by the owner")),
    updatedAt: z.optional(rfc3339()),
    ...poolFields,
  })
  .check(z.describe("Switchyard pool document: the value of a KV key pool:<name>"));

/** An inline pool in the routes document: the same shape, version and bookkeeping optional. */
export const inlinePoolSchema = z.strictObject({
  version: z.optional(z.literal(1, { error: "must be 1" })),
  generation: z.optional(z.int().check(z.gte(0))),
  updatedAt: z.optional(rfc3339()),
  ...poolFields,
});

export type PoolDocument = z.output<typeof poolDocumentSchema>;
export type InlinePool = z.output<typeof inlinePoolSchema>;
export type Endpoint = z.output<typeof endpointSchema>;
export type PoolDocumentInput = z.input<typeof poolDocumentSchema>;
