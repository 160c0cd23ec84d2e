// Ablation of the data path for `node scripts/bench-ablation.ts`: the route match and pick alone,
// then `fetch(target, request)` (MODE "route"), or with the forwarded headers built as Switchyard
// builds them (MODE "headers"). Comparing these with the passthrough and the real app says what
// the routing costs and what the rest of the pipeline costs.
import { parseRoutesText } from "../../contract/index.ts";
import { forwardHeaders } from "../../worker/core/forward-headers.ts";
import { pick } from "../../worker/core/pick.ts";
import { requestUrl, viewOfRequest } from "../../worker/core/request.ts";
import { compileSnapshot, type Snapshot } from "../../worker/core/snapshot.ts";

interface AblationEnv {
  /** JSON object: KV key → value text, as for the Switchyard bench entry. */
  KV_JSON: string;
  MODE: "route" | "headers";
}

let snapshot: Snapshot | undefined;

export default {
  async fetch(request: Request, env: AblationEnv) {
    if (!snapshot) {
      const parsed = parseRoutesText((JSON.parse(env.KV_JSON) as { routes: string }).routes);
      if (!parsed.ok) throw new Error("the ablation's routes document is invalid");
      snapshot = compileSnapshot({
        generation: "ablation",
        routes: parsed.value,
        kvPools: new Map(),
        local: true,
      });
    }
    const url = requestUrl(request.url);
    const matched = snapshot.matcher.match(viewOfRequest(request, url));
    const rule = matched && snapshot.rule(matched.routeIndex, matched.ruleIndex);
    const choice = rule && pick(rule);
    if (choice?.kind !== "endpoints") return new Response("no route", { status: 404 });
    const target = `${choice.first.endpoint.origin}${url.pathname}${url.search}`;
    if (env.MODE === "route") return fetch(target, request);
    const headers = forwardHeaders(request.headers, {
      clientIp: request.headers.get("cf-connecting-ip"),
      proto: "http",
      host: request.headers.get("host") ?? url.host,
      requestId: crypto.randomUUID(),
      websocket: false,
    });
    return fetch(target, {
      method: request.method,
      headers,
      body: request.body,
      redirect: "manual",
    });
  },
};
