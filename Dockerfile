# discovery-sync. Build: docker build -t switchyard-sync .
# Runs `npm run sync`, which execs Node on discovery-sync/main.ts (TypeScript run directly by
# Node 24's type stripping), so SIGTERM reaches the sync process.
FROM node:24-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
# Production dependencies only: the worker's toolchain (wrangler, workerd, vitest) stays out.
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force
COPY contract ./contract
COPY discovery-sync ./discovery-sync
# Numeric, so that the kubelet can check runAsNonRoot: "node" is uid/gid 1000 in this image.
USER 1000:1000
EXPOSE 8080
# The same memory settings as `npm run sync` (see docs/benchmarks.md): glibc arenas capped, a
# small young generation and a capped old space keep 10,000 Services within 300 MiB. Raise
# --max-old-space-size for more (docs/deploy.md, "Sizing").
ENV MALLOC_ARENA_MAX=2
ENTRYPOINT ["node", "--expose-gc", "--max-semi-space-size=16", "--max-old-space-size=128", "discovery-sync/main.ts"]
