// The baseline of the bare-workerd benchmarks: the least a proxying worker can do.
export default {
  fetch(request: Request, env: { BACKEND: string }) {
    const url = new URL(request.url);
    return fetch(`${env.BACKEND}${url.pathname}${url.search}`, request);
  },
};
