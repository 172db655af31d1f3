#!/usr/bin/env bash
# The main job on built-in defaults: installs what is needed, builds, starts a
# cloud and an edge on loopback, runs the Fashion-MNIST test set through them
# and prints the summary; then the scheduler: every policy, its +fusion form
# and the oracles on test-split scene traces in virtual time, at 5-50% of
# always-offload's bytes, as a table and an accuracy-versus-budget curve. Extra arguments go to deepcut-edge
# (e.g. scripts/demo.sh --frames 2000 --rate 2b).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh run
scripts/build.sh
bin="${BUILD_DIR:-build}"
out="${DEMO_OUT:-out/demo}"
mkdir -p "$out"
ready="$out/cloud.endpoint"
rm -f "$ready"
"$bin/cloud/deepcut-cloud" --listen 'tcp://127.0.0.1:*' --model models/fmnist \
  --ready-file "$ready" --stats-interval-s 0 &
cloud_pid=$!
trap 'kill $cloud_pid 2>/dev/null || true; wait $cloud_pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do [[ -s "$ready" ]] && break; sleep 0.1; done
[[ -s "$ready" ]] || { echo "demo: the cloud did not start" >&2; exit 1; }
endpoint=$(head -1 "$ready")
echo "demo: cloud listening on $endpoint"
"$bin/edge/deepcut-edge" --cloud "$endpoint" --model models/fmnist \
  --source fashion-mnist:test --policy always \
  --out "$out/answers.jsonl" --summary "$out/summary.json" "$@"
echo "demo: per-frame answers in $out/answers.jsonl, summary in $out/summary.json"

echo "demo: the scheduler, replayed in virtual time: every policy at 5/10/25/50% of always-offload's"
echo "demo: bytes on ${DEMO_SEEDS:-3} test-split scene traces of 2000 frames over a 2 Mbit/s link"
echo "demo: (scripts/replay_eval.py; docs/replay.md runs it on 10 seeds and every network trace)"
/usr/bin/python3 scripts/replay_eval.py --bin-dir "$bin" --model models/fmnist --out "$out/replay" \
  --net-dir /nonexistent --frames 2000 --seeds "${DEMO_SEEDS:-3}" --budgets 5,10,25,50
echo "demo: accuracy-versus-budget curve in $out/replay/accuracy-vs-budget.png, table in $out/replay/summary.md"
