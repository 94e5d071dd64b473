#!/usr/bin/env bash
# Throwaway PostgreSQL cluster for kiln's tests.
#
#   .ci/pg.sh start   init (if needed) + start; prints ONE line on stdout:
#                       postgres://postgres@127.0.0.1:PORT/postgres?sslmode=disable
#                     Idempotent: if the cluster in $KILN_PG_DIR is already
#                     running, it just prints the URL again.
#   .ci/pg.sh url     print the URL of the running cluster (exit 1 if not running)
#   .ci/pg.sh status  exit 0 if running, 1 otherwise (message on stderr)
#   .ci/pg.sh stop    stop the cluster and remove $KILN_PG_DIR (idempotent)
#
# Everything except the URL goes to stderr; the server log is $KILN_PG_DIR/postgres.log.
#
# Environment:
#   KILN_PG_DIR        base dir of the cluster (default /tmp/kiln-pg); the data
#                      dir is $KILN_PG_DIR/data, the unix socket lives in it.
#   KILN_PG_PORT       first port to try (default 55432); scans upward.
#   KILN_PG_BIN        directory holding initdb/pg_ctl/postgres (auto-detected).
#   KILN_PG_VERSION    preferred major version (default 15).
#   KILN_PG_NO_INSTALL set to 1 to never apt-get install postgresql.
#
# Safe to run as root: the server runs as the 'postgres' OS user via runuser/su.
set -euo pipefail

BASE="${KILN_PG_DIR:-/tmp/kiln-pg}"
FIRST_PORT="${KILN_PG_PORT:-55432}"
PREF_VERSION="${KILN_PG_VERSION:-15}"
START_TIMEOUT=10      # seconds pg_ctl waits for the server
PORT_SCAN=200         # how many ports to scan upward
MARKER=".kiln-pg"     # marks a dir as ours, so stop/re-init may delete it

log() { printf 'pg.sh: %s\n' "$*" >&2; }
die() { printf 'pg.sh: ERROR: %s\n' "$*" >&2; exit 1; }

# Make BASE absolute and refuse obviously dangerous values before any rm -rf.
ORIG_BASE="$BASE"
case "$BASE" in
  /*) ;;
  *) BASE="$(pwd)/$BASE" ;;
esac
BASE="${BASE%/}"
case "$BASE" in
  ''|/|/tmp|/root|/home|/usr|/var|/etc|/opt|/work) die "refusing to use KILN_PG_DIR='$ORIG_BASE' (too dangerous to rm -rf)";;
esac
DATA="$BASE/data"
LOGFILE="$BASE/postgres.log"

IS_ROOT=0
[ "$(id -u)" -eq 0 ] && IS_ROOT=1
PG_USER=postgres
[ "$IS_ROOT" -eq 1 ] || PG_USER="$(id -un)"

# ---------------------------------------------------------------- binaries ---
find_bin() {
  local d
  d="/usr/lib/postgresql/$PREF_VERSION/bin"
  [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && { echo "$d"; return 0; }
  # Any other Debian-layout version, newest first.
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5,5 -V -r); do
    [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && { echo "$d"; return 0; }
  done
  # Non-Debian layouts: initdb on PATH.
  if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    dirname "$(command -v initdb)"; return 0
  fi
  return 1
}

install_pg() {
  [ "${KILN_PG_NO_INSTALL:-0}" = 1 ] && return 1
  [ "$IS_ROOT" -eq 1 ] || { log "not root: cannot apt-get install postgresql"; return 1; }
  command -v apt-get >/dev/null 2>&1 || { log "no apt-get on this machine"; return 1; }
  log "PostgreSQL server binaries not found; installing via apt-get (output in $BASE.apt.log)"
  mkdir -p "$(dirname "$BASE")"
  # Don't let the package's postinst start its own 'main' cluster service.
  local policy=/usr/sbin/policy-rc.d made_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && made_policy=1
  fi
  local rc=0
  {
    DEBIAN_FRONTEND=noninteractive apt-get update &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold postgresql
  } </dev/null >"$BASE.apt.log" 2>&1 || rc=$?
  [ "$made_policy" -eq 1 ] && rm -f "$policy"
  if [ "$rc" -ne 0 ]; then
    tail -n 20 "$BASE.apt.log" >&2 || true
    log "apt-get install postgresql failed (rc=$rc), see $BASE.apt.log"
    return 1
  fi
  rm -f "$BASE.apt.log"
  return 0
}

BIN=""
resolve_bin() {
  if [ -n "${KILN_PG_BIN:-}" ]; then   # explicit choice: use it or fail, never install
    [ -x "$KILN_PG_BIN/initdb" ] && [ -x "$KILN_PG_BIN/pg_ctl" ] \
      || die "KILN_PG_BIN='$KILN_PG_BIN' has no initdb/pg_ctl"
    BIN="$KILN_PG_BIN"; return 0
  fi
  if BIN="$(find_bin)"; then return 0; fi
  install_pg || die "no PostgreSQL server binaries found (looked in /usr/lib/postgresql/*/bin and PATH) and could not install them; install the 'postgresql' package or set KILN_PG_BIN"
  BIN="$(find_bin)" || die "installed 'postgresql' but still cannot find initdb/pg_ctl under /usr/lib/postgresql/*/bin"
}

# Run a command as the postgres OS user (or as ourselves when not root).
# fd 9 (the start lock) is closed so the postmaster does not inherit it.
as_pg() {
  if [ "$IS_ROOT" -eq 0 ]; then
    (cd "$BASE" && "$@") 9>&-
  elif command -v runuser >/dev/null 2>&1; then
    (cd "$BASE" && runuser -u "$PG_USER" -- "$@") 9>&-
  else
    local q; q="$(printf '%q ' "$@")"
    (cd "$BASE" && su -s /bin/sh "$PG_USER" -c "$q") 9>&-
  fi
}

ensure_pg_user() {
  [ "$IS_ROOT" -eq 1 ] || return 0
  id -u "$PG_USER" >/dev/null 2>&1 && return 0
  log "creating system user '$PG_USER'"
  useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/bash "$PG_USER" \
    || die "could not create OS user '$PG_USER'"
}

# ------------------------------------------------------------------- ports ---
port_in_use() {
  local p="$1"
  if command -v ss >/dev/null 2>&1; then
    [ -n "$(ss -Hltn "sport = :$p" 2>/dev/null)" ] && return 0
  fi
  # Fallback / double check: can we connect?
  (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && return 0
  return 1
}

pick_port() {
  local p="$1" end=$(( $1 + PORT_SCAN ))
  while [ "$p" -lt "$end" ]; do
    port_in_use "$p" || { echo "$p"; return 0; }
    p=$((p + 1))
  done
  return 1
}

# ------------------------------------------------------------------ status ---
url_for() { printf 'postgres://postgres@127.0.0.1:%s/postgres?sslmode=disable\n' "$1"; }

# Port of the running server, from postmaster.pid (line 4).
running_port() { sed -n 4p "$DATA/postmaster.pid" 2>/dev/null; }

# The postmaster's pid is alive and not a zombie (a killed postmaster can
# linger as a zombie when PID 1 does not reap, fooling `pg_ctl status`).
pid_alive() {
  local pid="$1" state
  [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] || return 1
  state="$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)"
  [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

is_running() {
  [ -f "$DATA/PG_VERSION" ] && [ -f "$DATA/postmaster.pid" ] || return 1
  pid_alive "$(sed -n 1p "$DATA/postmaster.pid" 2>/dev/null)" || return 1
  as_pg "$BIN/pg_ctl" status -D "$DATA" >/dev/null 2>&1
}

# Accepts TCP connections on 127.0.0.1:$1 within $2 seconds (wall clock).
wait_ready() {
  local port="$1" deadline=$(( SECONDS + ${2:-5} ))
  while :; do
    "$BIN/pg_isready" -q -t 1 -h 127.0.0.1 -p "$port" -U postgres -d postgres 2>/dev/null && return 0
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.1
  done
}

is_ours() { [ -f "$BASE/$MARKER" ]; }

wipe() {
  [ -e "$BASE" ] || return 0
  if is_ours || [ -z "$(ls -A "$BASE" 2>/dev/null)" ]; then
    rm -rf -- "$BASE"
  else
    die "'$BASE' exists but was not created by pg.sh (no $MARKER); refusing to delete it. Set KILN_PG_DIR elsewhere or remove it."
  fi
}

# ------------------------------------------------------------------- init ---
write_conf() { # port
  cat > "$DATA/kiln.conf" <<EOF
# written by .ci/pg.sh -- throwaway test cluster, NOT crash safe
port = $1
listen_addresses = '127.0.0.1'
unix_socket_directories = '$DATA'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
logging_collector = off
log_min_messages = warning
EOF
  chown "$PG_USER": "$DATA/kiln.conf" 2>/dev/null || true
}

init_cluster() {
  wipe
  mkdir -p "$BASE"
  touch "$BASE/$MARKER"
  if [ "$IS_ROOT" -eq 1 ]; then
    chown "$PG_USER": "$BASE"
    # The postgres user must be able to reach $BASE.
    runuser -u "$PG_USER" -- test -w "$BASE" 2>/dev/null \
      || su -s /bin/sh "$PG_USER" -c "test -w '$BASE'" 2>/dev/null \
      || die "OS user '$PG_USER' cannot write '$BASE' (a parent dir is not traversable?); set KILN_PG_DIR to e.g. /tmp/kiln-pg"
  fi
  log "initdb in $DATA ($BIN)"
  if ! as_pg "$BIN/initdb" -D "$DATA" -U postgres -E UTF8 --locale=C \
        --auth=trust --no-sync >"$BASE/initdb.log" 2>&1; then
    cat "$BASE/initdb.log" >&2
    die "initdb failed"
  fi
  # Trust, loopback only.
  cat > "$DATA/pg_hba.conf" <<'EOF'
# TYPE  DATABASE  USER  ADDRESS         METHOD
local   all       all                   trust
host    all       all   127.0.0.1/32    trust
EOF
  chown "$PG_USER": "$DATA/pg_hba.conf" 2>/dev/null || true
  echo "include 'kiln.conf'" >> "$DATA/postgresql.conf"
}

# ------------------------------------------------------------------ start ---
start_server() {
  local port="$1"
  write_conf "$port"
  : > "$LOGFILE"
  chown "$PG_USER": "$LOGFILE" 2>/dev/null || true
  as_pg "$BIN/pg_ctl" start -D "$DATA" -l "$LOGFILE" -w -t "$START_TIMEOUT" >&2
}

cmd_start() {
  resolve_bin
  ensure_pg_user
  mkdir -p "$(dirname "$BASE")"
  exec 9>"$BASE.lock"
  flock -w 30 9 || die "timed out waiting for lock $BASE.lock"

  if [ -d "$BASE" ] && is_running; then
    local p; p="$(running_port)"
    if [ -n "$p" ] && wait_ready "$p" 3; then
      log "already running in $DATA on port $p"
      url_for "$p"
      return 0
    fi
    log "server in $DATA has a live pid but does not answer on port '${p:-?}'; restarting it"
  fi

  # A dir left over from a killed run (or a half-made one): start afresh.
  if [ -e "$BASE" ]; then
    log "removing stale $BASE"
    if [ -f "$DATA/postmaster.pid" ] && pid_alive "$(sed -n 1p "$DATA/postmaster.pid")"; then
      as_pg "$BIN/pg_ctl" stop -D "$DATA" -m immediate -w -t 3 >/dev/null 2>&1 || true
    fi
    wipe
  fi
  init_cluster

  local port="$FIRST_PORT" tries=0
  while :; do
    port="$(pick_port "$port")" || die "no free TCP port in $FIRST_PORT..$((FIRST_PORT + PORT_SCAN - 1))"
    if start_server "$port"; then break; fi
    tries=$((tries + 1))
    # Maybe someone grabbed the port between the check and the bind: retry.
    if [ "$tries" -lt 3 ] && grep -q 'could not bind\|Address already in use' "$LOGFILE" 2>/dev/null; then
      log "port $port taken meanwhile, trying the next one"
      port=$((port + 1))
      continue
    fi
    tail -n 30 "$LOGFILE" >&2 || true
    die "PostgreSQL failed to start (log: $LOGFILE)"
  done

  # Make sure it accepts TCP connections, not only that the pid file is there.
  if wait_ready "$port" 5; then
    log "started PostgreSQL $(cat "$DATA/PG_VERSION") in $DATA on 127.0.0.1:$port"
    url_for "$port"
    return 0
  fi
  tail -n 30 "$LOGFILE" >&2 || true
  die "PostgreSQL started but does not accept connections on 127.0.0.1:$port"
}

cmd_stop() {
  if [ ! -e "$BASE" ]; then
    log "nothing to stop ($BASE does not exist)"
    rm -f "$BASE.lock"
    return 0
  fi
  is_ours || die "'$BASE' was not created by pg.sh (no $MARKER); not touching it"
  if [ -f "$DATA/postmaster.pid" ] && pid_alive "$(sed -n 1p "$DATA/postmaster.pid")"; then
    resolve_bin
    if ! as_pg "$BIN/pg_ctl" stop -D "$DATA" -m fast -w -t 10 >&2; then
      log "fast shutdown failed, using immediate"
      as_pg "$BIN/pg_ctl" stop -D "$DATA" -m immediate -w -t 10 >&2 || true
    fi
  fi
  wipe
  rm -f "$BASE.lock"
  log "stopped and removed $BASE"
}

# restart [DOWN_SECONDS]: stop the server (fast), stay down, start it again
# on the same port with the same data (fault tests).
cmd_restart() {
  resolve_bin
  is_running || die "not running ($DATA)"
  local port; port="$(running_port)"
  as_pg "$BIN/pg_ctl" stop -D "$DATA" -m fast -w -t 10 >&2 || as_pg "$BIN/pg_ctl" stop -D "$DATA" -m immediate -w -t 10 >&2
  sleep "${1:-0}"
  as_pg "$BIN/pg_ctl" start -D "$DATA" -l "$LOGFILE" -w -t "$START_TIMEOUT" >&2
  wait_ready "$port" 5 || die "PostgreSQL did not come back on port $port"
  log "restarted on port $port"
}

cmd_url() {
  resolve_bin
  is_running || die "not running ($DATA)"
  url_for "$(running_port)"
}

cmd_status() {
  resolve_bin
  if is_running; then log "running in $DATA on port $(running_port)"; return 0; fi
  log "not running ($DATA)"; return 1
}

case "${1:-}" in
  start)  cmd_start ;;
  stop)   cmd_stop ;;
  restart) shift; cmd_restart "$@" ;;
  url)    cmd_url ;;
  status) cmd_status ;;
  *) echo "usage: $0 start|stop|restart [DOWN_SECONDS]|url|status" >&2; exit 2 ;;
esac
