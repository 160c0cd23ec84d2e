import { type ParseError, parse as parseJsonc, printParseErrorCode } from "jsonc-parser";
import { isNode, LineCounter, parseDocument } from "yaml";
import {
  formatProblem,
  type Parsed,
  type Problem,
  parseRoutesDocument,
  type RoutesDocument,
} from "../contract/index.ts";

/**
 * Reading a routes document from a file, JSON or YAML (YAML is a superset of JSON, so one parser
 * reads both and knows where every value stands), and placing each problem on its line.
 */

export interface Located extends Problem {
  line: number | undefined;
}

export interface ReadDocument {
  /** The document as JSON text, ready for KV. */
  json: string | undefined;
  parsed: Parsed<RoutesDocument> | undefined;
  problems: Located[];
}

/** What each of the JSON scanner's error codes means, in the words of a person reading the file. */
const JSON_ERRORS: Record<string, string> = {
  InvalidSymbol: "unexpected character",
  InvalidNumberFormat: "malformed number",
  PropertyNameExpected: "a property name in double quotes was expected",
  ValueExpected: "a value was expected (a trailing comma?)",
  ColonExpected: "a colon was expected",
  CommaExpected: "a comma was expected",
  CloseBraceExpected: "a closing } was expected",
  CloseBracketExpected: "a closing ] was expected",
  EndOfFileExpected: "nothing may follow the document",
  InvalidCommentToken: "JSON has no comments",
  UnexpectedEndOfComment: "JSON has no comments",
  UnexpectedEndOfString: "a string that is not closed",
  UnexpectedEndOfNumber: "malformed number",
  InvalidUnicode: "malformed \\u escape",
  InvalidEscapeCharacter: "malformed escape",
  InvalidCharacter: "a control character inside a string",
};

/**
 * The first syntax error of a JSON text, with its line and column (1-based). V8's JSON.parse
 * says where it stopped for some errors and not for others (a trailing comma), so a strict
 * scanner finds it: the same grammar, with no comments and no trailing commas.
 */
export function jsonSyntaxError(
  text: string,
): { line: number; column: number; message: string } | undefined {
  const errors: ParseError[] = [];
  parseJsonc(text, errors, { disallowComments: true, allowTrailingComma: false });
  const first = errors[0];
  if (first === undefined) return undefined;
  const before = text.slice(0, first.offset).split("\n");
  return {
    line: before.length,
    column: (before.at(-1)?.length ?? 0) + 1,
    message: JSON_ERRORS[printParseErrorCode(first.error)] ?? printParseErrorCode(first.error),
  };
}

/** What JSON.parse refuses that the scanner let through, if anything: said without a place. */
function jsonParseError(
  text: string,
): { line: undefined; column: undefined; message: string } | undefined {
  try {
    JSON.parse(text);
    return undefined;
  } catch (error) {
    return { line: undefined, column: undefined, message: (error as Error).message };
  }
}

/**
 * Reads a routes document: a `.json` file as strict JSON, as the worker's JSON.parse will read
 * it from KV (a trailing comma is an error, with its line and column), and anything else
 * (`.yaml`, `.yml`) as YAML. Problems are placed on their lines either way.
 */
export function readRoutes(text: string, file = ""): ReadDocument {
  if (file.toLowerCase().endsWith(".json")) {
    const error = jsonSyntaxError(text) ?? jsonParseError(text);
    if (error !== undefined)
      return {
        json: undefined,
        parsed: undefined,
        problems: [
          {
            path: "(document)",
            message: `is not valid JSON${error.line ? ` (line ${error.line}, column ${error.column})` : ""}: ${error.message}`,
            line: error.line,
          },
        ],
      };
  }
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    return {
      json: undefined,
      parsed: undefined,
      problems: doc.errors.map((error) => ({
        path: "(document)",
        message: `is not valid JSON or YAML: ${(error.message.split("\n")[0] ?? "").replace(/ at line \d+, column \d+:?$/, "")}`,
        line: error.linePos?.[0]?.line,
      })),
    };
  }
  const value = doc.toJS() as unknown;
  const parsed = parseRoutesDocument(value);
  const lineOf = (at: (string | number)[] | undefined): number | undefined => {
    // The deepest node that exists on the path: a missing field is reported where its parent is.
    for (let depth = at?.length ?? 0; depth >= 0; depth--) {
      const node = doc.getIn(at?.slice(0, depth) ?? [], true);
      if (isNode(node) && node.range) return lines.linePos(node.range[0]).line;
    }
    return undefined;
  };
  return {
    json: `${JSON.stringify(value, null, 2)}\n`,
    parsed,
    problems: parsed.ok ? [] : parsed.problems.map((p) => ({ ...p, line: lineOf(p.at) })),
  };
}

export function formatLocated(file: string, problem: Located): string {
  return `${file}${problem.line ? `:${problem.line}` : ""}: ${formatProblem(problem)}`;
}
