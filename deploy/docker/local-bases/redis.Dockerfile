# Stand-in for redis:7.4-alpine (see build.sh): Debian 12's redis-server (7.0), data in /data as in the
# official image, run as the redis user.
ARG DEBIAN_IMAGE=inferrer-local/debian:bookworm
FROM ${DEBIAN_IMAGE}
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /data && chown redis:redis /data
WORKDIR /data
USER redis
EXPOSE 6379
CMD ["redis-server"]
