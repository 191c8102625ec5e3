# Shared by the deploy scripts (sourced, not run).
# shellcheck shell=bash

log() { printf '%s [%s] %s\n' "$(date +%H:%M:%S)" "${0##*/}" "$*" >&2; }
die() { log "error: $*"; exit 1; }

require_root() {
  [ "$(id -u)" = 0 ] || die "must run as root (it installs packages, starts dockerd, mounts)"
}

# Install Debian packages that are missing, idempotently. CI starts on a fresh
# machine, so the scripts install what they use. Services that the packages
# would start (dockerd with its bridge and iptables rules, pgbouncer on 6432)
# are kept from starting with a policy-rc.d for the duration, unless the
# machine already has one.
ensure_packages() {
  local missing=() pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
      || missing+=("$pkg")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  log "installing ${missing[*]}"
  local policy=/usr/sbin/policy-rc.d placed=""
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && placed=1
  fi
  local rc=0
  { apt-get update -qq \
      && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null; } || rc=$?
  [ -n "$placed" ] && rm -f "$policy"
  [ "$rc" -eq 0 ] || die "apt-get install ${missing[*]} failed"
}

# A free TCP port on 127.0.0.1 (the kernel picks it; a race with another
# process taking it before we bind is possible but harmless in practice).
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

cache_dir() {
  local dir="${JOBQ_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/jobq}"
  mkdir -p "$dir" && printf '%s\n' "$dir"
}

# Pids of the processes whose command line mentions $1 (a state folder of
# ours: dockerd's containerd and shims run with paths under it), this shell
# and its parent excluded. Pure bash, so no helper process matches itself.
pids_mentioning() {
  local p args
  for p in /proc/[0-9]*; do
    case "${p#/proc/}" in "$$" | "$BASHPID" | "$PPID") continue ;; esac
    { mapfile -d '' args <"$p/cmdline"; } 2>/dev/null || continue
    [[ " ${args[*]} " == *"$1"* ]] && printf '%s\n' "${p#/proc/}"
  done
  return 0
}
