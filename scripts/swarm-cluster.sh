#!/usr/bin/env bash
# A throwaway 3-node Docker Swarm beside the main engine, for developing the Swarm backend:
#   scripts/swarm-cluster.sh up [--dir D] [--workers N] [--image REF ...]   (prints DOCKER_HOST)
#   scripts/swarm-cluster.sh status|down [--dir D]
# Needs root. Everything it creates is recorded in D/swarm-state.json; `down` removes it all.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m tests.swarm.cluster "$@"
