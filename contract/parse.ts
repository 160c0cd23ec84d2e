import type { z } from "zod";
import { type PoolDocument, poolDocumentSchema } from "./pool.ts";
import { type Problem, problemsOf } from "./problems.ts";
import { type RoutesDocument, routesDocumentSchema } from "./routes.ts";

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

function validate<T>(schema: z.ZodType<T>, input: unknown): Parsed<T> {
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
  return validate(routesDocumentSchema, input);
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
