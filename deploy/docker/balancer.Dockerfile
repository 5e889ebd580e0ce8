# The load balancer: nginx in front of the modelhosts, configured from the environment by nginx/render.sh
# (the template the launcher renders too) and run by nginx/balancer.sh. Build from the repository root:
#   docker build -f deploy/docker/balancer.Dockerfile -t inferrer/balancer .
# Any nginx image with a shell works (NGINX_IMAGE): on nginx >= 1.27.3 (the default, 1.28) nginx itself
# re-resolves the modelhost names ("server tasks.modelhost:9001 resolve"); on older ones (Debian 12's
# 1.22) balancer.sh re-renders the upstream list and reloads nginx when the names' addresses change.
# See docs/deploy.md.
ARG NGINX_IMAGE=nginx:1.28-alpine
FROM ${NGINX_IMAGE}
COPY nginx/nginx.conf.template /etc/inferrer/nginx.conf.template
COPY nginx/render.sh /usr/local/bin/inferrer-render-nginx
COPY nginx/balancer.sh /usr/local/bin/inferrer-balancer
RUN chmod 0755 /usr/local/bin/inferrer-render-nginx /usr/local/bin/inferrer-balancer \
 && mkdir -p /tmp/nginx && chown nginx:nginx /tmp/nginx
USER nginx
ENV NGINX_PREFIX=/tmp/nginx NGINX_TEMPLATE=/etc/inferrer/nginx.conf.template LISTEN=8080
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD wget -q -O /dev/null "http://127.0.0.1:${LISTEN}/nginx/status" || exit 1
STOPSIGNAL SIGQUIT
ENTRYPOINT ["/usr/local/bin/inferrer-balancer"]
CMD ["nginx", "-e", "stderr", "-p", "/tmp/nginx", "-c", "/tmp/nginx/nginx.conf", "-g", "daemon off;"]
