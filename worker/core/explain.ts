import type { RoutesDocument } from "../../contract/index.ts";
import { describeFilters, matchedPrefix } from "./filters.ts";
import { contenders, hostnameRank, mismatchReason } from "./match-reference.ts";
import type { RequestView } from "./request.ts";

/**
 * Why a request goes where it goes (pure): the rule that wins, and for every other match of
 * every route, why it lost: its hostnames do not take the host, one of its conditions fails, or
 * it matches but ranks lower (and by which step of the precedence order). Built on the
 * reference matcher, so it states the rules of README "How a request is routed" literally; it is for people, not the hot path.
 */

export interface Explained {
  route: string;
  rule: string;
  match: number;
  verdict: "chosen" | "matches, lower precedence" | "no match";
  reason: string;
}

export interface Explanation {
  request: { host: string; path: string; method: string };
  chosen:
    | {
        route: string;
        rule: string;
        match: number;
        /** What the rule's filters do to this request (a redirect as for an https request). */
        filters: string[];
        backendRefs: {
          pool: string;
          weight: number;
          priority: number;
          /** What the ref's filters do when it is picked. */
          filters: string[];
        }[];
      }
    | undefined;
  considered: Explained[];
}

const STEPS = [
  "hostname kind",
  "wildcard length",
  "path kind",
  "path length",
  "method",
  "header count",
  "query count",
  "document order",
];

function lostBy(winner: number[], loser: number[]): string {
  for (let i = 0; i < winner.length; i++) {
    if (winner[i] !== loser[i]) {
      const step =
        i === 3 && (winner[2] ?? 0) === 2 ? "document order" : (STEPS[i] ?? "document order");
      return `loses on ${step}`;
    }
  }
  return "loses on document order";
}

/** The request as a redirect reads it; explain has no scheme, so https on 443 is assumed. */
function seen(request: RequestView) {
  return { scheme: "https", host: request.host, port: 443, path: request.path, search: "" };
}

export function explain(document: RoutesDocument, request: RequestView): Explanation {
  const ranked = contenders(document.routes, request);
  const winner = ranked[0];
  const considered: Explained[] = [];
  document.routes.forEach((route, routeIndex) => {
    const hostRank = hostnameRank(route.hostnames, request.host);
    route.rules.forEach((rule, ruleIndex) => {
      const ruleName = rule.name ?? String(ruleIndex);
      rule.matches.forEach((match, matchIndex) => {
        const base = { route: route.name, rule: ruleName, match: matchIndex };
        if (!hostRank) {
          considered.push({
            ...base,
            verdict: "no match",
            reason: `hostnames ${route.hostnames.join(", ")} do not take ${request.host}`,
          });
          return;
        }
        const why = mismatchReason(match, request);
        if (why) {
          considered.push({ ...base, verdict: "no match", reason: why });
          return;
        }
        const mine = ranked.find(
          (c) =>
            c.routeIndex === routeIndex && c.ruleIndex === ruleIndex && c.matchIndex === matchIndex,
        );
        if (winner && mine === winner)
          considered.push({
            ...base,
            verdict: "chosen",
            reason: "the best match by HTTPRoute precedence",
          });
        else
          considered.push({
            ...base,
            verdict: "matches, lower precedence",
            reason: lostBy(winner?.rank ?? [], mine?.rank ?? []),
          });
      });
    });
  });
  const rule = winner && document.routes[winner.routeIndex]?.rules[winner.ruleIndex];
  return {
    request: { host: request.host, path: request.path, method: request.method },
    chosen:
      winner && rule
        ? {
            route: document.routes[winner.routeIndex]?.name ?? "",
            rule: rule.name ?? String(winner.ruleIndex),
            match: winner.matchIndex,
            filters: describeFilters(rule.filters, matchedPrefix(rule), seen(request)),
            backendRefs: rule.backendRefs.map((r) => ({
              pool: r.pool,
              weight: r.weight,
              priority: r.priority,
              filters: describeFilters(r.filters, matchedPrefix(rule), seen(request)),
            })),
          }
        : undefined,
    considered,
  };
}
