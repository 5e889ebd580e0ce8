# Modelhost (GPU): the same worker with onnxruntime-node's CUDA execution provider, on a CUDA runtime
# image. Build from the repository root:
#   docker build -f deploy/docker/modelhost-gpu.Dockerfile -t inferrer/modelhost-gpu .
# Run with EXECUTION_PROVIDERS=cuda,cpu on a host with the NVIDIA driver and the NVIDIA Container Toolkit.
# onnxruntime-node 1.30's linux/x64 CUDA provider is built for CUDA 12 and cuDNN 9; keep CUDA_IMAGE on a
# CUDA 12.x + cuDNN 9 runtime tag whose CUDA is not newer than the host driver supports.
ARG NODE_IMAGE=node:20-bookworm-slim
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

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
COPY services/modelhost/package.json services/modelhost/
RUN ONNXRUNTIME_NODE_INSTALL=skip pnpm install --frozen-lockfile --prod \
      --filter inferrer-monorepo --filter "@inferrer/modelhost..."
# Now fetch the CUDA provider explicitly: onnxruntime-node's own installer (script/install.js) downloads
# libonnxruntime_providers_{cuda,shared,tensorrt}.so from the Microsoft.ML.OnnxRuntime.Gpu.Linux NuGet
# package of the same version when ONNXRUNTIME_NODE_INSTALL=cuda12. Run by hand, not as a pnpm
# postinstall, so no cached "skip" build of the package can stand in for it; the test -f makes a failed
# download fail the build.
RUN ort="$(dirname "$(find node_modules/.pnpm -path '*/node_modules/onnxruntime-node/package.json' | head -n 1)")" \
 && cd "$ort" && ONNXRUNTIME_NODE_INSTALL=cuda12 node script/install.js \
 && test -f bin/napi-v6/linux/x64/libonnxruntime_providers_cuda.so \
 && find bin/napi-v6 -mindepth 2 -maxdepth 2 -type d ! -path '*/linux/x64' -exec rm -rf {} +
COPY packages/ packages/
COPY services/modelhost/ services/modelhost/

FROM ${NODE_IMAGE} AS node

FROM ${CUDA_IMAGE}
# Node from the official image (same major as the CPU images); glibc of Ubuntu 24.04 is newer than Debian 12's.
COPY --from=node /usr/local/bin/node /usr/local/bin/node
ENV NODE_ENV=production \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
RUN groupadd --gid 1001 inferrer && useradd --uid 1001 --gid inferrer --no-create-home --shell /usr/sbin/nologin inferrer \
 && mkdir -p /models && chown inferrer:inferrer /models
WORKDIR /app
COPY --from=deps /app /app
USER inferrer
ENV HOST=0.0.0.0 PORT=9001 MODEL_DIR=/models EXECUTION_PROVIDERS=cuda,cpu
# glibc gives a released model's memory back to the system (a fixed mmap threshold): the memory budget holds in real memory.
ENV MALLOC_MMAP_THRESHOLD_=131072
# ONNX Runtime's usage telemetry is off (the services turn it off too, unless told otherwise).
ENV ORT_DISABLE_TELEMETRY=1
EXPOSE 9001
HEALTHCHECK --interval=10s --timeout=3s --start-period=120s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||9001)+'/health/ready').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
STOPSIGNAL SIGTERM
CMD ["node", "--initial-old-space-size=128", "--import", "tsx", "services/modelhost/src/main.ts"]
