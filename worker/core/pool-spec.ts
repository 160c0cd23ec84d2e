import type { InlinePool, PoolDocument } from "../../contract/index.ts";
import { endpointId } from "./hash.ts";

/**
 * A pool document compiled for serving, immutable: built once per version of the document and
 * shared by every snapshot that uses it, so a refresh that changes one pool re-reads only that
 * pool. Balancing state is not here; each snapshot starts its own (snapshot.ts).
 */

export class Endpoint {
  /** Origin without trailing slash, e.g. `http://127.0.0.1:8080`. */
  readonly origin: string;
  readonly weight: number;
  readonly state: "ready" | "draining";
  readonly zone: string | undefined;
  #id: string | undefined;

  constructor(
    origin: string,
    weight: number,
    state: "ready" | "draining",
    zone: string | undefined,
  ) {
    this.origin = origin;
    this.weight = weight;
    this.state = state;
    this.zone = zone;
  }

  /** Hash of the URL: names the endpoint in cookies and health state, never its address. */
  get id(): string {
    this.#id ??= endpointId(this.origin);
    return this.#id;
  }
}

export interface PoolSpec {
  name: string;
  source: "inline" | "kv";
  generation: number | undefined;
  updatedAt: string | undefined;
  endpoints: readonly Endpoint[];
  transportBinding: string | undefined;
}

/**
 * The schema has checked that a URL is an origin; all that is left is the optional trailing
 * slash. (A `new URL` per endpoint would cost a third of compiling a large snapshot.)
 */
function originOf(url: string): string {
  return url.endsWith("/") ? url.slice(0, -1) : url;
}

export function poolSpec(
  name: string,
  doc: PoolDocument | InlinePool,
  source: "inline" | "kv",
): PoolSpec {
  const zones = new Map<string, string>(); // one string per distinct zone, not one per endpoint
  return {
    name,
    source,
    generation: doc.generation,
    updatedAt: doc.updatedAt,
    endpoints: doc.endpoints.map((e) => {
      let zone = e.zone;
      if (zone !== undefined) {
        const seen = zones.get(zone);
        if (seen === undefined) zones.set(zone, zone);
        else zone = seen;
      }
      return new Endpoint(originOf(e.url), e.weight, e.state, zone);
    }),
    transportBinding: doc.transport?.binding,
  };
}
