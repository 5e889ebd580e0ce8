#!/bin/sh
# Entrypoint of the balancer image: renders the nginx config (nginx/render.sh), runs nginx, and keeps the
# upstream list in step with the DNS where nginx cannot do that itself.
#
#   balancer.sh nginx -p PREFIX -c PREFIX/nginx.conf -g 'daemon off;'     (the image's CMD)
#
# With MODELHOST_DNS, render.sh writes "server NAME resolve" on nginx >= 1.27.3 and nginx follows the
# names by itself; on older nginx (Debian 12 packages 1.22, Debian 13 1.26) it writes the addresses the
# names have now, and this script renders again every RESOLVER_VALID: when the addresses changed (a
# modelhost added, removed or replaced), it checks the new file with `nginx -t` and reloads nginx
# (SIGHUP: new workers take the new list, old ones finish their requests). Scaling the modelhosts thus
# takes effect without restarting the balancer on any nginx.
#
# Everything written to stderr (nginx's error log, render.sh, this script) leaves as one JSON line per
# line, {"time","service":"nginx","level","msg"}, like the access log and the Node services' logs.
# SIGQUIT (the image's STOPSIGNAL: finish open requests), SIGTERM and SIGINT are passed on to nginx.
set -eu

render=${RENDER:-/usr/local/bin/inferrer-render-nginx}
prefix=${NGINX_PREFIX:-/tmp/nginx}
conf=$prefix/nginx.conf
interval=${RESOLVER_VALID:-5s}
interval=${interval%s}
case "$interval" in '' | *[!0-9]*) interval=5 ;; esac
[ "$interval" -ge 1 ] || interval=1
[ "$#" -gt 0 ] || set -- nginx -e stderr -p "$prefix" -c "$conf" -g 'daemon off;'

mkdir -p "$prefix"
# stderr through a FIFO into awk, which writes JSON lines to the real stderr (kept as fd 3).
fifo=$prefix/stderr.fifo
rm -f "$fifo"
mkfifo "$fifo"
exec 3>&2
awk '
  function esc(s) { gsub(/\\/, "\\\\", s); gsub(/"/, "\\\"", s); gsub(/\t/, "\\t", s); gsub(/[\001-\037]/, "", s); return s }
  /^\{.*\}$/ { print; fflush(); next }
  {
    level = "info"
    if (match($0, /\[(debug|info|notice|warn|error|crit|alert|emerg)\]/)) level = substr($0, RSTART + 1, RLENGTH - 2)
    else if ($0 ~ /^render\.sh: /) level = "error"
    cmd = "date -u +%Y-%m-%dT%H:%M:%SZ"; cmd | getline now; close(cmd)
    printf "{\"time\":\"%s\",\"service\":\"nginx\",\"level\":\"%s\",\"msg\":\"%s\"}\n", now, level, esc($0)
    fflush()
  }
' <"$fifo" >&3 &
logger=$!
exec 2>"$fifo"
rm -f "$fifo" # both ends are open; the name is no longer needed

say() { printf '{"time":"%s","service":"nginx","level":"%s","msg":"%s"}\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$1" "$2" >&3; }
# Exit once the JSON writer has written everything (when PID 1 exits, the rest of the container goes).
finish() {
  exec 2>&3
  wait "$logger" 2>/dev/null || true
  exit "$1"
}
upstreams() { awk '/^ *server .*(max_fails|down)/ { printf "%s%s", sep, $2; sep = " " }' "$conf"; }

"$render" >/dev/null || finish 2
mode=$(cat "$prefix/upstreams.mode")
version=$(nginx -v 2>&1 | sed -n 's|.*nginx/\([0-9][0-9.]*\).*|\1|p')
say info "nginx $version; upstreams: $mode ($(upstreams))"

stopping=''
"$@" &
pid=$!
trap 'stopping=1; kill -QUIT "$pid" 2>/dev/null || true' QUIT
trap 'stopping=1; kill -TERM "$pid" 2>/dev/null || true' TERM INT

if [ "$mode" = watch ]; then
  while [ -z "$stopping" ] && kill -0 "$pid" 2>/dev/null; do
    sleep "$interval" &
    wait $! 2>/dev/null || true
    [ -z "$stopping" ] && kill -0 "$pid" 2>/dev/null || break
    NGINX_CONF="$conf.next" "$render" >/dev/null || continue
    if cmp -s "$conf.next" "$conf"; then
      rm -f "$conf.next"
      continue
    fi
    if ! out=$(nginx -t -q -e stderr -p "$prefix" -c "$conf.next" 2>&1); then
      printf '%s\n' "$out" >&2
      say error "nginx -t refused the config for the new modelhost addresses; keeping the running one"
      rm -f "$conf.next"
      continue
    fi
    mv "$conf.next" "$conf"
    say info "modelhost addresses changed: reloading nginx with $(upstreams)"
    kill -HUP "$pid" 2>/dev/null || true
  done
fi

# Wait for nginx; a trapped signal interrupts wait, so wait again while it runs.
status=0
while :; do
  if wait "$pid" 2>/dev/null; then status=0; else status=$?; fi
  kill -0 "$pid" 2>/dev/null || break
done
finish "$status"
