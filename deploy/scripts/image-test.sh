#!/usr/bin/env bash
# `make image-test`: the image and the compose demo, end to end, on a machine
# with no registry and no bridge networks. Needs root. It
#
#  1. installs docker.io, docker-compose and debootstrap if missing;
#  2. builds (or takes from the cache) a Debian bookworm base with Python 3.11;
#  3. starts a private dockerd (deploy/scripts/docker-engine.sh: own data root,
#     overlay2, --bridge=none --iptables=false);
#  4. builds the image from host-built wheels with `docker build --network none`
#     and checks it (non-root, HEALTHCHECK, `jobq` entrypoint, no compiler);
#  5. runs compose.yaml with deploy/compose/compose.hostnet.yaml against the
#     host's PostgreSQL (a database of its own, JOBQ_IT_DATABASE): the
#     one-shot migrate, the API and two workers on host networking;
#  6. enqueues a noop job through the API, waits for it to succeed on a
#     worker, scrapes /metrics of the API and the workers, waits for the
#     containers' health checks, stops the workers and checks they exit 0;
#  7. builds a second image FROM it with a non-demo app (examples/image_app,
#     JOBQ_APP=greeter.tasks:app), runs an API and a worker from that image on
#     the same database, enqueues the app's kinds and sees them succeed, the
#     demo's kinds refused by its API and left queued by its worker;
#  8. tears everything down (containers, dockerd, its mounts, the database)
#     and checks that no process, mount, network link or iptables rule is left.
#
# Environment: JOBQ_IT_PG (default postgresql://postgres@127.0.0.1:5432), the
# server whose `postgres` database it connects to and where it creates
# JOBQ_IT_DATABASE (default jobq_image_test); JOBQ_CACHE_DIR (the base tarball);
# JOBQ_IT_KEEP=1 leaves the engine running on failure, to look around.
set -euo pipefail
# shellcheck source=deploy/scripts/lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/../.."
ROOT="$PWD"

require_root
t0=$SECONDS
phase() { log "== $* (+$((SECONDS - t0)) s)"; }

PG="${JOBQ_IT_PG:-postgresql://postgres@127.0.0.1:5432}"
DB="${JOBQ_IT_DATABASE:-jobq_image_test}"
IMAGE=jobq:image-test
BASE=jobq-base:bookworm
PROJECT=jobq-image-test
DOCKER=/usr/bin/docker   # Debian's client; another `docker` on PATH may have no daemon
export PGOPTIONS="-c client_min_messages=warning"
# The demo runs jobq's demo app (compose.yaml's default); the own-app phase sets its own.
unset JOBQ_APP
APP_IMAGE=jobq-greeter:image-test
APP_CONTAINERS=(jobq-it-app-api jobq-it-app-worker)

phase "packages"
ensure_packages docker.io docker-compose debootstrap
command -v psql >/dev/null || ensure_packages postgresql-client

state="$(mktemp -d "${TMPDIR:-/tmp}/jobq-image-test.XXXXXX")"
snapshot() {
  ip -o link show | awk -F': ' '{print $2}' | sort >"$state/links.$1"
  { iptables-save 2>/dev/null; ip6tables-save 2>/dev/null; } | grep -vE '^#' | sort >"$state/iptables.$1" || true
  cat /proc/sys/net/ipv4/ip_forward >"$state/sysctl.$1"
}
snapshot before

export JOBQ_IMAGE="$IMAGE" JOBQ_IT_DATABASE_URL="$PG/$DB"
JOBQ_IT_API_PORT="$(free_port)"
JOBQ_IT_WORKER_PORT="$(free_port)"
JOBQ_IT_WORKER2_PORT="$(free_port)"
export JOBQ_IT_API_PORT JOBQ_IT_WORKER_PORT JOBQ_IT_WORKER2_PORT

compose() {
  docker-compose --ansi never -p "$PROJECT" -f "$ROOT/compose.yaml" \
    -f "$ROOT/deploy/compose/compose.hostnet.yaml" "$@"
}

teardown() {
  local rc=$?
  set +e
  if [ "$rc" -ne 0 ] && [ -S "$state/docker/docker.sock" ]; then
    log "failed: container logs follow"
    compose logs --no-color --tail=60 2>&1 | sed 's/^/  | /' >&2
    for name in "${APP_CONTAINERS[@]}"; do
      $DOCKER logs --tail=40 "$name" 2>&1 | sed "s/^/  $name | /" >&2
    done
    if [ "${JOBQ_IT_KEEP:-}" = 1 ]; then
      log "JOBQ_IT_KEEP=1: engine left running; DOCKER_HOST=unix://$state/docker/docker.sock"
      log "clean up with: deploy/scripts/docker-engine.sh stop $state/docker && rm -rf $state"
      exit "$rc"
    fi
  fi
  phase "teardown"
  if [ -S "$state/docker/docker.sock" ]; then
    $DOCKER rm --force "${APP_CONTAINERS[@]}" >/dev/null 2>&1
    compose down --volumes --remove-orphans --timeout 40 >/dev/null 2>&1
  fi
  bash "$ROOT/deploy/scripts/docker-engine.sh" stop "$state/docker"
  psql "$PG/postgres" -qX -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null
  # Nothing left behind: no process, mount, link or firewall rule of ours.
  local leftovers=""
  [ -z "$(pids_mentioning "$state/")" ] || leftovers+=" processes"
  findmnt -rn -o TARGET | grep -qF "$state/" && leftovers+=" mounts"
  snapshot after
  # Only what dockerd would make counts: other programs on the machine may
  # add links or rules of their own meanwhile.
  comm -13 "$state/links.before" "$state/links.after" | grep -qE '^(docker|br-)' \
    && leftovers+=" network-links"
  comm -13 "$state/iptables.before" "$state/iptables.after" | grep -qi docker \
    && leftovers+=" iptables-rules"
  cmp -s "$state/sysctl.before" "$state/sysctl.after" || leftovers+=" ip_forward"
  rm -rf "$state"
  if [ -n "$leftovers" ]; then
    log "FAILED: left behind:$leftovers"
    rc=1
  fi
  if [ "$rc" -eq 0 ]; then
    log "image-test passed in $((SECONDS - t0)) s"
  else
    log "image-test FAILED (exit $rc) after $((SECONDS - t0)) s"
  fi
  exit "$rc"
}
trap teardown EXIT
trap 'exit 130' INT TERM

phase "base image"
base_tar="$(bash deploy/scripts/base-image.sh)"

phase "docker engine"
eval "export $(bash deploy/scripts/docker-engine.sh start "$state/docker")"
export DOCKER_HOST
$DOCKER import "$base_tar" "$BASE" >/dev/null

phase "image"
.venv/bin/python deploy/scripts/image_context.py build/image
$DOCKER build --quiet --network none --build-arg BASE_IMAGE="$BASE" -t "$IMAGE" . >/dev/null
[ "$($DOCKER image inspect -f '{{.Config.User}}' "$IMAGE")" = "10001:10001" ] || die "image user is not 10001"
[ "$($DOCKER image inspect -f '{{json .Config.Entrypoint}}' "$IMAGE")" = '["jobq"]' ] || die "entrypoint is not jobq"
if ! $DOCKER image inspect -f '{{json .Config.Healthcheck.Test}}' "$IMAGE" | grep -q JOBQ_HEALTHCHECK_URL \
  || ! $DOCKER image inspect -f '{{json .Config.Env}}' "$IMAGE" \
  | grep -q 'JOBQ_HEALTHCHECK_URL=http://127.0.0.1:8000/healthz'; then
  die "no HEALTHCHECK on /healthz"
fi
# shellcheck disable=SC2016  # expanded in the container
$DOCKER run --rm --network none --entrypoint sh "$IMAGE" -c \
  '[ "$(id -u)" = 10001 ] && ! command -v gcc && ! command -v cc && jobq --help >/dev/null' \
  || die "image checks failed (user, compiler, jobq --help)"
# The image has no embedded PostgreSQL: without DATABASE_URL, a clear message.
if out="$($DOCKER run --rm --network none "$IMAGE" migrate 2>&1)"; then
  die "jobq migrate without DATABASE_URL succeeded in the image"
fi
if ! grep -q DATABASE_URL <<<"$out" || grep -q Traceback <<<"$out"; then
  die "jobq without DATABASE_URL should name it, without a traceback: $out"
fi
size_mb=$(($($DOCKER image inspect -f '{{.Size}}' "$IMAGE") / 1000000))
base_mb=$(($($DOCKER image inspect -f '{{.Size}}' "$BASE") / 1000000))
log "image $IMAGE: ${size_mb} MB (base ${base_mb} MB)"

phase "compose demo"
psql "$PG/postgres" -qX -v ON_ERROR_STOP=1 \
  -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB" >/dev/null
compose config --quiet
compose run --rm --no-deps migrate
compose up --detach --no-deps api-host worker worker-2
# Host networking only: Compose must have made no network.
nets="$($DOCKER network ls --format '{{.Name}}' | sort | tr '\n' ' ')"
[ "$nets" = "host none " ] || die "unexpected docker networks: $nets"

declare -A cids
for service in api-host worker worker-2; do cids[$service]="$(compose ps -q "$service")"; done
.venv/bin/python deploy/scripts/demo_check.py \
  --api "http://127.0.0.1:$JOBQ_IT_API_PORT" \
  --worker "http://127.0.0.1:$JOBQ_IT_WORKER_PORT" \
  --worker "http://127.0.0.1:$JOBQ_IT_WORKER2_PORT" \
  --leave-running "$state/running-job" &
check=$!
# A container that exits fails the test at once, not at the check's timeout.
while kill -0 "$check" 2>/dev/null; do
  for service in "${!cids[@]}"; do
    if [ "$($DOCKER inspect -f '{{.State.Running}}' "${cids[$service]}")" != true ]; then
      kill "$check" 2>/dev/null
      die "$service exited with $($DOCKER inspect -f '{{.State.ExitCode}}' "${cids[$service]}")"
    fi
  done
  sleep 1
done
wait "$check" || die "the demo check failed"

phase "health checks"
deadline=$((SECONDS + 60))
for service in "${!cids[@]}"; do
  cid="${cids[$service]}"
  until [ "$($DOCKER inspect -f '{{.State.Health.Status}}' "$cid")" = healthy ]; do
    [ $SECONDS -lt $deadline ] || die "$service is not healthy: $($DOCKER inspect -f '{{json .State.Health}}' "$cid")"
    sleep 1
  done
done
log "api-host, worker and worker-2 report healthy"

phase "clean stop"
# SIGTERM to PID 1 of each container (jobq itself); the workers give the
# running job JOBQ_SHUTDOWN_GRACE_SECONDS (2 s here), then put it back.
compose stop --timeout 40 worker worker-2 api-host >/dev/null 2>&1
for service in "${!cids[@]}"; do
  code="$($DOCKER inspect -f '{{.State.ExitCode}}' "${cids[$service]}")"
  [ "$code" = 0 ] || die "$service exited $code on SIGTERM (expected 0)"
done
running="$(psql "$PG/$DB" -qtAX -c "SELECT count(*) FROM jobq.jobs WHERE status = 'running'")"
[ "$running" = 0 ] || die "$running jobs left running after a clean stop"
long_job="$(cat "$state/running-job")"
outcome="$(psql "$PG/$DB" -qtAX -c "SELECT j.status || ' ' || string_agg(a.outcome, ',')
  FROM jobq.jobs j JOIN jobq.job_attempts a ON a.job_id = j.id
  WHERE j.id = '$long_job' GROUP BY j.status")"
[ "$outcome" = "queued interrupted" ] \
  || die "the job running at SIGTERM should be queued with an interrupted attempt: $outcome"
log "api and workers exited 0 on SIGTERM; the running job went back to the queue"

phase "own app"
# What docs/DEPLOY.md tells a user to do: an image FROM jobq's with their code
# and JOBQ_APP in it, the API and the workers both run from it.
$DOCKER build --quiet --network none --build-arg JOBQ_IMAGE="$IMAGE" -t "$APP_IMAGE" \
  examples/image_app >/dev/null
app_api_port="$(free_port)"
app_worker_port="$(free_port)"
app_run=(run --detach --network host -e DATABASE_URL="$JOBQ_IT_DATABASE_URL" -e JOBQ_SCHEMA=jobq)
$DOCKER "${app_run[@]}" --name jobq-it-app-api \
  -e JOBQ_HEALTHCHECK_URL="http://127.0.0.1:$app_api_port/healthz" "$APP_IMAGE" \
  serve --host=127.0.0.1 --port="$app_api_port" --no-workers --no-migrate >/dev/null
$DOCKER "${app_run[@]}" --name jobq-it-app-worker \
  -e JOBQ_HEALTHCHECK_URL="http://127.0.0.1:$app_worker_port/healthz" "$APP_IMAGE" \
  worker --concurrency=2 --metrics-port="$app_worker_port" --no-migrate >/dev/null
.venv/bin/python deploy/scripts/demo_check.py \
  --api "http://127.0.0.1:$app_api_port" --worker "http://127.0.0.1:$app_worker_port" \
  --app-job '{"kind": "greet", "payload": {"name": "image test"}}' \
  --app-job '{"kind": "count_words", "payload": {"text": "one two three"}}' \
  || die "the own app's check failed"
# The demo's job put back at the clean stop is of a kind this worker lacks: still queued.
left="$(psql "$PG/$DB" -qtAX -c "SELECT status || ' ' || attempts FROM jobq.jobs WHERE id = '$long_job'")"
[ "${left%% *}" = queued ] || die "the own app's worker touched the demo's job: $left"
$DOCKER stop --time 40 "${APP_CONTAINERS[@]}" >/dev/null
for name in "${APP_CONTAINERS[@]}"; do
  code="$($DOCKER inspect -f '{{.State.ExitCode}}' "$name")"
  [ "$code" = 0 ] || die "$name exited $code on SIGTERM (expected 0)"
done
log "own app (JOBQ_APP=greeter.tasks:app): its kinds ran, the demo's job stayed queued"
