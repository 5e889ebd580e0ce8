# syntax=docker/dockerfile:1
# The load balancer: nginx in front of the modelhosts, configured from the environment by nginx/render.sh
# (the same template the launcher renders). Build from the repository root:
#   docker build -f deploy/docker/balancer.Dockerfile -t inferrer/balancer .
# nginx >= 1.27.3 is required for "server tasks.modelhost:9001 resolve" (workers re-resolved while
# running, with least_conn, the consistent hash, keep-alive and max_fails kept): the official 1.28 image
# has it; Debian 12's nginx 1.22 does not (see docs/deploy.md).
ARG NGINX_IMAGE=nginx:1.28-alpine
FROM ${NGINX_IMAGE}
COPY nginx/nginx.conf.template /etc/inferrer/nginx.conf.template
COPY --chmod=0755 nginx/render.sh /usr/local/bin/inferrer-render-nginx
RUN mkdir -p /tmp/nginx && chown nginx:nginx /tmp/nginx
USER nginx
ENV NGINX_PREFIX=/tmp/nginx NGINX_TEMPLATE=/etc/inferrer/nginx.conf.template LISTEN=8080
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD wget -q -O /dev/null "http://127.0.0.1:${LISTEN}/nginx/status" || exit 1
STOPSIGNAL SIGQUIT
ENTRYPOINT ["/usr/local/bin/inferrer-render-nginx"]
CMD ["nginx", "-e", "stderr", "-p", "/tmp/nginx", "-c", "/tmp/nginx/nginx.conf", "-g", "daemon off;"]
