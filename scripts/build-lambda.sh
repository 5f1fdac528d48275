#!/usr/bin/env bash
# Cross-compiles the function for each architecture given (arm64, x86_64) into
# target/lambda-<arch>/bootstrap/bootstrap.zip, then checks the zip with the deployer's own
# artifact check (executable `bootstrap`, right ELF architecture).
set -euo pipefail
cd "$(dirname "$0")/.."

export PATH="$PWD/.venv/bin:$PATH"
export XDG_CACHE_HOME="$PWD/.cache"
[ -x .venv/bin/cargo-lambda ] || { echo "build: cargo-lambda missing: run \`make setup\`" >&2; exit 1; }

archs=("$@")
[ ${#archs[@]} -gt 0 ] || archs=(arm64 x86_64)
for arch in "${archs[@]}"; do
  case "$arch" in
    arm64) flag=--arm64 ;;
    x86_64) flag=--x86-64 ;;
    *) echo "build: unknown architecture $arch (arm64 or x86_64)" >&2; exit 2 ;;
  esac
  dir="target/lambda-$arch"
  # A stale bootstrap beside a new zip would be re-zipped: start from an empty lambda dir.
  rm -rf "$dir"
  echo "build: function for $arch → $dir/bootstrap/bootstrap.zip"
  cargo lambda build --release "$flag" --output-format zip --lambda-dir "$dir" -p function --bin bootstrap
  cargo run -q -p deployer -- artifact "$dir/bootstrap/bootstrap.zip" --architecture "$arch"
done
