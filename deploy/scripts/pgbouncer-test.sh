#!/usr/bin/env bash
# `make pgbouncer-test`: install Debian's PgBouncer if missing (without
# starting its service) and run tests/test_pgbouncer.py, which fails instead
# of skipping when PgBouncer is absent. Each test run starts its own
# PgBouncer on a free 127.0.0.1 port with a generated config and stops it.
# DATABASE_URL as for `make test` (CI: the host's PostgreSQL).
set -euo pipefail
# shellcheck source=deploy/scripts/lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/../.."

if ! command -v pgbouncer >/dev/null && [ ! -x /usr/sbin/pgbouncer ]; then
  require_root
  ensure_packages pgbouncer
fi
export JOBQ_TESTS_REQUIRE_ALL=1
exec .venv/bin/pytest tests/test_pgbouncer.py -p no:cacheprovider "$@"
