#!/usr/bin/env bash
# Throwaway Redis server for kiln's tests (modelled on .ci/pg.sh).
#
#   .ci/redis.sh start        start (if needed); prints ONE line on stdout:
#                               redis://127.0.0.1:PORT/0
#                             Idempotent: if the server in $KILN_REDIS_DIR is
#                             already running, it just prints the URL again.
#   .ci/redis.sh restart [S]  stop the server and start it again on the SAME
#                             port (so the URL stays valid), staying down for S
#                             seconds in between (default 0; fractions allowed).
#                             Prints the URL like start. Used by the fault tests.
#   .ci/redis.sh url          print the URL of the running server (exit 1 if not running)
#   .ci/redis.sh status       exit 0 if running, 1 otherwise (message on stderr)
#   .ci/redis.sh stop         stop the server and remove $KILN_REDIS_DIR (idempotent)
#
# Everything except the URL goes to stderr; the server log is $KILN_REDIS_DIR/redis.log.
# The server listens on 127.0.0.1 only, keeps nothing on disk (--save '',
# --appendonly no) and runs daemonized with its pidfile in $KILN_REDIS_DIR.
#
# Environment:
#   KILN_REDIS_DIR         base dir of the server (default /tmp/kiln-redis)
#   KILN_REDIS_PORT        first port to try (default 56379); scans upward.
#   KILN_REDIS_BIN         path of the redis-server binary (default: from PATH).
#   KILN_REDIS_NO_INSTALL  set to 1 to never apt-get install redis-server.
set -euo pipefail

BASE="${KILN_REDIS_DIR:-/tmp/kiln-redis}"
FIRST_PORT="${KILN_REDIS_PORT:-56379}"
START_TIMEOUT=5       # seconds to wait for the server to answer PING
STOP_TIMEOUT=5        # seconds to wait for it to exit after SIGTERM
PORT_SCAN=200         # how many ports to scan upward
MARKER=".kiln-redis"  # marks a dir as ours, so stop may delete it

log() { printf 'redis.sh: %s\n' "$*" >&2; }
die() { printf 'redis.sh: ERROR: %s\n' "$*" >&2; exit 1; }

# Make BASE absolute and refuse obviously dangerous values before any rm -rf.
ORIG_BASE="$BASE"
case "$BASE" in
  /*) ;;
  *) BASE="$(pwd)/$BASE" ;;
esac
BASE="${BASE%/}"
case "$BASE" in
  ''|/|/tmp|/root|/home|/usr|/var|/etc|/opt|/work) die "refusing to use KILN_REDIS_DIR='$ORIG_BASE' (too dangerous to rm -rf)";;
esac
PIDFILE="$BASE/redis.pid"
PORTFILE="$BASE/port"
LOGFILE="$BASE/redis.log"

IS_ROOT=0
[ "$(id -u)" -eq 0 ] && IS_ROOT=1

# ---------------------------------------------------------------- binaries ---
install_redis() {
  [ "${KILN_REDIS_NO_INSTALL:-0}" = 1 ] && return 1
  [ "$IS_ROOT" -eq 1 ] || { log "not root: cannot apt-get install redis-server"; return 1; }
  command -v apt-get >/dev/null 2>&1 || { log "no apt-get on this machine"; return 1; }
  log "redis-server not found; installing via apt-get (output in $BASE.apt.log)"
  mkdir -p "$(dirname "$BASE")"
  # Don't let the package's postinst start its own system-wide service.
  local policy=/usr/sbin/policy-rc.d made_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && made_policy=1
  fi
  local rc=0
  {
    DEBIAN_FRONTEND=noninteractive apt-get update &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold redis-server
  } </dev/null >"$BASE.apt.log" 2>&1 || rc=$?
  [ "$made_policy" -eq 1 ] && rm -f "$policy"
  if [ "$rc" -ne 0 ]; then
    tail -n 20 "$BASE.apt.log" >&2 || true
    log "apt-get install redis-server failed (rc=$rc), see $BASE.apt.log"
    return 1
  fi
  rm -f "$BASE.apt.log"
  return 0
}

BIN=""
resolve_bin() {
  if [ -n "${KILN_REDIS_BIN:-}" ]; then   # explicit choice: use it or fail, never install
    [ -x "$KILN_REDIS_BIN" ] || die "KILN_REDIS_BIN='$KILN_REDIS_BIN' is not executable"
    BIN="$KILN_REDIS_BIN"; return 0
  fi
  if BIN="$(command -v redis-server 2>/dev/null)"; then return 0; fi
  # Debian installs it in /usr/bin, but be tolerant of a PATH without it.
  [ -x /usr/bin/redis-server ] && { BIN=/usr/bin/redis-server; return 0; }
  install_redis || die "redis-server not found on PATH and could not install it; install the 'redis-server' package or set KILN_REDIS_BIN"
  BIN="$(command -v redis-server 2>/dev/null || true)"
  [ -n "$BIN" ] || { [ -x /usr/bin/redis-server ] && BIN=/usr/bin/redis-server; } \
    || die "installed 'redis-server' but still cannot find the binary"
}

# ------------------------------------------------------------------- ports ---
port_in_use() {
  local p="$1"
  if command -v ss >/dev/null 2>&1; then
    [ -n "$(ss -Hltn "sport = :$p" 2>/dev/null)" ] && return 0
  fi
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
url_for() { printf 'redis://127.0.0.1:%s/0\n' "$1"; }

pid_alive() {
  local pid="$1" state
  [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] || return 1
  state="$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)"
  [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

server_pid() { cat "$PIDFILE" 2>/dev/null || true; }
saved_port() { cat "$PORTFILE" 2>/dev/null || true; }

# Answers PING on 127.0.0.1:$1 (pure bash, no redis-cli needed).
pings() {
  local line=""
  (
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf 'PING\r\n' >&3
    IFS= read -r -t 1 line <&3 || exit 1
    case "$line" in +PONG*) exit 0;; *) exit 1;; esac
  ) 2>/dev/null
}

# Answers PING on 127.0.0.1:$1 within $2 seconds; gives up early when the
# daemon wrote its pidfile and died (e.g. the port was taken).
wait_ready() {
  local port="$1" deadline=$(( SECONDS + ${2:-5} )) pid
  while :; do
    pings "$port" && return 0
    pid="$(server_pid)"
    if [ -n "$pid" ] && ! pid_alive "$pid"; then return 1; fi
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.05
  done
}

is_running() {
  [ -f "$BASE/$MARKER" ] || return 1
  pid_alive "$(server_pid)" || return 1
  local p; p="$(saved_port)"
  [ -n "$p" ] && pings "$p"
}

is_ours() { [ -f "$BASE/$MARKER" ]; }

wipe() {
  [ -e "$BASE" ] || return 0
  if is_ours || [ -z "$(ls -A "$BASE" 2>/dev/null)" ]; then
    rm -rf -- "$BASE"
  else
    die "'$BASE' exists but was not created by redis.sh (no $MARKER); refusing to delete it. Set KILN_REDIS_DIR elsewhere or remove it."
  fi
}

# Stop the server (if any) but keep $BASE.
kill_server() {
  local pid; pid="$(server_pid)"
  pid_alive "$pid" || { rm -f "$PIDFILE"; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$(( SECONDS + STOP_TIMEOUT ))
  while pid_alive "$pid"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "redis-server (pid $pid) ignored SIGTERM; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.1
      break
    fi
    sleep 0.02
  done
  rm -f "$PIDFILE"
}

# ------------------------------------------------------------------ start ---
start_server() { # port -> 0 if it answers PING
  local port="$1"
  rm -f "$PIDFILE"
  : >> "$LOGFILE"
  # fd 9 (the lock) is closed so the daemon does not inherit it.
  "$BIN" --port "$port" --bind 127.0.0.1 \
    --save '' --appendonly no \
    --daemonize yes --pidfile "$PIDFILE" --dir "$BASE" --logfile "$LOGFILE" \
    --loglevel warning </dev/null >>"$LOGFILE" 2>&1 9>&- || return 1
  wait_ready "$port" "$START_TIMEOUT"
}

lock() {
  mkdir -p "$(dirname "$BASE")"
  exec 9>"$BASE.lock"
  flock -w 30 9 || die "timed out waiting for lock $BASE.lock"
}

cmd_start() {
  resolve_bin
  lock
  if is_running; then
    log "already running in $BASE on port $(saved_port)"
    url_for "$(saved_port)"
    return 0
  fi
  # A dir left over from a killed run (or a half-made one): start afresh.
  if [ -e "$BASE" ]; then
    log "removing stale $BASE"
    is_ours && kill_server
    wipe
  fi
  mkdir -p "$BASE"
  touch "$BASE/$MARKER"

  local port="$FIRST_PORT" tries=0
  while :; do
    port="$(pick_port "$port")" || die "no free TCP port in $FIRST_PORT..$((FIRST_PORT + PORT_SCAN - 1))"
    if start_server "$port"; then break; fi
    kill_server
    tries=$((tries + 1))
    # Maybe someone grabbed the port between the check and the bind: retry.
    if [ "$tries" -lt 3 ] && grep -qi 'address already in use\|could not create server tcp' "$LOGFILE" 2>/dev/null; then
      log "port $port taken meanwhile, trying the next one"
      port=$((port + 1))
      continue
    fi
    tail -n 30 "$LOGFILE" >&2 || true
    die "redis-server failed to start (log: $LOGFILE)"
  done
  echo "$port" > "$PORTFILE"
  log "started $("$BIN" --version | sed -n 's/.*\(v=[^ ]*\).*/\1/p') in $BASE on 127.0.0.1:$port (pid $(server_pid))"
  url_for "$port"
}

cmd_restart() {
  local down="${1:-0}"
  case "$down" in ''|*[!0-9.]*) die "restart: DOWN_SECONDS must be a number, got '$down'";; esac
  resolve_bin
  local port; port="$(saved_port)"
  if ! is_ours || [ -z "$port" ]; then
    log "not running ($BASE): starting instead"
    cmd_start
    return
  fi
  lock
  kill_server
  log "stopped redis-server on port $port"
  [ "$down" = 0 ] || sleep "$down"
  local tries=0
  # The old listening socket is gone once the process has exited; retry briefly anyway.
  until start_server "$port"; do
    kill_server
    tries=$((tries + 1))
    [ "$tries" -lt 20 ] || { tail -n 30 "$LOGFILE" >&2 || true; die "could not restart redis-server on port $port (log: $LOGFILE)"; }
    sleep 0.1
  done
  log "restarted redis-server on 127.0.0.1:$port (pid $(server_pid))"
  url_for "$port"
}

cmd_stop() {
  if [ ! -e "$BASE" ]; then
    log "nothing to stop ($BASE does not exist)"
    rm -f "$BASE.lock"
    return 0
  fi
  is_ours || die "'$BASE' was not created by redis.sh (no $MARKER); not touching it"
  kill_server
  wipe
  rm -f "$BASE.lock"
  log "stopped and removed $BASE"
}

cmd_url() {
  is_running || die "not running ($BASE)"
  url_for "$(saved_port)"
}

cmd_status() {
  if is_running; then log "running in $BASE on port $(saved_port) (pid $(server_pid))"; return 0; fi
  log "not running ($BASE)"; return 1
}

case "${1:-}" in
  start)   cmd_start ;;
  restart) cmd_restart "${2:-0}" ;;
  stop)    cmd_stop ;;
  url)     cmd_url ;;
  status)  cmd_status ;;
  *) echo "usage: $0 start|restart [DOWN_SECONDS]|stop|url|status" >&2; exit 2 ;;
esac
