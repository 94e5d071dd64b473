#!/usr/bin/env bash
# Throwaway S3-compatible server for kiln's tests: versitygw with its posix
# backend (modelled on .ci/pg.sh and .ci/redis.sh).
#
#   .ci/s3.sh start   build versitygw if needed, start it if needed; prints ONE
#                     line on stdout, for eval:
#                       export KILN_TEST_S3_ENDPOINT=http://127.0.0.1:PORT KILN_TEST_S3_ACCESS_KEY=... KILN_TEST_S3_SECRET_KEY=...
#                     so  eval "$(.ci/s3.sh start)"  sets up the S3 tests.
#                     Idempotent: if the server in $KILN_S3_DIR is already
#                     running, it just prints the line again.
#   .ci/s3.sh env     print that line for the running server (exit 1 if not running)
#   .ci/s3.sh url     print the endpoint URL of the running server (exit 1 if not running)
#   .ci/s3.sh status  exit 0 if running, 1 otherwise (message on stderr)
#   .ci/s3.sh stop    stop the server and remove $KILN_S3_DIR (idempotent)
#   .ci/s3.sh build   only make sure the versitygw binary is built; prints its path
#
# Everything except those lines goes to stderr; the server log is $KILN_S3_DIR/versitygw.log.
# The server listens on 127.0.0.1 only, with fixed root credentials (test
# only!), and keeps its buckets as directories under $KILN_S3_DIR/data.
#
# versitygw is built from source once, with `go install`, into a persistent
# cache (about a minute and a half the first time; the binary is reused after,
# and rebuilt only when VGW_VERSION below changes).
#
# Environment:
#   KILN_S3_DIR      base dir of the server (default /tmp/kiln-s3)
#   KILN_S3_PORT     first port to try (default 57000); scans upward.
#   KILN_CACHE_DIR   persistent cache (default $HOME/.cache/kiln); the binary
#                    goes to $KILN_CACHE_DIR/bin/versitygw.
#   KILN_S3_BIN      path of a versitygw binary to use as is (never built).
set -euo pipefail

VGW_MODULE=github.com/versity/versitygw
VGW_VERSION=v1.8.0    # builds with Go 1.25+; bump here to rebuild the cached binary

BASE="${KILN_S3_DIR:-/tmp/kiln-s3}"
FIRST_PORT="${KILN_S3_PORT:-57000}"
CACHE="${KILN_CACHE_DIR:-${HOME:-/tmp}/.cache/kiln}"
ACCESS_KEY="kiln-test-access"            # fixed test credentials: never use
SECRET_KEY="kiln-test-secret-0123456789" # this server for anything but tests
HEALTH_PATH="/kiln-health"
START_TIMEOUT=10      # seconds to wait for the health endpoint
STOP_TIMEOUT=5        # seconds to wait for it to exit after SIGTERM
BUILD_LOCK_WAIT=900   # seconds to wait for another build of versitygw
PORT_SCAN=200         # how many ports to scan upward
MARKER=".kiln-s3"     # marks a dir as ours, so stop may delete it

log() { printf 's3.sh: %s\n' "$*" >&2; }
die() { printf 's3.sh: ERROR: %s\n' "$*" >&2; exit 1; }

# Make BASE absolute and refuse obviously dangerous values before any rm -rf.
ORIG_BASE="$BASE"
case "$BASE" in
  /*) ;;
  *) BASE="$(pwd)/$BASE" ;;
esac
BASE="${BASE%/}"
case "$BASE" in
  ''|/|/tmp|/root|/home|/usr|/var|/etc|/opt|/work) die "refusing to use KILN_S3_DIR='$ORIG_BASE' (too dangerous to rm -rf)";;
esac
DATA="$BASE/data"
PIDFILE="$BASE/versitygw.pid"
PORTFILE="$BASE/port"
LOGFILE="$BASE/versitygw.log"

# ----------------------------------------------------------------- binary ---
# Module version a binary was built from ("" if unknown).
binary_version() {
  command -v go >/dev/null 2>&1 || return 0
  go version -m "$1" 2>/dev/null | awk -v m="$VGW_MODULE" '$1 == "mod" && $2 == m { print $3; exit }'
}

BIN=""
resolve_bin() {
  if [ -n "${KILN_S3_BIN:-}" ]; then   # explicit choice: use it or fail, never build
    [ -x "$KILN_S3_BIN" ] || die "KILN_S3_BIN='$KILN_S3_BIN' is not executable"
    BIN="$KILN_S3_BIN"; return 0
  fi
  local dir="$CACHE/bin"
  BIN="$dir/versitygw"
  if [ -x "$BIN" ]; then
    local v; v="$(binary_version "$BIN")"
    if [ "$v" = "$VGW_VERSION" ]; then return 0; fi
    if ! command -v go >/dev/null 2>&1; then
      log "go not on PATH: using $BIN as is (cannot check it is $VGW_VERSION)"
      return 0
    fi
    log "$BIN is ${v:-of unknown version}, want $VGW_VERSION: rebuilding"
  fi
  command -v go >/dev/null 2>&1 || die "versitygw not built yet and go is not on PATH (or set KILN_S3_BIN)"
  mkdir -p "$dir"
  # One build at a time; whoever waited finds the binary done.
  exec 8>"$dir/.versitygw.lock"
  flock -w "$BUILD_LOCK_WAIT" 8 || die "timed out waiting for another build of versitygw ($dir/.versitygw.lock)"
  if [ -x "$BIN" ] && [ "$(binary_version "$BIN")" = "$VGW_VERSION" ]; then
    exec 8>&-; return 0
  fi
  local tmp start rc=0
  tmp="$(mktemp -d "$dir/.build.XXXXXX")"
  start=$SECONDS
  log "building versitygw $VGW_VERSION into $dir (first time only; takes a minute or two)..."
  # From an empty dir, outside any module or workspace.
  (cd "$tmp" && GOBIN="$tmp" GOWORK=off GOFLAGS=-buildvcs=false \
     go install "$VGW_MODULE/cmd/versitygw@$VGW_VERSION") </dev/null >"$tmp/build.log" 2>&1 || rc=$?
  if [ "$rc" -ne 0 ] || [ ! -x "$tmp/versitygw" ]; then
    tail -n 30 "$tmp/build.log" >&2 || true
    rm -rf -- "$tmp"
    die "go install $VGW_MODULE/cmd/versitygw@$VGW_VERSION failed (rc=$rc)"
  fi
  mv -f "$tmp/versitygw" "$BIN"
  rm -rf -- "$tmp"
  exec 8>&-
  log "built $BIN in $((SECONDS - start))s"
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
endpoint_for() { printf 'http://127.0.0.1:%s' "$1"; }
env_line() {
  printf 'export KILN_TEST_S3_ENDPOINT=%s KILN_TEST_S3_ACCESS_KEY=%s KILN_TEST_S3_SECRET_KEY=%s\n' \
    "$(endpoint_for "$1")" "$ACCESS_KEY" "$SECRET_KEY"
}

pid_alive() {
  local pid="$1" state
  [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] || return 1
  state="$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)"
  [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

server_pid() { cat "$PIDFILE" 2>/dev/null || true; }
saved_port() { cat "$PORTFILE" 2>/dev/null || true; }

# The pid is alive and is our versitygw (serving $DATA), not a recycled pid.
is_our_server() {
  local pid="$1"
  pid_alive "$pid" || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$DATA"
}

# The health endpoint on 127.0.0.1:$1 answers 200 (pure bash, no curl needed).
healthy() {
  local line=""
  (
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$HEALTH_PATH" >&3
    IFS= read -r -t 1 line <&3 || exit 1
    case "$line" in "HTTP/1."?" 200"*) exit 0;; *) exit 1;; esac
  ) 2>/dev/null
}

# Healthy on $1 within $2 seconds; gives up early when the server died.
wait_ready() {
  local port="$1" deadline=$(( SECONDS + ${2:-5} ))
  while :; do
    healthy "$port" && return 0
    pid_alive "$(server_pid)" || return 1
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.05
  done
}

is_running() {
  [ -f "$BASE/$MARKER" ] || return 1
  is_our_server "$(server_pid)" || return 1
  local p; p="$(saved_port)"
  [ -n "$p" ] && healthy "$p"
}

is_ours() { [ -f "$BASE/$MARKER" ]; }

wipe() {
  [ -e "$BASE" ] || return 0
  if is_ours || [ -z "$(ls -A "$BASE" 2>/dev/null)" ]; then
    rm -rf -- "$BASE"
  else
    die "'$BASE' exists but was not created by s3.sh (no $MARKER); refusing to delete it. Set KILN_S3_DIR elsewhere or remove it."
  fi
}

# Stop the server (if any) but keep $BASE.
kill_server() {
  local pid; pid="$(server_pid)"
  is_our_server "$pid" || { rm -f "$PIDFILE"; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$(( SECONDS + STOP_TIMEOUT ))
  while pid_alive "$pid"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "versitygw (pid $pid) ignored SIGTERM; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.1
      break
    fi
    sleep 0.02
  done
  rm -f "$PIDFILE"
}

# ------------------------------------------------------------------ start ---
USE_SIDECAR=0   # set when the filesystem has no user xattrs

start_server() { # port -> 0 if healthy
  local port="$1" meta=()
  [ "$USE_SIDECAR" -eq 1 ] && { mkdir -p "$BASE/meta"; meta=(--sidecar "$BASE/meta"); }
  rm -f "$PIDFILE"
  : >> "$LOGFILE"
  # Not a daemon: run it in the background in its own session (setsid does
  # not fork here, as a background child is no process group leader, so $!
  # is versitygw's pid). fd 8/9 (locks) are closed so it does not hold them.
  local launcher=()
  command -v setsid >/dev/null 2>&1 && launcher=(setsid)
  "${launcher[@]}" "$BIN" --access "$ACCESS_KEY" --secret "$SECRET_KEY" \
    --port "127.0.0.1:$port" --health "$HEALTH_PATH" --quiet \
    posix "${meta[@]}" "$DATA" </dev/null >>"$LOGFILE" 2>&1 8>&- 9>&- &
  echo $! > "$PIDFILE"
  wait_ready "$port" "$START_TIMEOUT"
}

lock() {
  mkdir -p "$(dirname "$BASE")"
  exec 9>"$BASE.lock"
  flock -w 60 9 || die "timed out waiting for lock $BASE.lock"
}

cmd_start() {
  resolve_bin
  lock
  if is_running; then
    log "already running in $BASE on port $(saved_port)"
    env_line "$(saved_port)"
    return 0
  fi
  # A dir left over from a killed run (or a half-made one): start afresh.
  if [ -e "$BASE" ]; then
    log "removing stale $BASE"
    is_ours && kill_server
    wipe
  fi
  mkdir -p "$DATA"
  touch "$BASE/$MARKER"

  local port="$FIRST_PORT" tries=0
  while :; do
    port="$(pick_port "$port")" || die "no free TCP port in $FIRST_PORT..$((FIRST_PORT + PORT_SCAN - 1))"
    if start_server "$port"; then break; fi
    kill_server
    tries=$((tries + 1))
    if [ "$tries" -lt 4 ] && [ "$USE_SIDECAR" -eq 0 ] && grep -qi 'xattr' "$LOGFILE" 2>/dev/null; then
      log "no user xattrs on the filesystem of $DATA: keeping metadata in a sidecar dir instead"
      USE_SIDECAR=1
      continue
    fi
    # Maybe someone grabbed the port between the check and the bind: retry.
    if [ "$tries" -lt 4 ] && grep -qi 'address already in use' "$LOGFILE" 2>/dev/null; then
      log "port $port taken meanwhile, trying the next one"
      : > "$LOGFILE"
      port=$((port + 1))
      continue
    fi
    tail -n 30 "$LOGFILE" >&2 || true
    die "versitygw failed to start (log: $LOGFILE)"
  done
  echo "$port" > "$PORTFILE"
  log "started versitygw $VGW_VERSION (posix backend, $DATA) on $(endpoint_for "$port") (pid $(server_pid))"
  env_line "$port"
}

cmd_stop() {
  if [ ! -e "$BASE" ]; then
    log "nothing to stop ($BASE does not exist)"
    rm -f "$BASE.lock"
    return 0
  fi
  is_ours || die "'$BASE' was not created by s3.sh (no $MARKER); not touching it"
  kill_server
  wipe
  rm -f "$BASE.lock"
  log "stopped and removed $BASE"
}

cmd_env() {
  is_running || die "not running ($BASE)"
  env_line "$(saved_port)"
}

cmd_url() {
  is_running || die "not running ($BASE)"
  endpoint_for "$(saved_port)"; echo
}

cmd_status() {
  if is_running; then log "running in $BASE on port $(saved_port) (pid $(server_pid))"; return 0; fi
  log "not running ($BASE)"; return 1
}

cmd_build() {
  resolve_bin
  echo "$BIN"
}

case "${1:-}" in
  start)  cmd_start ;;
  stop)   cmd_stop ;;
  env)    cmd_env ;;
  url)    cmd_url ;;
  status) cmd_status ;;
  build)  cmd_build ;;
  *) echo "usage: $0 start|stop|env|url|status|build" >&2; exit 2 ;;
esac
