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

export function readRoutes(text: string): ReadDocument {
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
