import type * as z from "./zod.ts";

/** One reason a document was refused, at a JSON path such as `routes[2].rules[0].name`. */
export interface Problem {
  path: string;
  message: string;
  /** The path as segments, to find the place in a file: `["routes", 2, "rules"]`. */
  at?: (string | number)[];
}

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

/** `["routes", 2, "rules"]` → `routes[2].rules`; keys that are not identifiers are quoted. */
function jsonPath(segments: readonly PropertyKey[]): string {
  let out = "";
  for (const segment of segments) {
    if (typeof segment === "number") out += `[${segment}]`;
    else {
      const key = String(segment);
      if (IDENTIFIER.test(key)) out += out === "" ? key : `.${key}`;
      else out += `[${JSON.stringify(key)}]`;
    }
  }
  return out === "" ? "(document)" : out;
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return typeof value === "object" ? "an object" : typeof value;
}

function messageOf(issue: z.$ZodIssue, input: unknown): string {
  const missing = valueAt(input, issue.path) === undefined;
  switch (issue.code) {
    case "invalid_type":
      if (missing) return "is required";
      return `must be ${article(issue.expected)}, not ${describe(valueAt(input, issue.path))}`;
    case "invalid_value":
      return missing ? `is required and ${issue.message}` : issue.message;
    case "unrecognized_keys":
      return `unknown field${issue.keys.length > 1 ? "s" : ""} ${issue.keys.map((k) => JSON.stringify(k)).join(", ")}`;
    default:
      return issue.message;
  }
}

function article(expected: string): string {
  if (expected === "int") return "a whole number";
  if (expected === "array" || expected === "object") return `an ${expected}`;
  return `a ${expected}`;
}

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let here: unknown = input;
  for (const segment of path) {
    if (here === null || typeof here !== "object") return undefined;
    here = (here as Record<PropertyKey, unknown>)[segment];
  }
  return here;
}

/** Every issue of a failed parse as a Problem, in document order. */
export function problemsOf(error: z.$ZodError, input: unknown): Problem[] {
  return error.issues.map((issue) => ({
    path: jsonPath(issue.path),
    message: messageOf(issue, input),
    at: issue.path.filter((s): s is string | number => typeof s !== "symbol"),
  }));
}

export function formatProblem(problem: Problem): string {
  return `${problem.path}: ${problem.message}`;
}
