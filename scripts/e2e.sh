#!/usr/bin/env bash
# The end-to-end run of `make test`, on a fresh emulator of its own (port 4567, so a demo
# emulator on 4566 is left alone): the AWS-layer tests, then the whole pipeline with the
# real function: up → smoke → plan is clean → up again makes 0 mutating calls → down --purge →
# nothing of ours is left. The emulator is stopped whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."

export EMULATOR_PORT="${E2E_PORT:-4567}"
ENDPOINT="http://127.0.0.1:$EMULATOR_PORT"
export AWS_ENDPOINT_URL="$ENDPOINT"   # the deployer's override of the config's endpoint
export CSV_INGEST_TEST_ENDPOINT="$ENDPOINT"
# The shipped local config with a notification prefix, as config/aws.example.toml has one:
# smoke must upload under it (and the benchmark file goes there too).
mkdir -p .run
CONFIG=.run/e2e-local.toml
sed 's|^\[notification\]$|[notification]\nprefix = "incoming/"|' "${BASE_CONFIG:-config/local.toml}" >"$CONFIG"
grep -q '^prefix = "incoming/"' "$CONFIG" || { echo "e2e: could not add the prefix to $CONFIG" >&2; exit 1; }
PREFIX=incoming/
DEPLOYER=(cargo run -q -p deployer -- --config "$CONFIG")

step() { printf '\n== e2e: %s\n' "$*"; }
fail() { echo "e2e: FAILED: $*" >&2; exit 1; }

scripts/emulator.sh stop >/dev/null 2>&1 || true
trap 'scripts/emulator.sh stop' EXIT
scripts/emulator.sh start

step "AWS-layer tests against the emulator: convergence, drift, ownership, faults, catalog and queries"
cargo test -q -p deployer --test live --test faults --test catalog -- --ignored

step "the function's S3 store against the emulator: versions, preconditions, part copies"
AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 \
  cargo test -q -p function --test s3_store -- --ignored

step "pipeline tests with the real function: replays, versions out of order, long keys, 200 concurrent files"
CSV_INGEST_TEST_ARTIFACT="$PWD/target/lambda-x86_64/bootstrap/bootstrap.zip" \
  cargo test -q -p deployer --test pipeline -- --ignored --nocapture

if [ -n "${SKIP_ARM64:-}" ]; then
  step "the arm64 artifact under qemu-user: skipped (SKIP_ARM64 is set)"
else
  step "the arm64 artifact under qemu-user: a few files, outputs equal to deployer check"
  CSV_INGEST_TEST_ARTIFACT="$PWD/target/lambda-x86_64/bootstrap/bootstrap.zip" \
  CSV_INGEST_TEST_ARM64_ZIP="$PWD/target/lambda-arm64/bootstrap/bootstrap.zip" \
    cargo test -q -p deployer --test arm64 -- --ignored --nocapture
fi

step "up from empty"
"${DEPLOYER[@]}" up

step "smoke (default timeout) under the notification prefix: upload the sample, verify raw, refined and curated outputs (kept for the query)"
"${DEPLOYER[@]}" --output json smoke --keep >.run/e2e-smoke.json
python3 -c '
import json
key = json.load(open(".run/e2e-smoke.json"))["key"]
assert key.startswith("incoming/smoke/") and key.endswith(".csv"), key'
partition=$(python3 -c '
import json, re, sys
checks = json.load(open(".run/e2e-smoke.json"))["checks"]
found = [c["detail"] for c in checks if c["name"] == "cleaned output present"][0]
m = re.search(r"/refined/date=([0-9-]+)/hour=([0-9]+)/", found)
print(m.group(1) + "," + m.group(2))')
echo "smoke partition: $partition"

step "query --counts through Athena: exactly the smoke file, in its partition"
got=$("${DEPLOYER[@]}" --output csv query --counts | tr -d '\r')
want=$(printf 'date,hour,kind,n\n%s,clean,2\n%s,rejected,2' "$partition" "$partition")
echo "$got"
[ "$got" = "$want" ] || fail "query --counts gave:
$got
expected:
$want"

step "the 1,000,000-row benchmark file through the pipeline, counted by Athena"
cargo run -q -p shared --example gen_users -- 1000000 >.run/e2e-users-1m.csv
ingest=$(awk -F'"' '/^ingest/ {print $2}' "$CONFIG")
refined=$(awk -F'"' '/^refined/ {print $2}' "$CONFIG")
start=$(date +%s.%N)
curl -fsS -o /dev/null -T .run/e2e-users-1m.csv "$ENDPOINT/$ingest/${PREFIX}bench/users-1m.csv"
deadline=$(( $(date +%s) + 120 ))
# The rejected CSV is committed last: once it is listed, every output of the file exists.
until curl -fsS "$ENDPOINT/$refined?list-type=2&prefix=refined/" | grep -q "${PREFIX}bench/rejected/users-1m_rejected.csv"; do
  [ "$(date +%s)" -lt "$deadline" ] || fail "the benchmark file's outputs did not appear within 120 s"
  sleep 0.2
done
echo "upload start → all outputs: $(python3 -c "import time; print(round(time.time() - $start, 2))") s"
total=$("${DEPLOYER[@]}" --output json query --counts | python3 -c 'import json,sys; print(sum(int(r["n"]) for r in json.load(sys.stdin)))')
echo "rows across users and users_rejected: $total (the smoke file's 4 included)"
[ "$total" = 1000004 ] || fail "Athena counts $total rows, expected 1,000,000 + the smoke file's 4"
rm -f .run/e2e-users-1m.csv

step "plan right after up: no changes (exit 0)"
set +e; "${DEPLOYER[@]}" plan; code=$?; set -e
[ "$code" -eq 0 ] || fail "plan exited $code after up (0 expected)"

step "up again: zero mutating calls"
calls=$("${DEPLOYER[@]}" --output json up | python3 -c 'import json,sys; print(json.load(sys.stdin)["mutating_calls"])')
echo "mutating calls: $calls"
[ "$calls" = 0 ] || fail "a no-op up made $calls mutating calls"

step "down --purge"
"${DEPLOYER[@]}" down --purge

step "nothing of ours is left: every resource would be created again"
left=$("${DEPLOYER[@]}" --output json plan | python3 -c '
import json, sys
plan = json.load(sys.stdin)
print(" ".join(r["kind"] + ":" + r["name"] for r in plan["resources"] if r["action"] != "create"))' || true)
[ -z "$left" ] || fail "still there after down: $left"

echo
echo "e2e: all steps passed"
