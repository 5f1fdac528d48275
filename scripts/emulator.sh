#!/usr/bin/env bash
# Starts, stops or checks the local ministack emulator on 127.0.0.1:$PORT, in its own process group.
#   scripts/emulator.sh start   # reuses a healthy emulator; waits for /_ministack/health
#   scripts/emulator.sh stop    # kills the whole process group (function workers included)
#   scripts/emulator.sh status
set -euo pipefail
cd "$(dirname "$0")/.."

PORT="${EMULATOR_PORT:-4566}"
RUN_DIR=".run"
PID_FILE="$RUN_DIR/ministack-$PORT.pid"
LOG_FILE="$RUN_DIR/ministack-$PORT.log"
HEALTH="http://127.0.0.1:$PORT/_ministack/health"
DEADLINE_S="${EMULATOR_DEADLINE_S:-30}"

healthy() { curl -fsS --max-time 2 "$HEALTH" >/dev/null 2>&1; }
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }
our_pid() { [ -f "$PID_FILE" ] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null && cat "$PID_FILE"; }

start() {
  if healthy; then
    echo "emulator: reusing the healthy ministack on 127.0.0.1:$PORT"
    return 0
  fi
  if port_busy; then
    echo "emulator: port $PORT is taken by something that is not a healthy ministack; stop it or set EMULATOR_PORT" >&2
    exit 1
  fi
  [ -x .venv/bin/ministack ] || { echo "emulator: .venv/bin/ministack missing: run \`make setup\`" >&2; exit 1; }
  # Without duckdb, ministack's Athena silently answers every query with a canned row; with
  # ATHENA_ENGINE=duckdb and no duckdb every query would fail. Refuse to start instead.
  local engine="${ATHENA_ENGINE:-duckdb}"
  if [ "$engine" = duckdb ] && ! .venv/bin/python -c 'import duckdb' 2>/dev/null; then
    echo "emulator: ATHENA_ENGINE=duckdb but duckdb is not installed in .venv: run \`make setup\` (it pins duckdb)" >&2
    exit 1
  fi
  mkdir -p "$RUN_DIR"
  # setsid: a new session and process group, so stop can kill function workers with it.
  # The concurrency cap is AWS's default account limit: ministack derives a much lower one from
  # the machine's memory and, unlike AWS, spends retry attempts on throttled async events.
  BIND_HOST=127.0.0.1 GATEWAY_PORT="$PORT" AWS_ENDPOINT_URL="http://127.0.0.1:$PORT" \
    ATHENA_ENGINE="$engine" \
    LAMBDA_ACCOUNT_CONCURRENCY="${LAMBDA_ACCOUNT_CONCURRENCY:-1000}" \
    setsid .venv/bin/ministack >"$LOG_FILE" 2>&1 < /dev/null &
  echo $! >"$PID_FILE"
  local waited=0
  until healthy; do
    if ! kill -0 "$(cat "$PID_FILE")" 2>/dev/null; then
      echo "emulator: ministack exited during start-up; last lines of $LOG_FILE:" >&2
      tail -n 20 "$LOG_FILE" >&2
      exit 1
    fi
    if [ "$waited" -ge $((DEADLINE_S * 10)) ]; then
      echo "emulator: not healthy after ${DEADLINE_S}s (see $LOG_FILE)" >&2
      stop
      exit 1
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
  echo "emulator: ministack healthy on http://127.0.0.1:$PORT (pid $(cat "$PID_FILE"), log $LOG_FILE)"
}

stop() {
  local pid
  if pid=$(our_pid); then
    # The PID is the session leader: its process group holds every worker it started.
    kill -TERM -- "-$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
    echo "emulator: stopped (pid $pid)"
  else
    echo "emulator: not running (no live pid in $PID_FILE)"
  fi
  rm -f "$PID_FILE"
}

status() {
  if healthy; then echo "emulator: healthy on 127.0.0.1:$PORT"; else echo "emulator: not running on 127.0.0.1:$PORT"; exit 1; fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
