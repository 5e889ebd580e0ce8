# Metrics service: host and cluster statistics, drift. Build from the repository root:
#   docker build -f deploy/docker/metrics.Dockerfile -t inferrer/metrics .
ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS deps
WORKDIR /app
ENV CI=true
# Certificates to trust for the registry's TLS while building, and only here (behind a proxy that re-signs
# TLS): PEM files named *.crt in deploy/docker/build-ca/. This stage is thrown away; the image keeps /app.
COPY deploy/docker/build-ca/ /tmp/build-ca/
RUN cat /tmp/build-ca/*.crt > /tmp/build-ca.pem 2>/dev/null || true
ENV NODE_EXTRA_CA_CERTS=/tmp/build-ca.pem
RUN npm install -g pnpm@9.15.9
COPY package.json pnpm-lock.yaml pnpm-workspace.yaml ./
COPY packages/core/package.json packages/core/
COPY packages/drift/package.json packages/drift/
COPY packages/model-store/package.json packages/model-store/
COPY packages/runtime/package.json packages/runtime/
COPY packages/telemetry/package.json packages/telemetry/
COPY services/metrics/package.json services/metrics/
RUN ONNXRUNTIME_NODE_INSTALL=skip pnpm install --frozen-lockfile --prod \
      --filter inferrer-monorepo --filter "@inferrer/metrics..."
COPY packages/ packages/
COPY services/metrics/ services/metrics/

FROM ${NODE_IMAGE}
ENV NODE_ENV=production
# The system CA bundle (the slim base has none): ONNX Runtime warns at start without one.
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ca-certificates >/dev/null \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=deps /app /app
USER node
ENV HOST=0.0.0.0 PORT=9400
EXPOSE 9400
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||9400)+'/health/live').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
STOPSIGNAL SIGTERM
CMD ["node", "--import", "tsx", "services/metrics/src/main.ts"]
