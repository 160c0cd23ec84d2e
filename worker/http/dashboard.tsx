/** @jsxRuntime automatic */
/** @jsxImportSource hono/jsx */
import { raw } from "hono/html";

/**
 * The dashboard under ADMIN_PATH: a page with no data of its own. It asks for the admin token
 * once (kept in this tab's sessionStorage), then reads /status and /pools with it every two
 * seconds and shows routes, pools, endpoint states and health, and the last load error.
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
    $("routes").innerHTML = status.routes.map((r) => "<tr><td>" + esc(r.name) + "</td><td>" + esc(r.hostnames.join(", ") || "any host") + "</td><td>" + r.rules + "</td></tr>").join("");
    $("pools").innerHTML = pools.map((p) => p.endpoints.map((e, i) =>
      "<tr>" + (i === 0 ? "<td rowspan=" + p.endpoints.length + ">" + esc(p.name) + "<div class=muted>" + esc(p.source) + (p.generation !== null ? " · gen " + p.generation : "") + (p.panic ? " · panic" : "") + "</div></td>" : "") +
      "<td>" + esc(e.url) + "</td><td>" + e.weight + "</td><td class=" + esc(e.state) + ">" + esc(e.state) + "</td><td class=" + esc(e.health) + ">" + esc(e.health) +
      (e.ejectedUntil ? " until " + esc(e.ejectedUntil) : "") + "</td><td>" + e.failuresInWindow + "/" + e.requestsInWindow + "</td></tr>").join("") ||
      "<tr><td>" + esc(p.name) + "</td><td colspan=5 class=muted>no endpoints</td></tr>").join("");
    $("updated").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (error) { $("updated").textContent = String(error.message); }
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
          <TableSection title="Routes" body="routes" columns={["route", "hostnames", "rules"]} />
          <TableSection
            title="Pools, as this isolate sees them"
            body="pools"
            columns={["pool", "endpoint", "weight", "state", "health", "failed/served (10 s)"]}
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
