# Stand-in for nginx:1.28-alpine (see build.sh): Debian 12's nginx (1.22), a user nginx as in the
# official image (uid 101), wget for health checks as BusyBox gives the Alpine image.
ARG DEBIAN_IMAGE=inferrer-local/debian:bookworm
FROM ${DEBIAN_IMAGE}
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx-light wget >/dev/null \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 101 nginx && useradd --system --uid 101 --gid nginx --no-create-home --shell /usr/sbin/nologin nginx \
 && nginx -V
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]
