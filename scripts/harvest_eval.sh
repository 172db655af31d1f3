#!/usr/bin/env bash
# The harvesting evaluation of docs/harvest.md: both shifts of eval/profiles/shifts.json,
# three seeds, three storage budgets, every sampler; JSON, markdown and one plot in OUT.
#   scripts/harvest_eval.sh [OUT]        (default docs/harvest; about 30 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-docs/harvest}"
bin="${BUILD_DIR:-build}"
seeds="${SEEDS:-1,2,3}"
budgets="${BUDGETS:-90,30,270}"
mkdir -p "$out"
for shift in night-cctv cheap-webcam; do
  echo "harvest eval: $shift (seeds $seeds, budgets $budgets) ..." >&2
  "$bin/eval/deepcut-eval" harvest --model models/fmnist \
    --shift "eval/profiles/shifts.json#$shift" --seed "$seeds" --storage-frames "$budgets" \
    --samplers harvest,random,periodic,uncertainty \
    --out "$out/$shift.json" --markdown "$out/$shift.md"
done
/usr/bin/python3 scripts/plot_harvest.py "$out/night-cctv.json" "$out/cheap-webcam.json" \
  "$out/accuracy-vs-frames.png"
echo "harvest eval: wrote $out" >&2
