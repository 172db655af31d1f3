#!/usr/bin/env bash
# Trains the learned policy of a package in the virtual-time replay, in one
# command: makes training-split scene traces (never the test split), takes every
# network trace in ../shared/traces/net/ (a fixed 2 Mbit/s link without them),
# and runs deepcut-train-policy over budgets of 5/10/25/50% of always-offload.
#   scripts/train_policy.sh [PACKAGE] [BUILD_DIR]     (default models/fmnist, build)
# Env: SEEDS (scene seeds, default "201 202"), FRAMES (1500), ITERATIONS (30),
#      POPULATION (16), EPISODES (4), HIDDEN (8).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
package="${1:-$root/models/fmnist}"
build="${2:-$root/build}"
seeds="${SEEDS:-201 202}"
frames="${FRAMES:-1500}"
work="$(mktemp -d /tmp/train-policy.XXXXXX)"
trap 'rm -rf "$work"' EXIT
args=()
for s in $seeds; do
  "$build/trace/deepcut-trace" make --split train --frames "$frames" --seed "$s" \
    --out "$work/train-$s.dctrace" >/dev/null 2>&1
  args+=(--source "trace:$work/train-$s.dctrace")
done
nets=("$root"/../shared/traces/net/*.up)
if [[ -e "${nets[0]}" ]]; then
  for n in "${nets[@]}"; do args+=(--uplink "$(realpath "$n")"); done
else
  args+=(--uplink 2M)
fi
exec "$build/replay/deepcut-train-policy" --model "$package" "${args[@]}" \
  --budgets 5,10,25,50 --iterations "${ITERATIONS:-30}" --population "${POPULATION:-16}" \
  --elite 4 --episodes "${EPISODES:-4}" --hidden "${HIDDEN:-8}" --seed 1 \
  --out "$package/policy.json"
