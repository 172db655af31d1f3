#!/usr/bin/env bash
# The benchmark suite: micro benchmarks (Google Benchmark) and the three ratios
# (edge overhead, cloud efficiency, loopback round trip), written to
#   out/bench/report.json   everything, machine-readable
#   out/bench/summary.md    the short readable summary
# Options: BENCH_OUT=DIR, BENCH_QUICK=1 (a smoke run: tiny sizes, numbers meaningless).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh run
scripts/build.sh >/dev/null
bin="${BUILD_DIR:-build}"
out="${BENCH_OUT:-out/bench}"
mkdir -p "$out"
if [[ "${BENCH_QUICK:-0}" == 1 ]]; then
  micro_args=(--benchmark_min_time=0.01 --benchmark_filter='CodecEncode/3|MsgpackDecodeRequest|BM_Head|Tail/1$|SchedulerDecision/1')
  ratio_args=(--frames 100 --rounds 1 --seconds 0.3 --rtt-requests 50)
else
  micro_args=(--benchmark_min_time=0.3)
  ratio_args=(--frames 2000 --rounds 3 --seconds 3 --rtt-requests 3000)
fi
echo "bench: micro benchmarks (codec, msgpack, inference, scheduler) ..." >&2
"$bin/bench/deepcut_micro_bench" "${micro_args[@]}" --benchmark_format=console \
  --benchmark_out="$out/micro.json.tmp" --benchmark_out_format=json >&2
mv "$out/micro.json.tmp" "$out/micro.json"
echo "bench: ratios (edge overhead, recording and harvesting overhead, cloud efficiency, loopback round trip) ..." >&2
"$bin/bench/deepcut_ratio_bench" --cloud-bin "$bin/cloud/deepcut-cloud" --model models/fmnist \
  "${ratio_args[@]}" > "$out/ratios.json.tmp"
mv "$out/ratios.json.tmp" "$out/ratios.json"
/usr/bin/python3 scripts/bench_report.py "$out/micro.json" "$out/ratios.json" "$out"
