#!/usr/bin/env bash
# Benchmarks, reproducible on this machine kind (figures go in the README):
#   scripts/bench.sh check      `deployer check` (CSV, then `--format parquet`) on generated 1M- and 10M-row files: wall time, peak RSS, size ratio
#   scripts/bench.sh deploy     fresh `up`, `plan`, no-op `up`, `down --purge` against ministack: time, peak RSS
#   scripts/bench.sh pipeline   a 1M-row file through the local pipeline: upload start → both outputs, function peak RSS
#   scripts/bench.sh function   the real handler over a generated 1 GiB object (30 ms per upload call): peak RSS, throughput
#   scripts/bench.sh budget     the handler's CPU seconds per GiB (in-memory input and store, no latency), also with arm64's code paths: shared::budget's source
#   scripts/bench.sh bigfile    a 20M-row (~1.8 GB) file through the local pipeline as shipped: first attempt, time, function peak RSS
#   scripts/bench.sh            check, deploy, pipeline, function, budget (bigfile only when asked: ~3 min, several GB of RAM)
#   BENCH_PEERS=1 scripts/bench.sh check   also the same job in polars and DuckDB (scripts/peers.sh, installs them in .venv)
# Release builds; generated data under bench-data/ (ignored by git). Needs `make setup`
# (and the x86_64 function zip for deploy/pipeline: `make build-local`).
set -euo pipefail
cd "$(dirname "$0")/.."

DATA=bench-data
mkdir -p "$DATA"
DEPLOYER=target/release/deployer
RUNS="${BENCH_RUNS:-5}"

build() {
  cargo build -q --release -p deployer
  cargo build -q --release -p shared --example gen_users
}

# generate ROWS FILE: deterministic users file, ~10% bad rows.
generate() {
  [ -s "$2" ] || target/release/examples/gen_users "$1" >"$2"
}

# peak KROWS: run a command under /usr/bin/time -v; print "wall_s max_rss_mib".
measure() {
  local out
  out=$( { /usr/bin/time -v "$@" >/dev/null; } 2>&1 )
  local wall rss
  wall=$(grep 'Elapsed (wall clock)' <<<"$out" | awk '{print $NF}' | awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }')
  rss=$(grep 'Maximum resident set size' <<<"$out" | awk '{printf "%.1f", $NF/1024}')
  echo "$wall $rss"
}

bench_check() {
  echo "== check: deployer check (release), reader thread + one worker per core (2 here)"
  generate 1000000 "$DATA/users-1m.csv"
  generate 10000000 "$DATA/users-10m.csv"
  for f in "$DATA/users-1m.csv" "$DATA/users-10m.csv"; do
    local size
    size=$(stat -c %s "$f")
    echo "-- $f ($((size / 1000000)) MB)"
    "$DEPLOYER" check "$f" --out "$DATA/out" --output json
    echo
    read -r wall rss < <(measure "$DEPLOYER" check "$f" --out "$DATA/out" --output json)
    echo "one run under /usr/bin/time -v: wall ${wall}s, peak RSS ${rss} MiB"
    read -r wall rss < <(measure "$DEPLOYER" check "$f" --out "$DATA/out-parquet" --format parquet --output json)
    echo "--format parquet, one run under /usr/bin/time -v: wall ${wall}s, peak RSS ${rss} MiB"
  done
  local stem csv parquet
  stem=$(basename "$DATA/users-1m.csv" .csv)
  csv=$(( $(stat -c %s "$DATA/out/${stem}_cleaned.csv") + $(stat -c %s "$DATA/out/rejected/${stem}_rejected.csv") ))
  parquet=$(( $(stat -c %s "$DATA/out-parquet/$stem.parquet") + $(stat -c %s "$DATA/out-parquet/rejected/${stem}_rejected.parquet") ))
  echo "1M rows: parquet outputs ${parquet} bytes, csv outputs ${csv} bytes, ratio $(awk "BEGIN {printf \"%.3f\", $parquet / $csv}")"
  # Into a fresh directory (the kernel's freeing of replaced outputs' pages is not check's work;
  # replacing them is timed too, as a user re-running check sees it), and the outputs' digests,
  # which the speed work must not change.
  hyperfine --warmup 2 --runs "$((RUNS * 3))" --style basic --prepare "rm -rf $DATA/out-fresh" \
    "$DEPLOYER check $DATA/users-1m.csv --out $DATA/out-fresh --output json"
  hyperfine --warmup 1 --runs "$RUNS" --style basic \
    "$DEPLOYER check $DATA/users-1m.csv --out $DATA/out --output json" \
    "$DEPLOYER check $DATA/users-1m.csv --out $DATA/out-parquet --format parquet --output json"
  (cd "$DATA" && sha256sum "out/${stem}_cleaned.csv" "out/rejected/${stem}_rejected.csv" \
    "out-parquet/$stem.parquet" "out-parquet/rejected/${stem}_rejected.parquet")
  if [ -n "${BENCH_PEERS:-}" ]; then scripts/peers.sh; fi
}

with_emulator() {
  export EMULATOR_PORT="${BENCH_PORT:-4568}"
  export AWS_ENDPOINT_URL="http://127.0.0.1:$EMULATOR_PORT"
  scripts/emulator.sh stop >/dev/null 2>&1 || true
  trap 'scripts/emulator.sh stop >/dev/null' EXIT
  scripts/emulator.sh start >/dev/null
}

bench_deploy() {
  echo "== deploy: the deployer (release) against ministack; $RUNS fresh up/down cycles"
  with_emulator
  local cfg=config/local.toml
  for i in $(seq "$RUNS"); do
    read -r up_w up_rss < <(measure "$DEPLOYER" --config $cfg up)
    read -r plan_w plan_rss < <(measure "$DEPLOYER" --config $cfg plan)
    read -r noop_w noop_rss < <(measure "$DEPLOYER" --config $cfg up)
    read -r down_w down_rss < <(measure "$DEPLOYER" --config $cfg down --purge)
    echo "run $i: fresh up ${up_w}s (${up_rss} MiB) · plan ${plan_w}s (${plan_rss} MiB) · no-op up ${noop_w}s (${noop_rss} MiB) · down --purge ${down_w}s (${down_rss} MiB)"
  done
  "$DEPLOYER" --config $cfg up >/dev/null
  hyperfine --warmup 1 --runs "$RUNS" --style basic -i "$DEPLOYER --config $cfg plan" "$DEPLOYER --config $cfg up"
  "$DEPLOYER" --config $cfg down --purge >/dev/null
}

# now_s: seconds since the epoch with milliseconds.
now_s() { date +%s.%N; }

bench_pipeline() {
  echo "== pipeline: 1M-row file uploaded to the local pipeline; time from upload start to all four outputs"
  generate 1000000 "$DATA/users-1m.csv"
  with_emulator
  local cfg=config/local.toml ep="$AWS_ENDPOINT_URL"
  "$DEPLOYER" --config $cfg up >/dev/null
  "$DEPLOYER" --config $cfg smoke >/dev/null   # warm the function
  local refined ingest
  ingest=$(awk -F'"' '/^ingest/ {print $2}' $cfg)
  refined=$(awk -F'"' '/^refined/ {print $2}' $cfg)
  local size
  size=$(stat -c %s "$DATA/users-1m.csv")
  for i in $(seq 3); do
    local key="bench/run-$i-$$/users.csv"
    local start end upload_done
    start=$(now_s)
    curl -fsS -o /dev/null -T "$DATA/users-1m.csv" "$ep/$ingest/$key"
    upload_done=$(now_s)
    local deadline=$(( $(date +%s) + 120 )) found=""
    until [ -n "$found" ]; do
      local listing
      listing=$(curl -fsS "$ep/$refined?list-type=2&prefix=" | tr '<' '\n' | grep '^Key>' | sed 's/^Key>//' || true)
      if grep -q "bench/run-$i-$$/users_cleaned.csv" <<<"$listing" && grep -q "bench/run-$i-$$/rejected/users_rejected.csv" <<<"$listing" \
        && grep -q "curated/users/.*/bench/run-$i-$$/users.parquet" <<<"$listing" && grep -q "curated/users_rejected/.*/bench/run-$i-$$/users.parquet" <<<"$listing"; then
        found=yes
      elif [ "$(date +%s)" -ge "$deadline" ]; then
        echo "pipeline: outputs of $key not there after 120 s" >&2; exit 1
      else
        sleep 0.02
      fi
    done
    end=$(now_s)
    echo "run $i: $((size / 1000000)) MB upload $(awk "BEGIN{printf \"%.2f\", $upload_done-$start}") s, upload start → all four outputs $(awk "BEGIN{printf \"%.2f\", $end-$start}") s"
  done
  local pid
  pid=$(pgrep -f "ministack-provided-code-$EMULATOR_PORT/.*/bootstrap" | head -n 1 || true)
  if [ -n "$pid" ]; then
    echo "function process $pid: peak RSS $(awk '/VmHWM/ {printf "%.1f MiB", $2/1024}' /proc/"$pid"/status) (VmHWM over all its invocations)"
  fi
  "$DEPLOYER" --config $cfg down --purge >/dev/null
}

bench_function() {
  echo "== function: the handler over a generated 1 GiB object, 5 MiB parts, 30 ms per upload call (Lambda memory target 128 MiB)"
  cargo build -q --release -p function --example flat_memory
  for parquet in on off; do
    echo "-- Parquet outputs $parquet"
    read -r wall rss < <(measure target/release/examples/flat_memory --size-mb 1024 --latency-ms 30 --parquet "$parquet")
    echo "wall ${wall}s, peak RSS ${rss} MiB, $(awk "BEGIN{printf \"%.0f\", 1024 / $wall}") MiB/s"
  done
}

bench_budget() {
  echo "== budget: CPU seconds per GiB of the handler's processing (512 MiB preloaded, no latency), Parquet on and off"
  cargo build -q --release -p function --example flat_memory
  for parquet in on off; do
    for i in 1 2 3; do
      echo "parquet $parquet, run $i: $(target/release/examples/flat_memory --size-mb 512 --latency-ms 0 --parquet "$parquet" --preload | grep '^cpu')"
    done
  done
  # The same over benchmark-file rows (names repeat, instants all differ, 10% rejected).
  generate 6000000 "$DATA/users-6m.csv"
  for parquet in on off; do
    for i in 1 2 3; do
      echo "users-6m.csv, parquet $parquet, run $i: $(target/release/examples/flat_memory --latency-ms 0 --parquet "$parquet" --input "$DATA/users-6m.csv" | grep '^cpu')"
    done
  done
  # The code paths the arm64 function runs (SWAR splitter, byte-loop emails: no SSE2), built
  # apart (the flag rebuilds every crate): what shared::budget's figures come from.
  echo "== budget, arm64's code paths (RUSTFLAGS=--cfg csv_ingest_portable, target/portable)"
  RUSTFLAGS="--cfg csv_ingest_portable" CARGO_TARGET_DIR=target/portable \
    cargo build -q --release -p function --example flat_memory
  for parquet in on off; do
    for i in 1 2 3; do
      echo "users-6m.csv, arm64 paths, parquet $parquet, run $i: $(target/portable/release/examples/flat_memory --latency-ms 0 --parquet "$parquet" --input "$DATA/users-6m.csv" | grep '^cpu')"
    done
  done
}

bench_bigfile() {
  echo "== bigfile: a 20,000,000-row file through the local pipeline (config/local.toml as shipped)"
  generate 20000000 "$DATA/users-20m.csv"
  with_emulator
  local cfg=config/local.toml ep="$AWS_ENDPOINT_URL"
  "$DEPLOYER" --config $cfg up >/dev/null
  local ingest raw refined size key="bench/big-$$/users-20m.csv"
  ingest=$(awk -F'"' '/^ingest/ {print $2}' $cfg)
  raw=$(awk -F'"' '/^raw/ {print $2}' $cfg)
  refined=$(awk -F'"' '/^refined/ {print $2}' $cfg)
  size=$(stat -c %s "$DATA/users-20m.csv")
  "$DEPLOYER" --config $cfg plan | grep '^Largest file'
  local start upload_done end
  start=$(now_s)
  curl -fsS -o /dev/null -T "$DATA/users-20m.csv" "$ep/$ingest/$key"
  upload_done=$(now_s)
  local deadline=$(( $(date +%s) + 900 ))
  until curl -fsS "$ep/$refined?list-type=2&prefix=refined/" | grep -q "bench/big-$$/rejected/users-20m_rejected.csv"; do
    [ "$(date +%s)" -lt "$deadline" ] || { echo "bigfile: outputs not there after 900 s" >&2; exit 1; }
    sleep 1
  done
  end=$(now_s)
  # Every attempt makes a raw copy, a new version of the raw key: one version, one attempt.
  local attempts
  attempts=$(curl -fsS "$ep/$raw?versions&prefix=bench/big-$$/" | grep -o '<Version>' | wc -l)
  echo "$((size / 1000000)) MB: upload $(awk "BEGIN{printf \"%.1f\", $upload_done-$start}") s, upload start → all outputs $(awk "BEGIN{printf \"%.1f\", $end-$start}") s, processing attempts (raw versions): $attempts"
  local pid
  pid=$(pgrep -f "ministack-provided-code-$EMULATOR_PORT/.*/bootstrap" | head -n 1 || true)
  if [ -n "$pid" ]; then
    echo "function process $pid: peak RSS $(awk '/VmHWM/ {printf "%.1f MiB", $2/1024}' /proc/"$pid"/status)"
  fi
  "$DEPLOYER" --config $cfg down --purge >/dev/null
}

build
case "${1:-all}" in
  check) bench_check ;;
  deploy) bench_deploy ;;
  pipeline) bench_pipeline ;;
  function) bench_function ;;
  budget) bench_budget ;;
  bigfile) bench_bigfile ;;
  all) bench_check; bench_deploy; (bench_pipeline); bench_function; bench_budget ;;
  *) echo "usage: $0 [check|deploy|pipeline|function|budget|bigfile]" >&2; exit 2 ;;
esac
