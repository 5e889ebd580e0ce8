# Stand-in for prom/node-exporter:v1.9.1 (see build.sh): Debian 12's prometheus-node-exporter (1.5),
# the official image's entrypoint and user (nobody).
ARG DEBIAN_IMAGE=inferrer-local/debian:bookworm
FROM ${DEBIAN_IMAGE}
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus-node-exporter >/dev/null \
 && rm -rf /var/lib/apt/lists/*
USER nobody
EXPOSE 9100
# Debian enables the systemd collector, which has no D-Bus in a container; the official image does not.
ENTRYPOINT ["/usr/bin/prometheus-node-exporter", "--no-collector.systemd"]
