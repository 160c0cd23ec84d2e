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
USER node
EXPOSE 8080
ENTRYPOINT ["node", "discovery-sync/main.ts"]
