#!/usr/bin/python3
"""Tunes the scene-fusion answer rule for one model package on training-split
scene traces (never the test split), with the C++ rule itself: deepcut-replay
--fusion over a grid, and writes the best settings into the package's
manifest.json ("fusion"), atomically, with the command in "fusion_command".

Stage 1 (exit evidence alone): change distance x decay scale, scored by
edge-only+fusion. Stage 2 (cloud evidence): the cloud weight, scored by
confidence+fusion and periodic+fusion at 10% and 25% of always-offload's bytes.

Usage: tune_fusion.py --package models/fmnist [--bin-dir build] [--seeds 101,102]
                      [--frames 1500] [--uplink ../shared/traces/net/TMobile-LTE-short.up]
"""
import argparse
import itertools
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    p.add_argument("--package", required=True)
    p.add_argument("--bin-dir", default=os.path.join(root, "build"))
    p.add_argument("--seeds", default="101,102", help="training-split scene seeds")
    p.add_argument("--frames", type=int, default=1500)
    p.add_argument("--uplink", default="", help="network trace (default: the first shared one, else 2M)")
    p.add_argument("--changes", default="0.15,0.18,0.2,0.22,0.25")
    p.add_argument("--decays", default="0.3,0.5,1,2,1000")
    p.add_argument("--clouds", default="4,16,32,64,128")
    p.add_argument("--dry-run", action="store_true", help="print the choice, leave the manifest")
    return p.parse_args()


def mean_accuracy(a, traces, fusion, policies, budgets):
    accs = []
    for tr in traces:
        for b in budgets:
            with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
                out = f.name
            try:
                subprocess.run([a.replay, "--model", a.package, "--source", "trace:" + tr,
                                "--uplink", a.uplink, "--budget", b, "--policies", ",".join(policies),
                                "--fusion", fusion, "--out", out], check=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                with open(out) as f:
                    pol = json.load(f)["policies"]
            finally:
                os.unlink(out)
            accs += [pol[p]["accuracy"] for p in policies]
    return sum(accs) / len(accs)


def main():
    a = parse_args()
    started = time.time()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    a.replay = os.path.join(a.bin_dir, "replay", "deepcut-replay")
    trace_exe = os.path.join(a.bin_dir, "trace", "deepcut-trace")
    if not a.uplink:
        shared = os.path.join(root, "..", "shared", "traces", "net", "TMobile-LTE-short.up")
        a.uplink = shared if os.path.exists(shared) else "2M"
    tmp = tempfile.mkdtemp(prefix="tune-fusion-")
    traces = []
    for seed in [int(s) for s in a.seeds.split(",")]:
        path = os.path.join(tmp, "train-%d.dctrace" % seed)
        subprocess.run([trace_exe, "make", "--split", "train", "--frames", str(a.frames),
                        "--seed", str(seed), "--out", path], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        traces.append(path)
    grid = list(itertools.product([float(x) for x in a.changes.split(",")],
                                  [float(x) for x in a.decays.split(",")]))
    best = None
    for k, (change, decay) in enumerate(grid, 1):
        acc = mean_accuracy(a, traces, "change=%g,decay=%g" % (change, decay),
                            ["edge-only+fusion"], ["0"])
        print("[stage 1 %d/%d] change %g decay %g: edge-only+fusion %.2f%% (%.0f s)" %
              (k, len(grid), change, decay, 100 * acc, time.time() - started), file=sys.stderr, flush=True)
        if best is None or acc > best[0] + 1e-9:
            best = (acc, change, decay)
    _, change, decay = best
    best_cloud = None
    clouds = [float(x) for x in a.clouds.split(",")]
    for k, cloud in enumerate(clouds, 1):
        acc = mean_accuracy(a, traces, "change=%g,decay=%g,cloud=%g" % (change, decay, cloud),
                            ["confidence+fusion", "periodic+fusion"], ["10%", "25%"])
        print("[stage 2 %d/%d] cloud weight %g: %.2f%% (%.0f s)" %
              (k, len(clouds), cloud, 100 * acc, time.time() - started), file=sys.stderr, flush=True)
        if best_cloud is None or acc > best_cloud[0] + 1e-9:
            best_cloud = (acc, cloud)
    fusion = {"change_distance": change, "decay_scale": decay, "exit_weight": 1.0,
              "cloud_weight": best_cloud[1]}
    print("tune_fusion: %s (stage 1 %.2f%%, stage 2 %.2f%%; %.0f s)" %
          (json.dumps(fusion), 100 * best[0], 100 * best_cloud[0], time.time() - started))
    if a.dry_run:
        return 0
    manifest_path = os.path.join(a.package, "manifest.json")
    with open(manifest_path) as f:
        manifest = json.load(f)
    manifest["fusion"] = fusion
    manifest.setdefault("provenance", {})["fusion_command"] = " ".join(
        shlex.quote(x) for x in ["/usr/bin/python3", "scripts/tune_fusion.py"] + sys.argv[1:])
    tmp_path = manifest_path + ".tmp"
    with open(tmp_path, "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    os.replace(tmp_path, manifest_path)
    print("tune_fusion: wrote %s" % manifest_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
