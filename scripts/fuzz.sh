#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/, docs/fuzzing.md) with clang, AddressSanitizer
# and UndefinedBehaviorSanitizer, and runs each for a bounded time.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]     default 300
#
# Environment:
#   FUZZ_OUT      report folder: fuzz-report.json, one log per target, crashing inputs
#                 (default: $BUILD_DIR/report)
#   FUZZ_TARGETS  space-separated subset of: protocol mahimahi frame_trace manifest cloud
#   BUILD_DIR     build folder (default: build-fuzz)
#
# The seed corpus in fuzz/corpus/<target>/ is only read: what a run adds goes to a
# temporary folder, removed at the end, so the repo's corpus stays small. A target
# stops at its first crash; its input is copied to $FUZZ_OUT/crashes/<target>/.
# Exit status: 0 no crash, 1 a crash (or a fuzzer that failed), 2 build or usage error.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-300}"
if [[ ! "$seconds" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: $0 [SECONDS_PER_TARGET]   (default 300)" >&2
  exit 2
fi
build="${BUILD_DIR:-build-fuzz}"
out="${FUZZ_OUT:-$build/report}"
read -r -a targets <<<"${FUZZ_TARGETS:-protocol mahimahi frame_trace manifest cloud}"
for t in "${targets[@]}"; do
  if [[ ! -d "fuzz/corpus/$t" ]]; then
    echo "fuzz: unknown target '$t' (no fuzz/corpus/$t)" >&2
    exit 2
  fi
done

bash scripts/install-deps.sh fuzz
mkdir -p "$out"
out="$(cd "$out" && pwd)"
echo "fuzz: building ${targets[*]} in $build (clang, -fsanitize=fuzzer,address,undefined)"
if ! { nice -n 10 cmake -S . -B "$build" -DCMAKE_CXX_COMPILER=clang++ -DDEEPCUT_BUILD_FUZZ=ON \
         -DDEEPCUT_BUILD_TESTS=OFF -DDEEPCUT_BUILD_BENCH=OFF &&
       nice -n 10 cmake --build "$build" -j"$(nproc)" \
         --target "${targets[@]/#/fuzz_}"; } >"$out/build.log" 2>&1; then
  tail -30 "$out/build.log" >&2
  echo "fuzz: build failed (log: $out/build.log)" >&2
  exit 2
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/deepcut-fuzz.XXXXXX")"
pid=""
cleanup() {
  [[ -n "$pid" ]] && kill "$pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The last value libFuzzer printed for stat::NAME in LOG, or 0.
fuzz_stat() { grep -o "stat::$1: *[0-9]*" "$2" | grep -o '[0-9]*$' | tail -1 || echo 0; }

failed=0
rows=()
json_targets=()
for t in "${targets[@]}"; do
  corpus="$work/$t/corpus" artifacts="$work/$t/artifacts" log="$out/$t.log"
  mkdir -p "$corpus" "$artifacts"
  rm -rf "$out/crashes/$t"
  dict=()
  [[ -f "fuzz/dict/$t.dict" ]] && dict=("-dict=fuzz/dict/$t.dict")
  echo "fuzz: $t: running for ${seconds}s (log: $log)"
  start=$(date +%s)
  nice -n 10 "$build/fuzz/fuzz_$t" -max_total_time="$seconds" -print_final_stats=1 \
    -rss_limit_mb=2048 -timeout=30 -artifact_prefix="$artifacts/" "${dict[@]}" \
    "$corpus" "fuzz/corpus/$t" >"$log" 2>&1 &
  pid=$!
  next_report=$((start + 60))
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    if (($(date +%s) >= next_report)); then
      last=$(grep -E '^#[0-9]+' "$log" | tail -1 | cut -c1-100 || true)
      echo "fuzz: $t: $((next_report - start))/${seconds}s ${last}"
      next_report=$((next_report + 60))
    fi
  done
  rc=0
  wait "$pid" || rc=$?
  pid=""
  elapsed=$(($(date +%s) - start))
  execs=$(fuzz_stat number_of_executed_units "$log")
  rate=$(fuzz_stat average_exec_per_sec "$log")
  added=$(fuzz_stat new_units_added "$log")
  crash_files=()
  for f in "$artifacts"/*; do
    [[ -f "$f" ]] || continue
    mkdir -p "$out/crashes/$t"
    cp "$f" "$out/crashes/$t/"
    crash_files+=("$out/crashes/$t/$(basename "$f")")
  done
  crashes=${#crash_files[@]}
  echo "fuzz: $t: ${elapsed}s, ${execs} executions (${rate}/s), ${added} new inputs, ${crashes} crashes"
  if ((crashes > 0)); then
    failed=1
    grep -E '^(==[0-9]+==ERROR|SUMMARY|fuzz property violated|.*runtime error)' "$log" | head -5 |
      sed 's/^/    /'
    for f in "${crash_files[@]}"; do
      echo "fuzz: $t: CRASH input kept at $f"
      echo "      reproduce: $build/fuzz/fuzz_$t $f"
    done
  elif ((rc != 0)); then
    failed=1
    echo "fuzz: $t: the fuzzer exited with $rc without a crash input; see $log"
  fi
  rows+=("$(printf '  %-12s %8s %13s %9s %8s' "$t" "$elapsed" "$execs" "$rate" "$crashes")")
  files_json=""
  for f in "${crash_files[@]}"; do files_json+="${files_json:+, }\"$f\""; done
  json_targets+=("$(printf '    "%s": {"seconds": %d, "executions": %d, "execs_per_second": %d, "new_inputs": %d, "crashes": %d, "crash_inputs": [%s], "exit_code": %d}' \
    "$t" "$elapsed" "$execs" "$rate" "$added" "$crashes" "$files_json" "$rc")")
done

{
  echo "{"
  echo "  \"seconds_per_target\": $seconds,"
  echo "  \"sanitizers\": \"fuzzer,address,undefined\","
  echo "  \"targets\": {"
  for i in "${!json_targets[@]}"; do
    sep=","
    ((i == ${#json_targets[@]} - 1)) && sep=""
    echo "${json_targets[$i]}$sep"
  done
  echo "  }"
  echo "}"
} >"$out/fuzz-report.json"

echo "fuzz: summary"
printf '  %-12s %8s %13s %9s %8s\n' target seconds executions exec/s crashes
printf '%s\n' "${rows[@]}"
echo "fuzz: wrote $out/fuzz-report.json"
if ((failed)); then
  echo "fuzz: FAILED: crashes found (inputs under $out/crashes/)" >&2
  exit 1
fi
