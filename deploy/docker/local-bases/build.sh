#!/bin/sh
# Builds stand-ins for the base images that deploy/docker/*.Dockerfile, docker-compose.yml and
# swarm-stack.yml name, on an engine that cannot reach an image registry (an offline machine, or CI): a
# Debian root from Debian's package archive (debootstrap, then `docker import`), Node from this machine's
# own install, and nginx, Redis, Prometheus and the node exporter from Debian's packages. Each is tagged
# with the name the files use, so the files build and run unchanged:
#
#   node:20-bookworm-slim      Debian 12 + this machine's node and npm, user node (uid 1000)
#   nginx:1.28-alpine          Debian 12's nginx (1.22: the balancer falls back to re-rendering, see
#                              docs/deploy.md), user nginx, wget for the health check
#   redis:7.4-alpine           Debian 12's redis-server (7.0)
#   prom/prometheus:v3.5.0     Debian 12's prometheus (2.42)
#   prom/node-exporter:v1.9.1  Debian 12's prometheus-node-exporter (1.5)
#
# A name that already exists is left alone (a real image pulled from a registry wins), unless it is a
# stand-in built from an older recipe (its org.inferrer.local-base-rev label is the sha256 of the
# Dockerfile it came from, and of the node binary for node:20-bookworm-slim); FORCE=1 rebuilds everything.
# Every stand-in carries the labels org.inferrer.local-base=true and org.inferrer.stands-in-for=<name>:
#   docker image ls --filter label=org.inferrer.local-base=true
# Grafana is not packaged by Debian and has no stand-in. The GPU modelhost's CUDA base neither.
#
# Run as root (debootstrap), from anywhere:
#   deploy/docker/local-bases/build.sh
# Environment: DEBIAN_MIRROR (http://deb.debian.org/debian), DEBIAN_SUITE (bookworm), NODE (the node
# binary, default: the one on PATH), CACHE_DIR (where the Debian root's tarball is kept between runs;
# default ${XDG_CACHE_HOME:-$HOME/.cache}/inferrer/docker-bases), DOCKER (docker).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
docker=${DOCKER:-docker}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
suite=${DEBIAN_SUITE:-bookworm}
cache=${CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/inferrer/docker-bases}
force=${FORCE:-}
debian=inferrer-local/debian:$suite

log() { echo "local-bases: $*" >&2; }
# One build at a time: a second run (CI starts one in the background, the engine suites ask again) waits
# for the first, then finds its images present.
mkdir -p "$cache"
if command -v flock >/dev/null 2>&1; then
  exec 9>"$cache/.build.lock"
  flock 9
fi
have() { [ -z "$force" ] && $docker image inspect "$1" >/dev/null 2>&1; }
# current NAME REV: the image exists and is either not a stand-in (pulled) or a stand-in of this recipe.
current() {
  [ -z "$force" ] || return 1
  got=$($docker image inspect --format '{{index .Config.Labels "org.inferrer.local-base"}} {{index .Config.Labels "org.inferrer.local-base-rev"}}' "$1" 2>/dev/null) || return 1
  case "$got" in "true $2") return 0 ;; true*) log "$1: a stand-in from an older recipe, rebuilt"; return 1 ;; *) return 0 ;; esac
}
rev() { cat "$@" | sha256sum | cut -c1-16; }

# 1. The Debian root: debootstrap (minbase) into a folder, packed once into the cache, imported.
if have "$debian"; then
  log "$debian: present"
else
  tarball="$cache/debian-$suite-minbase.tar"
  if [ ! -s "$tarball" ] || [ -n "$force" ]; then
    command -v debootstrap >/dev/null 2>&1 || { log "debootstrap is not installed (apt-get install debootstrap)"; exit 2; }
    root=$(mktemp -d "${TMPDIR:-/tmp}/inferrer-debootstrap.XXXXXX")
    trap 'rm -rf "$root"' EXIT
    log "debootstrap --variant=minbase $suite from $mirror"
    debootstrap --variant=minbase "$suite" "$root" "$mirror" >"$root.log" 2>&1 || { tail -n 20 "$root.log" >&2; exit 2; }
    rm -f "$root.log"
    # What Debian's own container images leave out: apt caches and lists.
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    tar -C "$root" --numeric-owner -cf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
    rm -rf "$root"
    trap - EXIT
  fi
  log "docker import $tarball as $debian"
  $docker import --change 'CMD ["bash"]' --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    "$tarball" "$debian" >/dev/null
fi

# build NAME DOCKERFILE [CONTEXT [REV]]: one stand-in, labelled.
build() {
  name=$1 file=$2 ctx=${3:-$here} r=${4:-$(rev "$2")}
  if current "$name" "$r"; then
    log "$name: present"
    return
  fi
  make "$name" "$file" "$ctx" "$r"
}
# make NAME DOCKERFILE CONTEXT REV: builds it.
make() {
  name=$1 file=$2 ctx=$3 r=$4
  log "building $name ($(basename "$file"))"
  out=$(DOCKER_BUILDKIT=0 $docker build --force-rm -f "$file" --build-arg "DEBIAN_IMAGE=$debian" \
    --label org.inferrer.local-base=true --label "org.inferrer.stands-in-for=$name" \
    --label "org.inferrer.local-base-rev=$r" -t "$name" "$ctx" 2>&1) || {
    printf '%s\n' "$out" | tail -n 30 >&2
    return 2
  }
}

# 2. Node from this machine: the binary and npm, in a throw-away build context.
node_bin=$(command -v "${NODE:-node}")
node_bin=$(readlink -f "$node_bin")
npm_dir=$(cd "$(dirname "$node_bin")/../lib/node_modules/npm" 2>/dev/null && pwd || true)
node_rev=$(rev "$here/node.Dockerfile" "$node_bin")
if ! current node:20-bookworm-slim "$node_rev"; then
  [ -n "$npm_dir" ] || { log "npm not found beside $node_bin"; exit 2; }
  ctx=$(mktemp -d "${TMPDIR:-/tmp}/inferrer-node-base.XXXXXX")
  cp "$node_bin" "$ctx/node"
  cp -a "$npm_dir" "$ctx/npm"
  cp "$here/node.Dockerfile" "$ctx/Dockerfile"
  make node:20-bookworm-slim "$ctx/Dockerfile" "$ctx" "$node_rev" || { rm -rf "$ctx"; exit 2; }
  rm -rf "$ctx"
else
  log "node:20-bookworm-slim: present"
fi

# 3. The rest from Debian's packages.
build nginx:1.28-alpine "$here/nginx.Dockerfile"
build redis:7.4-alpine "$here/redis.Dockerfile"
build prom/prometheus:v3.5.0 "$here/prometheus.Dockerfile"
build prom/node-exporter:v1.9.1 "$here/node-exporter.Dockerfile"
log "done"
