// The comparison proxies of `npm run bench:proxy` and its chart: nginx and HAProxy configured
// for the same three backends and weights as Switchyard's one-route worker, and an SVG of the
// throughput and CPU ratios. docs/benchmarks.md quotes these configurations.

export function nginxConfig(dir: string, port: number, backends: { port: number }[]): string {
  return `worker_processes 1;
master_process off;
daemon off;
pid ${dir}/nginx.pid;
error_log stderr error;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/nginx-body;
  proxy_temp_path ${dir}/nginx-proxy;
  fastcgi_temp_path ${dir}/nginx-fastcgi;
  uwsgi_temp_path ${dir}/nginx-uwsgi;
  scgi_temp_path ${dir}/nginx-scgi;
  upstream pool {
${backends.map((b, i) => `    server 127.0.0.1:${b.port} weight=${i === 0 ? 2 : 1} max_fails=1 fail_timeout=30s;`).join("\n")}
    keepalive 64;
  }
  server {
    listen 127.0.0.1:${port};
    server_name x.test;
    location / {
      proxy_pass http://pool;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $proxy_host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-Host $host;
      proxy_set_header X-Request-Id $request_id;
      proxy_next_upstream error timeout;
    }
  }
}
`;
}

export function haproxyConfig(port: number, backends: { port: number }[]): string {
  return `global
  nbthread 1
  maxconn 8192
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  option http-keep-alive
  retries 1
  option redispatch
frontend fe
  bind 127.0.0.1:${port}
  default_backend pool
backend pool
  balance roundrobin
  option forwardfor
  http-request set-header X-Forwarded-Proto http
  http-request set-header X-Forwarded-Host %[req.hdr(host)]
  http-request set-header X-Request-Id %[uuid()]
  cookie SRV insert indirect nocache
${backends.map((b, i) => `  server s${i} 127.0.0.1:${b.port} weight ${i === 0 ? 2 : 1} cookie s${i} check inter 10s`).join("\n")}
`;
}

export function proxyChart(
  rows: { label: string; throughput: number; cpu: number | null }[],
): string {
  const width = 760;
  const barH = 16;
  const rowH = 44;
  const left = 330;
  const scale = (x: number, max: number) => ((width - left - 60) * x) / max;
  const maxT = Math.max(1, ...rows.map((r) => r.throughput));
  const maxC = Math.max(1, ...rows.map((r) => r.cpu ?? 0));
  const parts = rows.map((r, i) => {
    const y = 40 + i * rowH;
    return [
      `<text x="${left - 8}" y="${y + 14}" text-anchor="end">${r.label.replace(/&/g, "&amp;")}</text>`,
      `<rect x="${left}" y="${y}" width="${scale(r.throughput, maxT).toFixed(1)}" height="${barH}" fill="#2271b1"/>`,
      `<text x="${left + scale(r.throughput, maxT) + 4}" y="${y + 13}">${r.throughput.toFixed(2)}×</text>`,
      r.cpu === null
        ? ""
        : `<rect x="${left}" y="${y + barH + 2}" width="${scale(r.cpu, maxC).toFixed(1)}" height="${barH - 6}" fill="#d63638"/>` +
          `<text x="${left + scale(r.cpu, maxC) + 4}" y="${y + barH + 11}" font-size="11">${r.cpu.toFixed(2)}× CPU/req</text>`,
    ].join("");
  });
  const height = 50 + rows.length * rowH;
  const title = "Throughput and CPU per request of each proxy, × the passthrough worker";
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="13" role="img" aria-label="${title}">
<title>${title}</title>
<rect width="${width}" height="${height}" fill="#fff"/>
<text x="10" y="22" font-weight="bold">Throughput (blue) and CPU per request (red), each × the passthrough worker; medians of per-round ratios</text>
${parts.join("\n")}
</svg>
`;
}
