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
CONFIG="${CONFIG:-config/local.toml}"
DEPLOYER=(cargo run -q -p deployer -- --config "$CONFIG")

step() { printf '\n== e2e: %s\n' "$*"; }
fail() { echo "e2e: FAILED: $*" >&2; exit 1; }

scripts/emulator.sh stop >/dev/null 2>&1 || true
trap 'scripts/emulator.sh stop' EXIT
scripts/emulator.sh start

step "AWS-layer tests against the emulator: convergence, drift, ownership, faults, catalog and queries"
cargo test -q -p deployer --test live --test faults --test catalog -- --ignored

step "pipeline tests with the real function: replays, 200 concurrent files"
CSV_INGEST_TEST_ARTIFACT="$PWD/target/lambda-x86_64/bootstrap/bootstrap.zip" \
  cargo test -q -p deployer --test pipeline -- --ignored --nocapture

step "up from empty"
"${DEPLOYER[@]}" up

step "smoke: upload the sample, verify raw and refined outputs"
"${DEPLOYER[@]}" smoke --timeout 60s

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
