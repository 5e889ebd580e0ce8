# Inferrer: the public gateway and the only writer of the model volume. Build from the repository root:
#   docker build -f deploy/docker/inferrer.Dockerfile -t inferrer/inferrer .
# The services run their TypeScript sources through tsx (a root dependency); there is no build step.
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
COPY packages/http/package.json packages/http/
COPY packages/model-store/package.json packages/model-store/
COPY packages/runtime/package.json packages/runtime/
COPY packages/telemetry/package.json packages/telemetry/
COPY services/inferrer/package.json services/inferrer/
# The Inferrer opens an ONNX Runtime session (CPU) to validate uploads; the CUDA download is skipped.
RUN ONNXRUNTIME_NODE_INSTALL=skip pnpm install --frozen-lockfile --prod \
      --filter inferrer-monorepo --filter "@inferrer/inferrer..."
RUN ort="$(find node_modules/.pnpm -path '*/onnxruntime-node/bin/napi-v6' -type d | head -n 1)" \
 && find "$ort" -mindepth 2 -maxdepth 2 -type d ! -path "*/linux/$(node -p process.arch)" -exec rm -rf {} +
COPY packages/ packages/
COPY services/inferrer/ services/inferrer/

FROM ${NODE_IMAGE}
ENV NODE_ENV=production
# The system CA bundle (the slim base has none): ONNX Runtime warns at start without one.
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ca-certificates >/dev/null \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=deps /app /app
# /run/keys: where docker-compose.yml mounts the api-keys volume. Docker gives a fresh named volume the
# owner and mode of the image's folder it is first mounted on, so that volume starts out the node user's
# (0700) and the one-shot api-keys service writes the key file into it as node, with no capability.
RUN mkdir -p /models /run/keys && chown node:node /models /run/keys && chmod 0700 /run/keys
USER node
ENV HOST=0.0.0.0 PORT=8002 MODEL_DIR=/models
# ONNX Runtime's usage telemetry is off (the services turn it off too, unless told otherwise); should an
# operator turn it on, it keeps a device id in $XDG_CACHE_HOME (else ~/.cache) and files in /tmp, as tsx does
# its compile cache: with the root read-only (compose, swarm, k8s) /tmp is the one writable place.
ENV ORT_DISABLE_TELEMETRY=1 XDG_CACHE_HOME=/tmp/.cache
EXPOSE 8002 8001
# Liveness, not readiness: the Inferrer's readiness follows the load balancer's, and a container should
# not be replaced because nginx restarted.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8002)+'/health/live').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
STOPSIGNAL SIGTERM
CMD ["node", "--initial-old-space-size=128", "--import", "tsx", "services/inferrer/src/main.ts"]
