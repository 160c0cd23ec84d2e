// The passthrough worker adding what every proxy in bench:proxy adds to a request (nginx and
// HAProxy are configured to): X-Forwarded-Proto, X-Forwarded-Host and a new X-Request-Id. The
// floor for a worker that forwards as a proxy must, next to the plain passthrough's.
export default {
  fetch(request: Request, env: { BACKEND: string }) {
    const url = new URL(request.url);
    const headers = new Headers(request.headers);
    headers.set("x-forwarded-proto", url.protocol.slice(0, -1));
    headers.set("x-forwarded-host", url.host);
    headers.set("x-request-id", crypto.randomUUID());
    return fetch(`${env.BACKEND}${url.pathname}${url.search}`, {
      method: request.method,
      headers,
      body: request.body,
      redirect: "manual",
    });
  },
};
