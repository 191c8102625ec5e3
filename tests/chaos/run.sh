#!/usr/bin/env bash
# `make chaos`: the full reliability suite (tests/chaos, marked chaos), as root.
# Installs what the scenarios use (iptables for the fleet's faults, PgBouncer), then runs
# them with JOBQ_TESTS_REQUIRE_ALL=1 so that a missing tool fails instead of skipping.
# Figures: build/chaos/*.json (docs/RELIABILITY.md). Uses DATABASE_URL only for the
# migrations' template checks of tests/conftest.py; every scenario that restarts or kills
# PostgreSQL runs its own throwaway cluster.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=deploy/scripts/lib.sh
. deploy/scripts/lib.sh
require_root
ensure_packages iptables pgbouncer postgresql-15
export DATABASE_URL="${DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/postgres}"
export JOBQ_TESTS_REQUIRE_ALL=1
start=$(date +%s)
# Arguments go to pytest (e.g. -k fleet); none: every scenario.
.venv/bin/pytest -m chaos -p no:cacheprovider -v "${@:-tests/chaos}"
log "make chaos: $(( $(date +%s) - start )) s"
