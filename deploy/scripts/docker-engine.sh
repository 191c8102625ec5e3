#!/usr/bin/env bash
# A private Docker engine for the image test, started by hand:
#
#   deploy/scripts/docker-engine.sh start STATE_DIR   # prints DOCKER_HOST=unix://...
#   deploy/scripts/docker-engine.sh stop  STATE_DIR
#
# dockerd (Debian's docker.io) runs with its data root, exec root, socket and
# managed containerd all under STATE_DIR, the overlay2 driver, and
# --bridge=none --iptables=false --ip6tables=false --ip-forward=false: it makes
# no bridge, takes no private address range and leaves the firewall and
# sysctls alone, so containers can only use host networking (or none).
# `stop` ends dockerd (which stops its containers and containerd), then any
# process still running from STATE_DIR by its pid, unmounts whatever is left
# under STATE_DIR and deletes it. Needs root.
set -euo pipefail
# shellcheck source=deploy/scripts/lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

usage() { die "usage: $0 start|stop STATE_DIR"; }
[ $# -eq 2 ] || usage
cmd="$1"
state="$(realpath -m "$2")"
sock="$state/docker.sock"
pidfile="$state/dockerd.pid"

engine_up() { DOCKER_HOST="unix://$sock" /usr/bin/docker info >/dev/null 2>&1; }

start() {
  require_root
  ensure_packages docker.io
  mkdir -p "$state"
  if [ -S "$sock" ] && engine_up; then
    log "already running: $sock"
  else
    log "starting dockerd in $state"
    # setsid: its own session, so a Ctrl-C in the caller's terminal reaches
    # only the caller, whose trap stops the engine in order.
    setsid /usr/sbin/dockerd \
      --data-root "$state/data" --exec-root "$state/exec" --pidfile "$pidfile" \
      --host "unix://$sock" --storage-driver overlay2 \
      --bridge none --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false \
      --userland-proxy=false --log-level warn \
      >"$state/dockerd.log" 2>&1 </dev/null &
    local deadline=$((SECONDS + 60))
    until engine_up; do
      if [ $SECONDS -gt $deadline ] || ! kill -0 $! 2>/dev/null; then
        tail -20 "$state/dockerd.log" >&2
        die "dockerd did not come up"
      fi
      sleep 0.5
    done
    log "dockerd up (pid $(cat "$pidfile"))"
  fi
  printf 'DOCKER_HOST=unix://%s\n' "$sock"
}

stop() {
  [ -d "$state" ] || { log "nothing to stop in $state"; return 0; }
  if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    local pid
    pid="$(cat "$pidfile")"
    log "stopping dockerd (pid $pid)"
    kill -TERM "$pid"
    local deadline=$((SECONDS + 60))
    while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.5; done
    kill -0 "$pid" 2>/dev/null && { log "dockerd still up, killing it"; kill -KILL "$pid" || true; }
  fi
  local left
  left="$(pids_mentioning "$state/")"
  if [ -n "$left" ]; then
    log "ending leftover processes: $(echo "$left" | tr '\n' ' ')"
    echo "$left" | xargs -r kill -TERM 2>/dev/null || true
    sleep 2
    left="$(pids_mentioning "$state/")"
    [ -z "$left" ] || echo "$left" | xargs -r kill -KILL 2>/dev/null || true
  fi
  # Mounts left by a crash (overlay layers, shm, netns files), deepest first.
  findmnt -rn -o TARGET | grep -F "$state/" | sort -r | while read -r target; do
    umount "$target" 2>/dev/null || umount -l "$target" || true
  done
  rm -rf "$state"
  log "stopped; $state removed"
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  *) usage ;;
esac
