import { endpointOrigin, type InlinePool, type PoolDocument } from "../../contract/index.ts";
import { endpointId } from "./hash.ts";

/**
 * A pool document compiled for serving, immutable: compiled once per text of the document and
 * shared by every snapshot that uses it. A refresh re-reads every pool, and compiles again only
 * those whose text changed. Balancing state is not here; each snapshot starts its own
 * (snapshot.ts CompiledPool).
 */

export class CompiledEndpoint {
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

export interface CompiledPoolDocument {
  name: string;
  source: "inline" | "kv";
  generation: number | undefined;
  updatedAt: string | undefined;
  endpoints: readonly CompiledEndpoint[];
  transportBinding: string | undefined;
}

export function compilePoolDocument(
  name: string,
  doc: PoolDocument | InlinePool,
  source: "inline" | "kv",
): CompiledPoolDocument {
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
      return new CompiledEndpoint(endpointOrigin(e.url), e.weight, e.state, zone);
    }),
    transportBinding: doc.transport?.binding,
  };
}
