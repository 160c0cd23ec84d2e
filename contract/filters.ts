import { HTTP_METHODS, TOKEN } from "./http.ts";
import { maxEntries } from "./pool.ts";
import * as z from "./zod.ts";

/**
 * HTTPRoute filters (docs/filters.md): Gateway API v1 `HTTPRouteFilter` objects with their field
 * names, limits and combination rules, so that an HTTPRoute's `filters` can be copied into a rule
 * or a backendRef as they are. Rules that need the rule around the list (ReplacePrefixMatch and
 * the match, a redirect and backendRefs) are checked in routes.ts.
 */

/** RFC 1123 hostname without a wildcard (Gateway API `PreciseHostname`). */
const PRECISE_HOSTNAME =
  /^[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?(\.[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?)*$/;
/** Printable US-ASCII, single tabs or spaces between words (Gateway API's header value). */
const HEADER_VALUE = /^[!-~]+([\t ]?[!-~]+)*$/;
/** `*`, or `http(s)://host[:port]` whose host may start with `*.` (Gateway API `CORSOrigin`). */
const CORS_ORIGIN =
  /^(\*|https?:\/\/(\*|(\*\.)?[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?(\.[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?)*)(:[0-9]{1,5})?)$/;

export const FILTER_TYPES = [
  "RequestHeaderModifier",
  "ResponseHeaderModifier",
  "RequestRedirect",
  "URLRewrite",
  "RequestMirror",
  "CORS",
  "DirectResponse",
] as const;
export type FilterType = (typeof FILTER_TYPES)[number];

/** The field of a filter that carries its settings, by type (Gateway API's names). */
export const FILTER_FIELDS = {
  RequestHeaderModifier: "requestHeaderModifier",
  ResponseHeaderModifier: "responseHeaderModifier",
  RequestRedirect: "requestRedirect",
  URLRewrite: "urlRewrite",
  RequestMirror: "requestMirror",
  CORS: "cors",
  DirectResponse: "directResponse",
} as const satisfies Record<FilterType, string>;

/** Gateway API filter types Switchyard refuses, and why. */
const REFUSED_TYPES: Record<string, string> = {
  ExtensionRef:
    "ExtensionRef filters are not supported: Switchyard has no implementation-specific filters, and Gateway API forbids skipping one it cannot resolve",
  ExternalAuth: "ExternalAuth filters are not supported",
};

/**
 * Headers a filter may not edit, and why: the platform decides them, or they belong to one hop.
 * Request and response alike.
 */
const UNEDITABLE_HEADERS: ReadonlyMap<string, string> = new Map(
  Object.entries({
    host: "the Host a backend sees is the host of its endpoint URL: Workers cannot send another (Cloudflare refuses a Host outside the worker's zone)",
    "content-length": "is set by the runtime from the body",
    connection: "is hop-by-hop: it never crosses the worker",
    "keep-alive": "is hop-by-hop: it never crosses the worker",
    "proxy-connection": "is hop-by-hop: it never crosses the worker",
    "transfer-encoding": "is hop-by-hop: it never crosses the worker",
    te: "is hop-by-hop: it never crosses the worker",
    trailer: "is hop-by-hop: it never crosses the worker",
    upgrade: "is hop-by-hop: it never crosses the worker",
  }),
);

function headerNameSchema() {
  return z
    .string()
    .check(
      z.maxLength(256, { error: "must be at most 256 characters" }),
      z.regex(TOKEN, { error: "must be a valid header name" }),
    );
}

const httpHeaderSchema = z.strictObject({
  name: headerNameSchema(),
  value: z.string().check(
    z.minLength(1, { error: "must not be empty" }),
    z.maxLength(4096, { error: "must be at most 4096 characters" }),
    z.regex(HEADER_VALUE, {
      error: "must be printable ASCII, words separated by single spaces or tabs",
    }),
  ),
});

const headerFilterSchema = z
  .strictObject({
    set: z.optional(z.array(httpHeaderSchema).check(maxEntries(16))),
    add: z.optional(z.array(httpHeaderSchema).check(maxEntries(16))),
    remove: z.optional(z.array(headerNameSchema()).check(maxEntries(16))),
  })
  .check(
    z.superRefine((filter, ctx) => {
      // Gateway API: one action per header name, names compared without case.
      const seen = new Map<string, string>();
      const check = (name: string, path: (string | number)[]) => {
        const lower = name.toLowerCase();
        const why = UNEDITABLE_HEADERS.get(lower); // a Map: "constructor" is a header name like any other
        if (why) ctx.addIssue({ code: "custom", path, message: `${name}: ${why}` });
        const first = seen.get(lower);
        if (first !== undefined) {
          ctx.addIssue({
            code: "custom",
            path,
            message: `${name} is already edited at ${first}: one action per header name`,
          });
        } else seen.set(lower, `${path[0]}[${path[1]}]`);
      };
      for (const [i, h] of (filter.set ?? []).entries()) check(h.name, ["set", i, "name"]);
      for (const [i, h] of (filter.add ?? []).entries()) check(h.name, ["add", i, "name"]);
      for (const [i, name] of (filter.remove ?? []).entries()) check(name, ["remove", i]);
    }),
  );

/** A path for a redirect's Location or a rewritten request: absolute, no query or fragment. */
function modifierPath(allowEmpty: boolean) {
  return z.string().check(
    z.maxLength(1024, { error: "must be at most 1024 characters" }),
    z.superRefine((value, ctx) => {
      if (value === "" && allowEmpty) return;
      if (!value.startsWith("/")) {
        ctx.addIssue({
          code: "custom",
          message: allowEmpty ? 'must be empty or start with "/"' : 'must start with "/"',
        });
      } else if (/[?#\s]/.test(value)) {
        ctx.addIssue({ code: "custom", message: "must not contain '?', '#' or white space" });
      }
    }),
  );
}

const pathModifierSchema = z
  .strictObject({
    type: z.enum(["ReplaceFullPath", "ReplacePrefixMatch"], {
      error: 'must be "ReplaceFullPath" or "ReplacePrefixMatch"',
    }),
    replaceFullPath: z.optional(modifierPath(false)),
    replacePrefixMatch: z.optional(modifierPath(true)),
  })
  .check(
    z.superRefine((path, ctx) => {
      const want = path.type === "ReplaceFullPath" ? "replaceFullPath" : "replacePrefixMatch";
      const other = path.type === "ReplaceFullPath" ? "replacePrefixMatch" : "replaceFullPath";
      if (path[want] === undefined)
        ctx.addIssue({
          code: "custom",
          path: [want],
          message: `is required when type is ${path.type}`,
        });
      if (path[other] !== undefined)
        ctx.addIssue({
          code: "custom",
          path: [other],
          message: `must not be set when type is ${path.type}`,
        });
    }),
  );

const PORT_ERROR = "must be a port from 1 to 65535";

/** Statuses whose response has no body (RFC 9110): a DirectResponse with one cannot carry a body. */
const NULL_BODY_STATUSES: ReadonlySet<number> = new Set([204, 205, 304]);
const DIRECT_STATUS_ERROR = "must be an HTTP status from 200 to 599";

/**
 * Gateway API's DirectResponse (GEP-2826): the rule answers with this status and body itself.
 * Gateway API allows 100–599; a Worker cannot send a 1xx as its answer.
 */
const directResponseSchema = z
  .strictObject({
    statusCode: z
      .int({ error: DIRECT_STATUS_ERROR })
      .check(
        z.gte(200, { error: `${DIRECT_STATUS_ERROR} (a Worker cannot answer with a 1xx)` }),
        z.lte(599, { error: DIRECT_STATUS_ERROR }),
      ),
    body: z.optional(
      z.strictObject({
        string: z.string().check(z.maxLength(4096, { error: "must be at most 4096 characters" })),
      }),
    ),
  })
  .check(
    z.superRefine((direct, ctx) => {
      if (direct.body !== undefined && NULL_BODY_STATUSES.has(direct.statusCode))
        ctx.addIssue({
          code: "custom",
          path: ["body"],
          message: `must not be set: a ${direct.statusCode} response has no body`,
        });
    }),
  );

const requestRedirectSchema = z.strictObject({
  scheme: z.optional(z.enum(["http", "https"], { error: 'must be "http" or "https"' })),
  hostname: z.optional(
    z
      .string()
      .check(
        z.maxLength(253, { error: "must be at most 253 characters" }),
        z.regex(PRECISE_HOSTNAME, { error: 'must be a hostname such as "www.example.com"' }),
      ),
  ),
  path: z.optional(pathModifierSchema),
  port: z.optional(
    z
      .int({ error: "must be a whole number" })
      .check(z.gte(1, { error: PORT_ERROR }), z.lte(65535, { error: PORT_ERROR })),
  ),
  statusCode: z._default(
    z.union([z.literal(301), z.literal(302), z.literal(303), z.literal(307), z.literal(308)], {
      error: "must be 301, 302, 303, 307 or 308",
    }),
    302,
  ),
});

const urlRewriteSchema = z.strictObject({
  hostname: z.optional(
    z.string().check(
      z.superRefine((_hostname, ctx) => {
        ctx.addIssue({
          code: "custom",
          message:
            "cannot be honoured: a Worker's fetch sends the host of the endpoint URL as Host, and Cloudflare refuses any other outside the worker's zone; give the pool endpoints with that host instead",
        });
      }),
    ),
  ),
  path: z.optional(pathModifierSchema),
});

const PERCENT_ERROR = "must be from 0 to 100";

const requestMirrorSchema = z
  .strictObject({
    backendRef: z.strictObject({
      pool: z
        .string()
        .check(
          z.minLength(1, { error: "must name a pool" }),
          z.maxLength(500, { error: "must be at most 500 characters" }),
        ),
    }),
    percent: z.optional(
      z
        .int({ error: "must be a whole number" })
        .check(z.gte(0, { error: PERCENT_ERROR }), z.lte(100, { error: PERCENT_ERROR })),
    ),
    fraction: z.optional(
      z
        .strictObject({
          numerator: z
            .int({ error: "must be a whole number" })
            .check(z.gte(0, { error: "must be 0 or more" })),
          denominator: z._default(
            z
              .int({ error: "must be a whole number" })
              .check(z.gte(1, { error: "must be 1 or more" })),
            100,
          ),
        })
        .check(
          z.superRefine((fraction, ctx) => {
            if (fraction.numerator > fraction.denominator)
              ctx.addIssue({
                code: "custom",
                path: ["numerator"],
                message: "must not be more than denominator",
              });
          }),
        ),
    ),
  })
  .check(
    z.superRefine((mirror, ctx) => {
      if (mirror.percent !== undefined && mirror.fraction !== undefined)
        ctx.addIssue({
          code: "custom",
          path: ["fraction"],
          message: "only one of percent or fraction may be set",
        });
    }),
  );

/** A list where "*" stands alone (Gateway API's CORS lists). */
const wildcardAlone = z.superRefine((items: string[], ctx) => {
  if (items.length > 1 && items.includes("*"))
    ctx.addIssue({ code: "custom", message: 'cannot contain "*" alongside other entries' });
});

const CORS_METHODS = [...HTTP_METHODS, "*"] as const;

const corsSchema = z.strictObject({
  allowOrigins: z.optional(
    z
      .array(
        z.string().check(
          z.maxLength(253, { error: "must be at most 253 characters" }),
          z.regex(CORS_ORIGIN, {
            error:
              'must be "*" or an origin such as "https://www.example.com" or "https://*.example.com"',
          }),
        ),
      )
      .check(maxEntries(64), wildcardAlone),
  ),
  allowMethods: z.optional(
    z
      .array(z.enum(CORS_METHODS, { error: `must be one of ${CORS_METHODS.join(", ")}` }))
      .check(maxEntries(9), wildcardAlone),
  ),
  allowHeaders: z.optional(
    z.array(z.union([z.literal("*"), headerNameSchema()])).check(maxEntries(64), wildcardAlone),
  ),
  exposeHeaders: z.optional(
    z.array(z.union([z.literal("*"), headerNameSchema()])).check(maxEntries(64)),
  ),
  allowCredentials: z.optional(z.boolean({ error: "must be true or false" })),
  maxAge: z._default(
    z
      .int({ error: "must be a whole number of seconds" })
      .check(
        z.gte(1, { error: "must be 1 or more" }),
        z.lte(2_147_483_647, { error: "must be at most 2147483647" }),
      ),
    5,
  ),
});

export const httpRouteFilterSchema = z
  .strictObject({
    type: z.enum([...FILTER_TYPES, "ExtensionRef", "ExternalAuth"], {
      error: `must be one of ${FILTER_TYPES.join(", ")}`,
    }),
    requestHeaderModifier: z.optional(headerFilterSchema),
    responseHeaderModifier: z.optional(headerFilterSchema),
    requestRedirect: z.optional(requestRedirectSchema),
    urlRewrite: z.optional(urlRewriteSchema),
    requestMirror: z.optional(requestMirrorSchema),
    cors: z.optional(corsSchema),
    directResponse: z.optional(directResponseSchema),
    extensionRef: z.optional(z.unknown()),
    externalAuth: z.optional(z.unknown()),
  })
  .check(
    z.superRefine((filter, ctx) => {
      const refused = REFUSED_TYPES[filter.type];
      if (refused) {
        ctx.addIssue({ code: "custom", path: ["type"], message: refused });
        return;
      }
      const own = FILTER_FIELDS[filter.type as FilterType];
      if (filter[own] === undefined)
        ctx.addIssue({
          code: "custom",
          path: [own],
          message: `is required when type is ${filter.type}`,
        });
      for (const field of [
        ...Object.values(FILTER_FIELDS),
        "extensionRef",
        "externalAuth",
      ] as const) {
        if (field !== own && filter[field] !== undefined)
          ctx.addIssue({
            code: "custom",
            path: [field],
            message: `must not be set when type is ${filter.type}`,
          });
      }
    }),
    z.meta({ id: "HTTPRouteFilter", description: "A Gateway API v1 HTTPRouteFilter" }),
  );

/**
 * A `filters` list (of a rule or of a backendRef): at most 16; each type at most once except
 * RequestMirror; never a RequestRedirect and a URLRewrite together, nor a DirectResponse with a
 * RequestRedirect, URLRewrite or RequestMirror.
 */
export const filtersSchema = z.array(httpRouteFilterSchema).check(
  maxEntries(16),
  z.superRefine((filters, ctx) => {
    const first = new Map<string, number>();
    filters.forEach((filter, index) => {
      if (filter.type === "RequestMirror") return;
      const earlier = first.get(filter.type);
      if (earlier === undefined) first.set(filter.type, index);
      else
        ctx.addIssue({
          code: "custom",
          path: [index, "type"],
          message: `${filter.type} filter cannot be repeated (already at [${earlier}])`,
        });
    });
    const redirect = first.get("RequestRedirect");
    const rewrite = first.get("URLRewrite");
    const direct = first.get("DirectResponse");
    if (redirect !== undefined && rewrite !== undefined)
      ctx.addIssue({
        code: "custom",
        path: [Math.max(redirect, rewrite), "type"],
        message: "RequestRedirect and URLRewrite cannot be used together",
      });
    // A DirectResponse answers the request: nothing is redirected, rewritten or mirrored.
    if (direct !== undefined)
      for (const other of ["RequestRedirect", "URLRewrite", "RequestMirror"] as const) {
        const at = filters.findIndex((f) => f.type === other);
        if (at !== -1)
          ctx.addIssue({
            code: "custom",
            path: [Math.max(direct, at), "type"],
            message: `DirectResponse and ${other} cannot be used together: the DirectResponse answers the request itself`,
          });
      }
  }),
);

export type HttpRouteFilter = z.output<typeof httpRouteFilterSchema>;
export type HeaderFilter = z.output<typeof headerFilterSchema>;
export type PathModifier = z.output<typeof pathModifierSchema>;
export type RequestRedirect = z.output<typeof requestRedirectSchema>;
export type RequestMirror = z.output<typeof requestMirrorSchema>;
export type CorsFilter = z.output<typeof corsSchema>;
export type DirectResponse = z.output<typeof directResponseSchema>;

/** The path modifiers of a filters list that use ReplacePrefixMatch, with their JSON paths. */
export function prefixReplacements(
  filters: readonly HttpRouteFilter[],
): { path: (string | number)[] }[] {
  const out: { path: (string | number)[] }[] = [];
  filters.forEach((filter, index) => {
    if (filter.requestRedirect?.path?.type === "ReplacePrefixMatch")
      out.push({ path: [index, "requestRedirect", "path", "type"] });
    if (filter.urlRewrite?.path?.type === "ReplacePrefixMatch")
      out.push({ path: [index, "urlRewrite", "path", "type"] });
  });
  return out;
}
