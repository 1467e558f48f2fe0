#!/usr/bin/env bash
# Make sure a Docker engine answers on the default socket: install it (Debian's docker.io) when it
# is missing and start it in the background when nothing runs it (no systemd here). Idempotent.
set -euo pipefail
log=${DOCKERD_LOG:-/var/log/syft-dockerd.log}
# The PID of a dockerd this script started: tests that restart the engine act only on that one.
pidfile=${SYFT_DOCKERD_PIDFILE:-/run/syft-runner-dockerd.pid}

engine_up() { docker info >/dev/null 2>&1; }

engine_up && exit 0

if ! command -v dockerd >/dev/null 2>&1; then
  echo "ensure-docker: installing docker.io (Debian)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq docker.io >/dev/null
fi
command -v docker >/dev/null 2>&1 || { echo "ensure-docker: no docker client after install" >&2; exit 1; }

if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  systemctl start docker
else
  echo "ensure-docker: starting dockerd in the background (log: $log)" >&2
  nohup dockerd >>"$log" 2>&1 &
  echo $! >"$pidfile"
fi

for _ in $(seq 1 100); do
  engine_up && exit 0
  sleep 0.2
done
echo "ensure-docker: the Docker engine did not answer within 20 s; see $log" >&2
exit 1
