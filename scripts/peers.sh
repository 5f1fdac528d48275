#!/usr/bin/env bash
# The contract's job on the 1M-row benchmark file in `deployer check` (release), polars and
# DuckDB, one after the other in one run, so the comparison can be rerun by anyone:
#   scripts/peers.sh [ROWS]        (default 1000000; `make bench` runs it with BENCH_PEERS=1)
# Each is run BENCH_RUNS times (default 5); the best wall time is printed with its CPU time
# (user + system) and peak RSS, then the clean/rejected counts of each. polars and DuckDB are
# installed into .venv (pinned) only here: `make test` never needs them.
set -euo pipefail
cd "$(dirname "$0")/.."

ROWS="${1:-1000000}"
RUNS="${BENCH_RUNS:-5}"
PEERS_PINS=(polars==2.1.0 duckdb==2.0.1)
DATA=bench-data
OUT="$DATA/peers"
mkdir -p "$OUT"
PY=.venv/bin/python
[ -x "$PY" ] || python3 -m venv .venv
"$PY" -c 'import polars, duckdb' 2>/dev/null \
  || .venv/bin/pip install --quiet --disable-pip-version-check "${PEERS_PINS[@]}"

cargo build -q --release -p deployer
cargo build -q --release -p shared --example gen_users
FILE="$DATA/users-$((ROWS / 1000))k.csv"
[ "$ROWS" = 1000000 ] && FILE="$DATA/users-1m.csv"
[ -s "$FILE" ] || target/release/examples/gen_users "$ROWS" >"$FILE"

# best NAME CMD...: the fastest of RUNS runs under /usr/bin/time: "wall cpu rss_mib".
best() {
  local name=$1 line wall cpu rss best_line=""
  shift
  for _ in $(seq "$RUNS"); do
    /usr/bin/time -o "$OUT/time.txt" -f '%e %U %S %M' "$@" >/dev/null 2>&1
    line=$(tail -1 "$OUT/time.txt")
    read -r wall user sys rss <<<"$line"
    cpu=$(awk "BEGIN {printf \"%.2f\", $user + $sys}")
    rss=$(awk "BEGIN {printf \"%.0f\", $rss / 1024}")
    if [ -z "$best_line" ] || awk "BEGIN {exit !($wall < ${best_line%% *})}"; then
      best_line="$wall $cpu $rss"
    fi
  done
  read -r wall cpu rss <<<"$best_line"
  printf '%-28s %6.2f s wall %6.2f s CPU %6s MiB\n' "$name" "$wall" "$cpu" "$rss"
}

# rows FILE: data rows of a CSV output (no quoted line breaks in the benchmark file).
rows() { echo $(( $(wc -l <"$1") - 1 )); }

size=$(stat -c %s "$FILE")
echo "== the contract's job on $FILE ($((size / 1000000)) MB, $ROWS rows), best of $RUNS"
best "deployer check" target/release/deployer check "$FILE" --out "$OUT/check"
best "polars $("$PY" -c 'import polars; print(polars.__version__)') (lazy, streaming)" \
  "$PY" scripts/peers.py polars "$FILE" "$OUT"
best "duckdb $("$PY" -c 'import duckdb; print(duckdb.__version__)') (SQL)" \
  "$PY" scripts/peers.py duckdb "$FILE" "$OUT"
name=$(basename "$FILE" .csv)
echo "counts (clean, rejected): check $(rows "$OUT/check/${name}_cleaned.csv") $(rows "$OUT/check/rejected/${name}_rejected.csv")," \
  "polars $(rows "$OUT/polars_cleaned.csv") $(rows "$OUT/polars_rejected.csv")," \
  "duckdb $(rows "$OUT/duckdb_cleaned.csv") $(rows "$OUT/duckdb_rejected.csv")"
