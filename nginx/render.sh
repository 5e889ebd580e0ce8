#!/bin/sh
# Renders nginx/nginx.conf.template from the environment, for the balancer container (docker-compose,
# Docker Swarm, Kubernetes). It fills the same placeholders as the launcher's renderer
# (services/cli/src/nginx.ts), the same way: for the same inputs both write the same file
# (test/deploy/nginx-config.test.ts holds them together). POSIX sh and awk only, no envsubst.
#
#   render.sh                 render, print the config's path
#   render.sh nginx -g …      render, then exec the command (the container's entrypoint)
#
# Environment (the names docker-compose.yml, swarm-stack.yml and deploy/k8s give the balancer):
#   MODELHOST_DNS          comma list of host:port names whose addresses change while nginx runs
#                          (Swarm: tasks.modelhost:9001; Kubernetes: a headless Service's FQDN).
#   MODELHOST_UPSTREAMS    or: comma list of fixed host:port upstreams, resolved once at start.
#   UPSTREAM_RESOLVE       how MODELHOST_DNS names are followed: auto (default) | on | off.
#                          on: "server NAME resolve" with a resolver, nginx re-resolves by itself (needs
#                          nginx >= 1.27.3). off: the names are resolved here (getent) and written as
#                          fixed addresses; nginx/balancer.sh renders again every RESOLVER_VALID and
#                          reloads nginx when the addresses changed. auto: on where `nginx -v` says
#                          1.27.3 or newer, else off.
#   NGINX_BIN              the nginx asked for its version in auto (default nginx)
#   BALANCE                least_conn (default) | placement (consistent hash on the Inferrer's
#                          X-Inferrer-Placement header: a model's replica key) | hash (on the model name)
#   LISTEN                 port or address:port to listen on (default 8080)
#   MAX_BODY_BYTES         largest request body; match the Inferrer's MAX_BODY_BYTES (default 64 MiB)
#   REQUEST_TIMEOUT_MS     upstream timeouts; match the Inferrer's REQUEST_TIMEOUT_MS (default 30000)
#   RESOLVER               DNS server for MODELHOST_DNS (default: the first nameserver in
#                          /etc/resolv.conf: 127.0.0.11 under Docker, kube-dns under Kubernetes)
#   RESOLVER_VALID         how long an answer is kept, overriding its TTL (default 5s)
#   MAX_FAILS, FAIL_TIMEOUT  passive health per upstream server (defaults 3 and 5s)
#   NGINX_WORKER_PROCESSES (default auto)
#   NGINX_PREFIX           where the config, pid and temp files go (default /tmp/nginx)
#   NGINX_TEMPLATE         the template (default /etc/inferrer/nginx.conf.template)
#   NGINX_CONF             where the config goes (default $NGINX_PREFIX/nginx.conf)
#   ACCESS_LOG             access_log arguments (default "/dev/stdout inferrer"; "off" turns it off)
set -eu

prefix=${NGINX_PREFIX:-/tmp/nginx}
template=${NGINX_TEMPLATE:-/etc/inferrer/nginx.conf.template}
balance=${BALANCE:-least_conn}
listen=${LISTEN:-8080}
max_body_bytes=${MAX_BODY_BYTES:-67108864}
request_timeout_ms=${REQUEST_TIMEOUT_MS:-30000}
max_fails=${MAX_FAILS:-3}
fail_timeout=${FAIL_TIMEOUT:-5s}
resolver_valid=${RESOLVER_VALID:-5s}
dns=${MODELHOST_DNS:-}
static=${MODELHOST_UPSTREAMS:-}
upstream_resolve=${UPSTREAM_RESOLVE:-auto}
nginx_bin=${NGINX_BIN:-nginx}

fail() {
  echo "render.sh: $*" >&2
  exit 2
}

case "$balance" in
  least_conn) balance_directive='least_conn;' ;;
  hash) balance_directive='hash $inferrer_model consistent;' ;;
  placement) balance_directive='hash $http_x_inferrer_placement consistent;' ;;
  *) fail "BALANCE must be least_conn, placement or hash (got '$balance')" ;;
esac
case "$max_body_bytes" in '' | *[!0-9]*) fail "MAX_BODY_BYTES must be a number of bytes (got '$max_body_bytes')" ;; esac
case "$request_timeout_ms" in '' | *[!0-9]*) fail "REQUEST_TIMEOUT_MS must be a number of milliseconds (got '$request_timeout_ms')" ;; esac
case "$max_fails" in '' | *[!0-9]*) fail "MAX_FAILS must be a number (got '$max_fails')" ;; esac
case "$upstream_resolve" in auto | on | off) ;; *) fail "UPSTREAM_RESOLVE must be auto, on or off (got '$upstream_resolve')" ;; esac
# As the launcher: whole seconds, rounded up, at least 1.
request_timeout_s=$(((request_timeout_ms + 999) / 1000))
[ "$request_timeout_s" -ge 1 ] || request_timeout_s=1

if [ -n "$dns" ] && [ -n "$static" ]; then fail "set MODELHOST_DNS or MODELHOST_UPSTREAMS, not both"; fi
if [ -z "$dns" ] && [ -z "$static" ]; then fail "set MODELHOST_DNS (names resolved while running) or MODELHOST_UPSTREAMS (fixed host:port list)"; fi

nl='
'
servers=''
# The mode balancer.sh reads: resolve (nginx follows the names), watch (fixed addresses of names that
# balancer.sh re-resolves), fixed (MODELHOST_UPSTREAMS).
mode=fixed
if [ -n "$dns" ]; then
  if [ "$upstream_resolve" = auto ]; then
    # "server … resolve" in an upstream (and "resolver" inside one) came to open-source nginx in 1.27.3.
    version=$("$nginx_bin" -v 2>&1 | sed -n 's|.*nginx/\([0-9][0-9.]*\).*|\1|p' | head -n 1)
    [ -n "$version" ] || fail "cannot tell the nginx version ($nginx_bin -v); set UPSTREAM_RESOLVE=on or off"
    if printf '%s\n' "$version" | awk -F. '{ exit !($1 > 1 || ($1 == 1 && ($2 > 27 || ($2 == 27 && $3 >= 3)))) }'; then
      upstream_resolve=on
    else
      upstream_resolve=off
    fi
  fi
  old_ifs=$IFS
  IFS=,
  names=''
  for name in $dns; do
    name=$(printf '%s' "$name" | tr -d ' ')
    [ -n "$name" ] || continue
    case "$name" in *:[0-9]*) ;; *) fail "MODELHOST_DNS entries are host:port (got '$name')" ;; esac
    names="$names $name"
  done
  IFS=$old_ifs
  [ -n "$names" ] || fail "MODELHOST_DNS names no host:port"
  if [ "$upstream_resolve" = on ]; then
    mode=resolve
    resolver=${RESOLVER:-$(awk '$1 == "nameserver" { print $2; exit }' /etc/resolv.conf 2>/dev/null || true)}
    [ -n "$resolver" ] || fail "MODELHOST_DNS needs a DNS server: set RESOLVER or give /etc/resolv.conf a nameserver"
    # IPv6 nameservers need brackets in nginx's resolver directive.
    case "$resolver" in *:*:*) case "$resolver" in \[*) ;; *) resolver="[$resolver]" ;; esac ;; esac
    # Why "resolve" in the upstream and not "set $x tasks.modelhost; proxy_pass http://$x:9001;" with a
    # resolver: a variable in proxy_pass re-resolves too, on any nginx, but it bypasses the upstream block,
    # so it loses least_conn and the consistent hash (plain round robin over the A records), the keep-alive
    # pool to the modelhosts (a new TCP connection per request) and passive health (max_fails). "resolve"
    # keeps all three.
    servers="        resolver $resolver valid=$resolver_valid ipv6=off;${nl}        resolver_timeout 2s;"
    for name in $names; do
      servers="$servers${nl}        server $name resolve max_fails=$max_fails fail_timeout=$fail_timeout;"
    done
  else
    # nginx < 1.27.3: the addresses the names have now, as fixed servers (the upstream block, and so
    # least_conn, the hash, keep-alive and max_fails, stay). balancer.sh renders again every
    # RESOLVER_VALID and reloads nginx when they change; a reload lets open requests finish.
    mode=watch
    for name in $names; do
      host=${name%:*}
      port=${name##*:}
      # A name with no answer can take the resolver's whole retry cycle (an internal network has no
      # upstream DNS to forward to): give each lookup 2 s.
      addrs=$({ timeout 2 getent ahostsv4 "$host" 2>/dev/null || timeout 2 getent hosts "$host" 2>/dev/null || true; } | awk '$1 ~ /^[0-9.]+$/ { print $1 }' | sort -u)
      for a in $addrs; do
        servers="$servers${servers:+$nl}        server $a:$port max_fails=$max_fails fail_timeout=$fail_timeout;"
      done
    done
    # An upstream needs a server: while no modelhost exists, one marked down (nginx answers 502).
    [ -n "$servers" ] || servers="        server 127.0.0.1:9 down; # no address for$names yet"
  fi
else
  old_ifs=$IFS
  IFS=,
  for u in $static; do
    u=$(printf '%s' "$u" | tr -d ' ')
    [ -n "$u" ] || continue
    servers="$servers${servers:+$nl}        server $u max_fails=$max_fails fail_timeout=$fail_timeout;"
  done
  IFS=$old_ifs
fi

if [ "$(id -u)" = 0 ]; then user_directive='user root root;'; else user_directive=''; fi

for d in "$prefix" "$prefix/client_body" "$prefix/proxy" "$prefix/fastcgi" "$prefix/uwsgi" "$prefix/scgi"; do
  mkdir -p "$d"
done
[ -r "$template" ] || fail "no template at $template (set NGINX_TEMPLATE)"
conf=${NGINX_CONF:-$prefix/nginx.conf}

# Fill {{NAME}} from T_NAME in the environment; a placeholder without a value is an error, as in the
# launcher's renderer. awk's index/substr keep values literal ($, &, / and newlines included).
T_USER_DIRECTIVE=$user_directive \
T_NGINX_WORKER_PROCESSES=${NGINX_WORKER_PROCESSES:-auto} \
T_PREFIX=$prefix \
T_ACCESS_LOG=${ACCESS_LOG:-/dev/stdout inferrer} \
T_BALANCE_DIRECTIVE=$balance_directive \
T_UPSTREAM_SERVERS=$servers \
T_LISTEN=$listen \
T_MAX_BODY_BYTES=$max_body_bytes \
T_REQUEST_TIMEOUT_S=$request_timeout_s \
awk '
  {
    line = $0; out = ""
    while ((i = index(line, "{{")) > 0) {
      rest = substr(line, i + 2)
      j = index(rest, "}}")
      if (j == 0) break
      name = substr(rest, 1, j - 1)
      if (name !~ /^[A-Z_]+$/) { out = out substr(line, 1, i + 1); line = rest; continue }
      if (!(("T_" name) in ENVIRON)) { print "render.sh: nginx template needs " name > "/dev/stderr"; exit 3 }
      out = out substr(line, 1, i - 1) ENVIRON["T_" name]
      line = substr(rest, j + 2)
    }
    print out line
  }
' "$template" >"$conf.tmp"
mv "$conf.tmp" "$conf"
printf '%s\n' "$mode" >"$prefix/upstreams.mode"

if [ "$#" -gt 0 ]; then
  exec "$@"
fi
echo "$conf"
