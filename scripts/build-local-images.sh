#!/usr/bin/env bash
# Build the local base images the tests and the demo use. No registry is reachable here, so
# images are made from Debian packages: a busybox image (tiny containers) and a Debian Python
# image (the demo target and the agent). Each is built only when its tag is missing.
set -euo pipefail

BUSYBOX_TAG="${SRE_AGENT_BUSYBOX_IMAGE:-sre-agent/busybox:local}"
PYTHON_TAG="${SRE_AGENT_PYTHON_BASE_IMAGE:-sre-agent/python-base:bookworm}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

have() { docker image inspect "$1" >/dev/null 2>&1; }

if ! have "$BUSYBOX_TAG"; then
  echo "building $BUSYBOX_TAG"
  root="$WORK/busybox"
  mkdir -p "$root/bin" "$root/www" "$root/tmp"
  cp /bin/busybox "$root/bin/busybox"
  for applet in sh httpd sleep echo cat ls wget nc true false kill ps env; do
    ln -s busybox "$root/bin/$applet"
  done
  echo ok > "$root/www/health"
  printf '# HELP demo_up 1\n# TYPE demo_up gauge\ndemo_up 1\n' > "$root/www/metrics"
  tar -C "$root" -c . | docker import - "$BUSYBOX_TAG" >/dev/null
fi

if [ "${1:-}" != "--busybox-only" ] && ! have "$PYTHON_TAG"; then
  echo "building $PYTHON_TAG (debootstrap, about a minute)"
  root="$WORK/python"
  debootstrap --variant=minbase --include=python3,python3-prometheus-client,python3-venv,python3-pip,ca-certificates \
    bookworm "$root" >"$WORK/debootstrap.log" 2>&1 || { tail -20 "$WORK/debootstrap.log"; exit 1; }
  rm -rf "$root/var/cache/apt/archives"/*.deb "$root/var/lib/apt/lists"/*
  tar -C "$root" -c . | docker import - "$PYTHON_TAG" >/dev/null
fi
docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep '^sre-agent/' || true
