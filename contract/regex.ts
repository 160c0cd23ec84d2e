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

export interface CompiledRegex {
  /** Whether the whole of `value` matches. */
  test(value: string): boolean;
}

/** Why a pattern is not a valid RE2 expression, or undefined when it is. */
export function regexProblem(pattern: string): string | undefined {
  try {
    RE2JS.compile(pattern);
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
