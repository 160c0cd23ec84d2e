import { RE2JS, RE2JSSyntaxException } from "re2js";

/**
 * Regular expressions of RegularExpression matches (paths, headers, query parameters) run on
 * RE2 (re2js), as Envoy and the Gateway API implementations that use it do: matching takes time
 * linear in the input, whatever the pattern, so no request can stall an isolate with a
 * backtracking pattern such as `/(a+)+`. The syntax is RE2's: no backreferences, no lookaround
 * (docs/kv-schema.md). A pattern must match the whole value. Values longer than
 * REGEX_INPUT_MAX characters never match a regular expression.
 */

export const REGEX_INPUT_MAX = 4096;

/**
 * The most instructions a pattern's compiled program may have (Envoy's `max_program_size`,
 * there 100 by default). Past about a thousand, re2js falls off its fast path: `/.{0,1000}x.{0,1000}y`
 * (4,005) takes 190 ms on a 4 KB path; `/.{0,240}x.{0,240}y` (965) 0.1 ms.
 */
export const REGEX_PROGRAM_MAX = 1000;

export interface CompiledRegex {
  /** Whether the whole of `value` matches. */
  test(value: string): boolean;
}

/** Why a pattern is not a valid RE2 expression, or undefined when it is. */
export function regexProblem(pattern: string): string | undefined {
  try {
    const size = RE2JS.compile(pattern).programSize();
    if (size > REGEX_PROGRAM_MAX)
      return `is too costly to match: its RE2 program has ${size} instructions, at most ${REGEX_PROGRAM_MAX} (bound repetitions tighter, e.g. .{0,100} rather than .{0,1000})`;
    return undefined;
  } catch (error) {
    const detail = error instanceof RE2JSSyntaxException ? error.message : (error as Error).message;
    return `is not a valid RE2 regular expression: ${detail}`;
  }
}

/** A pattern compiled once; throws on a pattern `regexProblem` refuses. */
export function compileRegex(pattern: string): CompiledRegex {
  const compiled = RE2JS.compile(pattern);
  return {
    test: (value) => value.length <= REGEX_INPUT_MAX && compiled.matches(value),
  };
}
