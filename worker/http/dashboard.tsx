/** @jsxRuntime automatic */
/** @jsxImportSource hono/jsx */
import { raw } from "hono/html";

/**
 * The dashboard under ADMIN_PATH: a page with no data of its own. It asks for the admin token
 * once (kept in this tab's sessionStorage), then reads /status, /pools and /traffic with it every
 * two seconds and shows routes, pools, endpoint states and health, the last load error, and this
 * isolate's traffic as charts: per rule the configured split next to the observed one, per
 * endpoint requests by status class and p50/p99 latency over the last five minutes, ejections
 * with their reasons, and the snapshots loaded. Charts are SVG drawn with attributes only: the
 * CSP allows no inline style attribute.
 */

const STYLE = `
body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #1d2327; background: #f6f7f7; }
header { background: #1d2327; color: #fff; padding: 12px 20px; display: flex; gap: 16px; align-items: baseline; }
header h1 { font-size: 18px; margin: 0; }
main { padding: 16px 20px; display: grid; gap: 16px; }
section { background: #fff; border: 1px solid #dcdcde; border-radius: 6px; padding: 12px 16px; }
h2 { font-size: 15px; margin: 0 0 8px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #f0f0f1; vertical-align: top; }
th { font-weight: 600; color: #50575e; }
.up { color: #007017; } .down { color: #b32d2e; font-weight: 600; } .draining { color: #996800; }
.error { background: #fcf0f1; border-color: #f0b8b8; } .muted { color: #787c82; }
form { display: flex; gap: 8px; } input { flex: 1; padding: 6px; }
[hidden] { display: none !important; }
.note { color: #787c82; font-size: 12px; margin: -4px 0 8px; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
svg { display: block; }
.legend span { margin-right: 10px; font-size: 12px; }
.kf { color: #50575e; } .k2 { color: #00a32a; } .k3 { color: #2271b1; } .k4 { color: #b88a00; } .k5 { color: #d63638; }
`;

const SCRIPT = (base: string) => `
const base = ${JSON.stringify(base)};
const $ = (id) => document.getElementById(id);
const esc = (v) => String(v ?? "").replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
async function get(path) {
  const response = await fetch(base + path, { headers: { authorization: "Bearer " + sessionStorage.getItem("switchyard-token") } });
  if (response.status === 401) { $("login").hidden = false; throw new Error("unauthorized"); }
  return response.json();
}
async function refresh() {
  if (!sessionStorage.getItem("switchyard-token")) { $("login").hidden = false; return; }
  try {
    const [status, pools] = await Promise.all([get("/status"), get("/pools")]);
    $("login").hidden = true;
    $("generation").textContent = status.generation ? "generation " + status.generation + " · loaded " + status.ageSeconds + " s ago" : "no routes loaded";
    $("error").hidden = !status.lastError;
    $("error-text").textContent = status.lastError ? status.lastError.message + " (" + status.lastError.at + ")" : "";
    $("warnings").innerHTML = status.warnings.map((w) => "<li>" + esc(w) + "</li>").join("") || "<li class=muted>none</li>";
    $("routes").innerHTML = status.routes.map((r) => "<tr><td>" + esc(r.name) + "</td><td>" + esc(r.hostnames.join(", ") || "any host") + "</td><td>" + r.rules + "</td><td>" + esc(r.filters.join(", ") || "none") + "</td></tr>").join("");
    $("pools").innerHTML = pools.map((p) => p.endpoints.map((e, i) =>
      "<tr>" + (i === 0 ? "<td rowspan=" + p.endpoints.length + ">" + esc(p.name) + "<div class=muted>" + esc(p.source) + (p.generation !== null ? " · gen " + p.generation : "") + (p.panic ? " · panic" : "") + "</div></td>" : "") +
      "<td>" + esc(e.url) + "</td><td>" + e.weight + "</td><td class=" + esc(e.state) + ">" + esc(e.state) + "</td><td class=" + esc(e.health) + ">" + esc(e.health) +
      (e.ejectedUntil ? " until " + esc(e.ejectedUntil) : "") + "</td><td>" + e.failuresInWindow + "/" + e.requestsInWindow + "</td></tr>").join("") ||
      "<tr><td>" + esc(p.name) + "</td><td colspan=5 class=muted>no endpoints</td></tr>").join("");
    drawTraffic(await get("/traffic"));
    $("updated").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (error) { $("updated").textContent = String(error.message); }
}
const COLORS = { "2xx": "#00a32a", "3xx": "#2271b1", "4xx": "#dba617", "5xx": "#d63638", failed: "#50575e" };
const W = 180, H = 34;
function requestsChart(e) {
  const n = e.requests.length, bw = W / n, max = Math.max(1, ...e.requests.map((r, i) => r + e.failedTries[i]));
  let out = "";
  for (let i = 0; i < n; i++) {
    let y = H;
    for (const k of ["2xx", "3xx", "4xx", "5xx", "failed"]) {
      const v = k === "failed" ? e.failedTries[i] : e.status[k][i];
      if (!v) continue;
      const bh = (v / max) * (H - 2);
      y -= bh;
      out += '<rect x="' + (i * bw).toFixed(1) + '" y="' + y.toFixed(1) + '" width="' + Math.max(1, bw - 1).toFixed(1) + '" height="' + bh.toFixed(1) + '" fill="' + COLORS[k] + '"/>';
    }
  }
  return '<svg width="' + W + '" height="' + H + '" role="img" aria-label="requests by status class, 10 s a bar, peak ' + max + '"><rect width="' + W + '" height="' + H + '" fill="#f6f7f7"/>' + out + "</svg>";
}
function latencyChart(e) {
  const n = e.p99Ms.length, bw = W / n;
  const max = Math.max(1, ...e.p99Ms.filter((v) => v !== null));
  const line = (values, color) => {
    const points = values.map((v, i) => v === null ? null : (i * bw + bw / 2).toFixed(1) + "," + (H - 1 - (v / max) * (H - 3)).toFixed(1)).filter(Boolean);
    const dots = points.map((p) => { const [x, y] = p.split(","); return '<circle cx="' + x + '" cy="' + y + '" r="1.8" fill="' + color + '"/>'; }).join("");
    return (points.length > 1 ? '<polyline points="' + points.join(" ") + '" fill="none" stroke="' + color + '" stroke-width="1.5"/>' : "") + dots;
  };
  return '<svg width="' + W + '" height="' + H + '" role="img" aria-label="p50 and p99 latency, peak ' + max + ' ms"><rect width="' + W + '" height="' + H + '" fill="#f6f7f7"/>' + line(e.p50Ms, "#2271b1") + line(e.p99Ms, "#d63638") + "</svg>";
}
function splitBar(share, color) {
  return '<svg width="120" height="10" role="img" aria-label="' + Math.round(share * 100) + ' percent"><rect width="120" height="10" fill="#f0f0f1"/><rect width="' + (share * 120).toFixed(1) + '" height="10" fill="' + color + '"/></svg>';
}
const pct = (x) => (x * 100).toFixed(0) + "%";
function drawTraffic(t) {
  const unrouted = t.unrouted.reduce((n, v) => n + v, 0);
  $("traffic-note").textContent = "Counters of the isolate that answered this page, " + t.bucketSeconds + " s a bar over the last five minutes" + (t.truncated ? "; some endpoints are not followed (too many)" : "") + "; " + unrouted + " requests matched no route. Every isolate and location: switchyard stats.";
  $("split").innerHTML = t.rules.map((r) => {
    const tier = r.configured.filter((c) => c.priority === 0);
    const weights = tier.reduce((n, c) => n + c.weight, 0) || 1;
    const seen = Object.values(r.observed).reduce((n, v) => n + v, 0) || 1;
    return r.configured.map((c, i) => {
      const configured = c.priority === 0 ? c.weight / weights : 0;
      const observed = (r.observed[c.pool] || 0) / seen;
      return "<tr>" + (i === 0 ? "<td rowspan=" + r.configured.length + ">" + esc(r.route) + " / " + esc(r.rule) + "</td>" : "") +
        "<td>" + esc(c.pool) + (c.priority ? " <span class=muted>(priority " + c.priority + ")</span>" : "") + "</td>" +
        "<td>" + splitBar(configured, "#8c8f94") + "</td><td class=num>" + pct(configured) + "</td>" +
        "<td>" + splitBar(observed, "#2271b1") + "</td><td class=num>" + pct(observed) + "</td><td class=num>" + (r.observed[c.pool] || 0) + "</td></tr>";
    }).join("");
  }).join("") || "<tr><td colspan=7 class=muted>no requests in the last five minutes</td></tr>";
  $("traffic").innerHTML = t.endpoints.map((e) => {
    const s = e.totals.status;
    return "<tr><td>" + esc(e.pool) + "<div class=muted>" + esc(e.url || e.endpoint) + "</div></td>" +
      "<td class=num>" + e.totals.requests + "</td>" +
      "<td class=num><span class=k2>" + s["2xx"] + "</span> · <span class=k3>" + s["3xx"] + "</span> · <span class=k4>" + s["4xx"] + "</span> · <span class=k5>" + s["5xx"] + "</span></td>" +
      "<td class=num>" + (e.totals.p50Ms ?? "–") + " / " + (e.totals.p99Ms ?? "–") + "</td><td class=num>" + e.totals.retries + "</td><td class=num" + (e.totals.failedTries ? " k5" : "") + ">" + e.totals.failedTries + "</td>" +
      "<td>" + requestsChart(e) + "</td><td>" + latencyChart(e) + "</td></tr>";
  }).join("") || "<tr><td colspan=8 class=muted>no requests in the last five minutes</td></tr>";
  $("ejections").innerHTML = t.ejections.slice().reverse().map((j) =>
    "<tr><td>" + esc(j.at) + "</td><td>" + esc(j.pool) + "</td><td>" + esc(j.endpoint) + "</td><td>" + esc(j.until) + "</td><td>" + esc(j.reason) + "</td></tr>").join("") ||
    "<tr><td colspan=5 class=muted>none</td></tr>";
  $("generations").innerHTML = t.generations.slice().reverse().map((g) =>
    "<tr><td>" + esc(g.generation) + "</td><td>" + esc(g.loadedAt) + "</td><td class=num>" + g.routes + "</td><td class=num>" + g.pools + "</td></tr>").join("");
}
$("login").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem("switchyard-token", $("token").value);
  refresh();
});
refresh();
setInterval(refresh, 2000);
`;

/** A titled table whose rows the page's script fills into the tbody with id `body`. */
function TableSection(props: { title: string; body: string; columns: string[] }) {
  return (
    <section>
      <h2>{props.title}</h2>
      <table>
        <thead>
          <tr>
            {props.columns.map((column) => (
              <th>{column}</th>
            ))}
          </tr>
        </thead>
        <tbody id={props.body} />
      </table>
    </section>
  );
}

/** The page's inline style and script, whose hashes the admin API's CSP allows. */
export function dashboardParts(base: string): { style: string; script: string } {
  return { style: STYLE, script: SCRIPT(base) };
}

export function dashboard(base: string) {
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <title>Switchyard</title>
        <style>{raw(STYLE)}</style>
      </head>
      <body>
        <header>
          <h1>Switchyard</h1>
          <span id="generation">…</span>
          <span id="updated" class="muted" />
        </header>
        <main>
          <form id="login" hidden>
            <input id="token" type="password" placeholder="ADMIN_TOKEN" autocomplete="off" />
            <button type="submit">Show</button>
          </form>
          <section id="error" class="error" hidden>
            <h2>Last load error</h2>
            <div id="error-text" />
          </section>
          <TableSection
            title="Routes"
            body="routes"
            columns={["route", "hostnames", "rules", "filters"]}
          />
          <TableSection
            title="Pools, as this isolate sees them"
            body="pools"
            columns={["pool", "endpoint", "weight", "state", "health", "failed/served (10 s)"]}
          />
          <section>
            <h2>Traffic of this isolate</h2>
            <p id="traffic-note" class="note" />
            <h2>Split per rule: configured and observed</h2>
            <table>
              <thead>
                <tr>
                  <th>route / rule</th>
                  <th>pool</th>
                  <th colspan={2}>configured</th>
                  <th colspan={2}>observed</th>
                  <th>requests</th>
                </tr>
              </thead>
              <tbody id="split" />
            </table>
            <h2>Endpoints</h2>
            <div class="legend">
              <span class="k2">■ 2xx</span>
              <span class="k3">■ 3xx</span>
              <span class="k4">■ 4xx</span>
              <span class="k5">■ 5xx</span>
              <span class="kf">■ failed try</span>
              <span class="k3">— p50</span>
              <span class="k5">— p99</span>
            </div>
            <table>
              <thead>
                <tr>
                  <th>endpoint</th>
                  <th>requests</th>
                  <th>2xx · 3xx · 4xx · 5xx</th>
                  <th>p50 / p99 ms</th>
                  <th>retries</th>
                  <th>failed tries</th>
                  <th>requests by status</th>
                  <th>latency</th>
                </tr>
              </thead>
              <tbody id="traffic" />
            </table>
          </section>
          <TableSection
            title="Ejections (passive health, this isolate)"
            body="ejections"
            columns={["at", "pool", "endpoint", "until", "reason"]}
          />
          <TableSection
            title="Snapshots loaded by this isolate"
            body="generations"
            columns={["generation", "loaded", "routes", "pools"]}
          />
          <section>
            <h2>Warnings</h2>
            <ul id="warnings" />
          </section>
        </main>
        <script>{raw(SCRIPT(base))}</script>
      </body>
    </html>
  );
}
