#!/usr/bin/env bash
# Runs every cargo-fuzz target for SECONDS each (default 60), one at a time,
# then prints how many inputs each ran and whether it found a crash.
#
#   fuzz/run.sh [seconds]
#
# Installs cargo-fuzz (and a nightly toolchain) when missing. Corpora grow in
# fuzz/corpus/<target>/ (seeded from tests/support/gen_patterns.py the first
# time), crashes land in fuzz/artifacts/<target>/, logs in fuzz/target/logs/.
set -euo pipefail

seconds=${1:-60}
[[ $seconds =~ ^[0-9]+$ ]] || { echo "usage: $0 [seconds]" >&2; exit 2; }
cd "$(dirname "$0")"
export PATH="$HOME/.cargo/bin:$PATH"

rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz

targets=(canonical json_validate args idset)
mkdir -p target/logs

# Seed the JSON targets with generated patterns (each one file).
for target in canonical json_validate; do
  dir=corpus/$target
  if [[ ! -d $dir ]] || [[ -z $(ls -A "$dir") ]]; then
    mkdir -p "$dir"
    if command -v python3 >/dev/null; then
      python3 ../tests/support/gen_patterns.py --seed 1 --count 500 | python3 -c '
import hashlib, json, os, sys
for line in sys.stdin:
    text = bytes.fromhex(json.loads(line)["text_hex"])
    if len(text) <= 4096:
        with open(os.path.join(sys.argv[1], hashlib.sha1(text).hexdigest()), "wb") as f:
            f.write(text)
' "$dir"
    fi
  fi
done

cargo +nightly fuzz build

status=0
summary=()
for target in "${targets[@]}"; do
  options=(-max_total_time="$seconds" -print_final_stats=1)
  [[ $target == args || $target == idset ]] || options+=(-dict=dicts/json.dict)
  log=target/logs/$target.log
  echo "== $target: ${seconds}s"
  if cargo +nightly fuzz run "$target" -- "${options[@]}" >"$log" 2>&1; then
    result=ok
  else
    result="CRASH (see $log and artifacts/$target/)"
    status=1
  fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)
  summary+=("$(printf '%-14s %12s runs  %s' "$target" "${runs:-?}" "$result")")
  tail -n 3 "$log"
done

echo
printf '%s\n' "${summary[@]}"
exit $status
