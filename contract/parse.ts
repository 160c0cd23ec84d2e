import { type PoolDocument, poolDocumentSchema } from "./pool.ts";
import { type Problem, problemsOf } from "./problems.ts";
import {
  type RoutesDocument,
  routeSliceSchema,
  routesDocumentSchema,
  shareEmptyConditions,
  uniqueRouteNames,
} from "./routes.ts";
import * as z from "./zod.ts";

export type Parsed<T> = { ok: true; value: T } | { ok: false; problems: Problem[] };

function parseJson(text: string): Parsed<unknown> {
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (error) {
    return {
      ok: false,
      problems: [{ path: "(document)", message: `is not JSON: ${(error as Error).message}` }],
    };
  }
}

function validate<T>(schema: z.ZodMiniType<T>, input: unknown): Parsed<T> {
  const result = schema.safeParse(input);
  return result.success
    ? { ok: true, value: result.data }
    : { ok: false, problems: problemsOf(result.error, input) };
}

/**
 * Validates a routes document given as parsed JSON. An inline pool keyed `__proto__` is refused
 * here: JSON.parse keeps such a key, but any object built from it turns it into a prototype and
 * the pool would vanish without a word.
 */
export function parseRoutesDocument(input: unknown): Parsed<RoutesDocument> {
  const pools = (input as { pools?: unknown } | null)?.pools;
  if (pools !== null && typeof pools === "object" && Object.hasOwn(pools, "__proto__")) {
    return {
      ok: false,
      problems: [{ path: 'pools["__proto__"]', message: '"__proto__" cannot name a pool' }],
    };
  }
  const parsed = validate(routesDocumentSchema, input);
  if (parsed.ok) shareEmptyConditions(parsed.value);
  return parsed;
}

/** Validates a pool document given as parsed JSON. */
export function parsePoolDocument(input: unknown): Parsed<PoolDocument> {
  return validate(poolDocumentSchema, input);
}

/** Parses and validates the text of the `routes` key. */
export function parseRoutesText(text: string): Parsed<RoutesDocument> {
  const json = parseJson(text);
  return json.ok ? parseRoutesDocument(json.value) : json;
}

/** Parses and validates the text of a `pool:` key. */
export function parsePoolText(text: string): Parsed<PoolDocument> {
  const json = parseJson(text);
  return json.ok ? parsePoolDocument(json.value) : json;
}

/** Routes validated at a time by parseRoutesTextInSlices. */
export const ROUTES_PER_SLICE = 500;

/**
 * parseRoutesText for a large document, without holding the thread for the whole validation:
 * the routes are validated ROUTES_PER_SLICE at a time, with `pause` awaited between slices, so
 * that requests waiting behind a refresh are served. Same value and same problems as
 * parseRoutesText.
 */
export async function parseRoutesTextInSlices(
  text: string,
  pause: () => Promise<void>,
): Promise<Parsed<RoutesDocument>> {
  const json = parseJson(text);
  if (!json.ok) return json;
  const input = json.value as { routes?: unknown } | null;
  const routes = input?.routes;
  if (!Array.isArray(routes) || routes.length <= ROUTES_PER_SLICE)
    return parseRoutesDocument(input);
  // Problems outside the routes: the whole document is reported as parseRoutesText reports it.
  const head = parseRoutesDocument({ ...input, routes: [] });
  if (!head.ok) return parseRoutesDocument(input);
  const valid: RoutesDocument["routes"] = [];
  for (let start = 0; start < routes.length; start += ROUTES_PER_SLICE) {
    await pause();
    const slice = routeSliceSchema.safeParse(routes.slice(start, start + ROUTES_PER_SLICE));
    // An invalid document is rare (and the store does not parse the same text twice): it is
    // validated whole, so that its problems are exactly the ones parseRoutesText reports.
    if (!slice.success) return parseRoutesDocument(input);
    valid.push(...slice.data);
  }
  const names = z.array(z.object({ name: z.string() })).check(z.superRefine(uniqueRouteNames));
  const unique = names.safeParse(valid);
  if (!unique.success) {
    const issues = unique.error.issues.map((issue) => ({
      ...issue,
      path: ["routes", ...issue.path],
    }));
    return { ok: false, problems: problemsOf(new z.$ZodError(issues), input) };
  }
  return { ok: true, value: shareEmptyConditions({ ...head.value, routes: valid }) };
}
