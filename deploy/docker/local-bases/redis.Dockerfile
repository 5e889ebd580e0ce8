# Stand-in for redis:7.4-alpine (see build.sh): Debian 12's redis-server (7.0), data in /data as in the
# official image, run as the redis user. The official image is built with protected mode off (other
# containers connect over Docker's networks, and there is no password); Debian's package keeps it on, which
# refuses every client but loopback. So, as there, `protected-mode no` unless the command sets it.
ARG DEBIAN_IMAGE=inferrer-local/debian:bookworm
FROM ${DEBIAN_IMAGE}
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /data && chown redis:redis /data \
 && printf '%s\n' '#!/bin/sh' \
      'if [ "${1:-}" = redis-server ]; then' \
      '  case " $* " in *protected-mode*) ;; *) set -- "$@" --protected-mode no ;; esac' \
      'fi' \
      'exec "$@"' >/usr/local/bin/docker-entrypoint.sh \
 && chmod 0755 /usr/local/bin/docker-entrypoint.sh
WORKDIR /data
USER redis
EXPOSE 6379
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["redis-server"]
