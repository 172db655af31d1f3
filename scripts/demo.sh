#!/usr/bin/env bash
# The main job on built-in defaults: installs what is needed, builds, starts a
# cloud and an edge on loopback, runs the Fashion-MNIST test set through them
# and prints the summary; then the scheduler: every policy and the offline
# oracle side by side on a scene trace, in virtual time, at a quarter of
# always-offload's bytes. Extra arguments go to deepcut-edge
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

echo "demo: the scheduler, replayed: a 3000-frame scene trace over a 2 Mbit/s link, budget 25%"
"$bin/trace/deepcut-trace" make --dataset fashion-mnist --split test --frames 3000 --fps 10 \
  --seed 1 --out "$out/scene.dctrace"
"$bin/replay/deepcut-replay" --model models/fmnist --source "trace:$out/scene.dctrace" \
  --uplink 2M --budget 25% --policies all --out "$out/replay.json" --plot "$out/replay.png"
echo "demo: replay report in $out/replay.json, plot in $out/replay.png"
