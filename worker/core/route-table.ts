import {
  type HttpRoute,
  type HttpRouteRule,
  type RequestRedirect,
  type RoutesDocument,
  shareEmptyConditions,
} from "../../contract/index.ts";

/**
 * A validated routes document, held the way an isolate can afford: each route as its own JSON
 * text, parsed again (already valid, so without validation) the first time a request needs it,
 * with an index of hostnames to routes built once. With 10,000 routes an isolate keeps about
 * 30,000 strings and arrays instead of the document's half a million objects, which every
 * full garbage collection would otherwise mark (docs/benchmarks.md), and a route that never
 * serves a request costs no more than its text.
 */

/** Route indices by the hostname that selects them, ascending (document order). */
export interface HostIndex {
  /** Lowercased exact hostnames. */
  exact: ReadonlyMap<string, readonly number[]>;
  /** ".example.com" for "*.example.com". */
  wildcard: ReadonlyMap<string, readonly number[]>;
  /** Routes without hostnames, which take any host. */
  any: readonly number[];
}

/** What the matcher reads of a routes document: the index, and a route when a host needs it. */
export interface RouteSource {
  readonly hosts: HostIndex;
  route(index: number): HttpRoute | undefined;
}

/**
 * What a snapshot reads of its routes: the whole document's RouteTable, or a CompiledRouteTable
 * holding the parts of the compiled layout this isolate has read.
 */
export interface SnapshotRoutes extends RouteSource {
  /** How many routes the document has. */
  readonly length: number;
  /** The document's inline pools. */
  readonly pools: RoutesDocument["pools"];
  /** Every pool the routes in memory name, in the order they were first named. */
  readonly referencedPools: readonly string[];
  /** Problems of the routes in memory, independent of the pools. */
  readonly warnings: readonly string[];
  /** The shard a request for `host` needs read first, or undefined when it can be matched now. */
  missingShard(host: string): number | undefined;
  /** The route named `name`, among those in memory. */
  routeNamed(name: string): HttpRoute | undefined;
}

export function add(map: Map<string, number[]>, key: string, index: number): void {
  const list = map.get(key);
  if (list === undefined) map.set(key, [index]);
  else if (list[list.length - 1] !== index) list.push(index); // a route names a host once
}

/** The host index of routes in document order. */
export function hostIndex(routes: readonly { hostnames: readonly string[] }[]): HostIndex {
  const exact = new Map<string, number[]>();
  const wildcard = new Map<string, number[]>();
  const any: number[] = [];
  routes.forEach((route, index) => {
    if (route.hostnames.length === 0) any.push(index);
    for (const hostname of route.hostnames) {
      const lower = hostname.toLowerCase();
      if (lower.startsWith("*.")) add(wildcard, lower.slice(1), index);
      else add(exact, lower, index);
    }
  });
  return { exact, wildcard, any };
}

/** A RouteSource over routes already in memory: what compileMatcher makes of an array. */
export function routeArray(routes: readonly HttpRoute[]): RouteSource {
  return { hosts: hostIndex(routes), route: (index) => routes[index] };
}

/**
 * The scheme of a redirect that changes nothing but the scheme (and the status): such a redirect
 * sends a request that already uses that scheme to its own URL.
 */
function selfRedirectFor(redirect: RequestRedirect): string | undefined {
  const only =
    redirect.scheme !== undefined &&
    redirect.hostname === undefined &&
    redirect.port === undefined &&
    redirect.path === undefined;
  return only ? redirect.scheme : undefined;
}

/** Every pool the routes document names, in backendRefs or in RequestMirror filters, in document order. */
export function referencedPools(routes: readonly HttpRoute[]): string[] {
  const names = new Set<string>();
  const mirrors = (filters: HttpRouteRule["filters"]) => {
    for (const filter of filters ?? [])
      if (filter.requestMirror) names.add(filter.requestMirror.backendRef.pool);
  };
  for (const route of routes) {
    for (const rule of route.rules) {
      for (const ref of rule.backendRefs) {
        names.add(ref.pool);
        mirrors(ref.filters);
      }
      mirrors(rule.filters);
    }
  }
  return [...names];
}

/** What is wrong with a route that validation lets through: logged, and shown on /status. */
export function routeWarnings(routes: readonly HttpRoute[]): string[] {
  const warnings: string[] = [];
  for (const route of routes) {
    route.rules.forEach((rule, index) => {
      const label = `route ${route.name}, rule ${rule.name ?? index}`;
      const redirect = rule.filters?.find((f) => f.requestRedirect)?.requestRedirect;
      const answers = redirect !== undefined || rule.filters?.some((f) => f.directResponse);
      if (rule.backendRefs.length === 0 && !answers)
        warnings.push(
          `${label}: no backendRefs, no RequestRedirect and no DirectResponse; it answers 500`,
        );
      if (redirect && selfRedirectFor(redirect) !== undefined)
        warnings.push(
          `${label}: its RequestRedirect only sets the scheme to ${redirect.scheme}, so a request that already uses ${redirect.scheme} is sent to itself (routes take both schemes; docs/filters.md)`,
        );
      const cors = rule.filters?.find((f) => f.cors)?.cors;
      if (cors?.allowCredentials && cors.allowOrigins?.includes("*"))
        warnings.push(
          `${label}: its CORS filter allows credentials from any origin ("*"): every web site a signed-in user visits can read these responses as that user; list the origins instead`,
        );
    });
  }
  return warnings;
}

/** A route's text as the table wrote it, back to the value it was written from. */
export function parseRoute(text: string): HttpRoute {
  const route = JSON.parse(text) as HttpRoute;
  shareEmptyConditions({ routes: [route] });
  return route;
}

/** What the admin API's /status shows of a route. */
export interface RouteSummary {
  name: string;
  hostnames: string[];
  /** How many rules it has. */
  rules: number;
  /** The filter types its rules and backendRefs use, in order of first use. */
  filters: string[];
}

function summaryOf(route: HttpRoute): RouteSummary {
  const filters = new Set<string>();
  for (const rule of route.rules) {
    for (const filter of rule.filters ?? []) filters.add(filter.type);
    for (const ref of rule.backendRefs)
      for (const filter of ref.filters ?? []) filters.add(filter.type);
  }
  return {
    name: route.name,
    hostnames: route.hostnames,
    rules: route.rules.length,
    filters: [...filters],
  };
}

export class RouteTable implements SnapshotRoutes {
  readonly hosts: HostIndex;
  /** How many routes the document has. */
  readonly length: number;
  /** The document's inline pools (usually few; kept as they are). */
  readonly pools: RoutesDocument["pools"];
  /** Every pool the routes name, in document order. */
  readonly referencedPools: readonly string[];
  /** Problems of the routes themselves, independent of the pools. */
  readonly warnings: readonly string[];
  private readonly head: Omit<RoutesDocument, "routes" | "pools">;
  private readonly texts: readonly string[];
  /**
   * The routes' summaries as one JSON text, written when the admin API first asks (the dashboard
   * then asks every few seconds); a load that nobody looks at does not pay for it.
   */
  private summaryText: string | undefined;
  /** Routes parsed since the table was built: the ones this isolate has served. */
  private readonly parsed = new Map<number, HttpRoute>();
  /** Route indices by name, built when the admin API first looks a route up by name. */
  private byName: Map<string, number> | undefined;

  /**
   * `document` must be a validated one (parseRoutesText): the table does not validate. `texts`,
   * when given, are its routes' JSON texts (routeTableInSlices).
   */
  constructor(document: RoutesDocument, texts?: readonly string[]) {
    const { routes, pools, ...head } = document;
    this.head = head;
    this.pools = pools;
    this.length = routes.length;
    this.hosts = hostIndex(routes);
    this.referencedPools = referencedPools(routes);
    this.warnings = routeWarnings(routes);
    this.texts = texts ?? routes.map((route) => JSON.stringify(route));
  }

  /**
   * Every route's summary, in document order: a few milliseconds for 10,000 routes, after the
   * first call, which parses every route once to write them.
   */
  summaries(): RouteSummary[] {
    this.summaryText ??= JSON.stringify(this.document().routes.map(summaryOf));
    return JSON.parse(this.summaryText) as RouteSummary[];
  }

  /** The whole document is in memory: no host waits for a part of it. */
  missingShard(_host: string): number | undefined {
    return undefined;
  }

  /**
   * The route named `name` (names are unique in a valid document), for the admin API: the index
   * of names is written from the summaries the first time, and kept.
   */
  routeNamed(name: string): HttpRoute | undefined {
    this.byName ??= new Map(this.summaries().map((summary, index) => [summary.name, index]));
    const index = this.byName.get(name);
    return index === undefined ? undefined : this.route(index);
  }

  /** The route at `index`, parsed the first time it is asked for and kept. */
  route(index: number): HttpRoute | undefined {
    let route = this.parsed.get(index);
    if (route === undefined) {
      const text = this.texts[index];
      if (text === undefined) return undefined;
      route = parseRoute(text);
      this.parsed.set(index, route);
    }
    return route;
  }

  /**
   * The whole document, for the admin API, never for a request: the routes not parsed yet are
   * parsed for this answer only and not kept (10,000 routes take tens of milliseconds).
   */
  document(): RoutesDocument {
    const routes = this.texts.map((text, index) => this.parsed.get(index) ?? parseRoute(text));
    return { ...this.head, routes, pools: this.pools };
  }
}

/** Routes written as text between two pauses of routeTableInSlices. */
export const ROUTES_PER_TEXT_SLICE = 1_000;

/**
 * A RouteTable of a large document, written ROUTES_PER_TEXT_SLICE routes at a time with `pause`
 * awaited between slices, so that requests waiting behind a load are served (10,000 routes
 * take about 50 ms to write).
 */
export async function routeTableInSlices(
  document: RoutesDocument,
  pause: () => Promise<void>,
): Promise<RouteTable> {
  const texts: string[] = [];
  for (let start = 0; start < document.routes.length; start += ROUTES_PER_TEXT_SLICE) {
    if (start > 0) await pause();
    const end = Math.min(start + ROUTES_PER_TEXT_SLICE, document.routes.length);
    for (let index = start; index < end; index++)
      texts.push(JSON.stringify(document.routes[index]));
  }
  return new RouteTable(document, texts);
}
