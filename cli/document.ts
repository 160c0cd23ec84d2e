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

/** Where JSON.parse stopped, as V8 says it: "(line L column C)" or "at position P". */
function jsonErrorLine(
  message: string,
  text: string,
): { line: number; column: number } | undefined {
  const at = /line (\d+) column (\d+)/.exec(message);
  if (at) return { line: Number(at[1]), column: Number(at[2]) };
  const position = /position (\d+)/.exec(message);
  if (!position) return undefined;
  const before = text.slice(0, Number(position[1])).split("\n");
  return { line: before.length, column: (before.at(-1)?.length ?? 0) + 1 };
}

/**
 * Reads a routes document: a `.json` file as strict JSON, as the worker's JSON.parse will read
 * it from KV (a trailing comma is an error, with its line and column), and anything else
 * (`.yaml`, `.yml`) as YAML. Problems are placed on their lines either way.
 */
export function readRoutes(text: string, file = ""): ReadDocument {
  if (file.toLowerCase().endsWith(".json")) {
    try {
      JSON.parse(text);
    } catch (error) {
      const message = (error as Error).message;
      // Some of V8's messages carry no position; the YAML parser then says where it stopped.
      const yamlError = parseDocument(text, { prettyErrors: true }).errors[0]?.linePos?.[0];
      const where =
        jsonErrorLine(message, text) ??
        (yamlError ? { line: yamlError.line, column: yamlError.col } : undefined);
      return {
        json: undefined,
        parsed: undefined,
        problems: [
          {
            path: "(document)",
            message: `is not valid JSON${where ? ` (line ${where.line}, column ${where.column})` : ""}: ${message.replace(/ in JSON at position \d+.*$/, "").split("\n")[0]}`,
            line: where?.line,
          },
        ],
      };
    }
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
