/** `switchyard status`: what the admin API's /status body says, in lines for a terminal. */

export interface StatusBody {
  generation: string | null;
  ageSeconds: number | null;
  lastError: { message: string } | null;
  routes: { name: string }[];
  warnings: string[];
  /** The compiled layout served from; null (or absent, from an older worker): read whole. */
  layout?: { id: string; shards: number; shardsRead: number } | null;
}

export function statusLines(body: StatusBody): string[] {
  const layout = body.layout
    ? `, compiled layout ${body.layout.id} (${body.layout.shardsRead} of ${body.layout.shards} shards read in this isolate)`
    : "";
  return [
    body.generation
      ? `snapshot ${body.generation}, loaded ${body.ageSeconds}s ago, ${body.routes.length} routes${layout}`
      : "no routes loaded",
    body.lastError ? `last load error: ${body.lastError.message}` : "no load error",
    ...body.warnings.map((warning) => `warning: ${warning}`),
  ];
}
