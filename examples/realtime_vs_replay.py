#!/usr/bin/env python3
"""Runs one policy on one frame trace over one network trace twice and compares:

  1. in virtual time, with deepcut-replay (the in-process cloud and link model);
  2. in real time, through the real processes: deepcut-cloud, deepcut-link
     emulating the same uplink, and deepcut-edge reading the same frame trace.

The edge learns the link from what it observes (send and reply times); nothing
tells it the trace. Prints the two summaries side by side and writes
comparison.json to --out-dir.

  examples/realtime_vs_replay.py                     # T-Mobile trace if present, else 2M
  examples/realtime_vs_replay.py --link ../shared/traces/net/ATT-LTE-driving.up --budget 25%
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
from deepcut_procs import Processes  # noqa: E402  (scripts/)

DEFAULT_TRACE = os.path.join(os.path.dirname(ROOT), "shared", "traces", "net",
                             "TMobile-LTE-short.up")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bin-dir", default=os.path.join(ROOT, "build"))
    p.add_argument("--model", default=os.path.join(ROOT, "models", "fmnist"))
    p.add_argument("--link", default=DEFAULT_TRACE if os.path.isfile(DEFAULT_TRACE) else "2M",
                   help="uplink: mahimahi trace file or a rate like 2M (default: %(default)s)")
    p.add_argument("--frames", type=int, default=1800, help="frames in the scene trace")
    p.add_argument("--fps", type=float, default=10.0)
    p.add_argument("--seed", type=int, default=1, help="scene trace seed")
    p.add_argument("--policy", default="deepcut")
    p.add_argument("--budget", default="25%",
                   help="bit/s (2k) or a percentage of always-offload's bit/s in the replay")
    p.add_argument("--delay-ms", type=float, default=20.0, help="one-way delay, each way")
    p.add_argument("--deadline-ms", type=float, default=200.0)
    p.add_argument("--out-dir", default=os.path.join(ROOT, "out", "realtime-vs-replay"))
    return p.parse_args()


def run(cmd, **kw):
    res = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if res.returncode != 0:
        sys.exit("failed (%d): %s\n%s" % (res.returncode, " ".join(cmd), res.stderr[-3000:]))
    return res


def replay(a, frames, policy, budget, out):
    run([os.path.join(a.bin_dir, "replay", "deepcut-replay"), "--model", a.model,
         "--source", "trace:" + frames, "--uplink", a.link, "--policy", policy, "--budget", str(budget),
         "--delay-ms", str(a.delay_ms), "--downlink-delay-ms", str(a.delay_ms),
         "--deadline-ms", str(a.deadline_ms), "--out", out])
    with open(out) as f:
        return json.load(f)["policies"][policy]


def real_time(a, frames, budget_bps, tmp):
    with Processes(a.bin_dir, tmp) as procs:
        _, cloud_ep, _ = procs.cloud(a.model, extra=["--stats-interval-s", "0"])
        _, link_ep, _ = procs.link(cloud_ep, a.link,
                                   ["--delay-ms", str(a.delay_ms), "--stats-interval-s", "0"],
                                   log_path=os.path.join(a.out_dir, "link.log"))
        answers = os.path.join(a.out_dir, "realtime-answers.jsonl")
        summary = os.path.join(a.out_dir, "realtime-summary.json")
        print("real time: %d frames at %g fps (%.0f s) through deepcut-link ..."
              % (a.frames, a.fps, a.frames / a.fps), flush=True)
        edge = subprocess.run(
            [os.path.join(a.bin_dir, "edge", "deepcut-edge"), "--cloud", link_ep,
             "--model", a.model, "--source", "trace:" + frames, "--fps", str(a.fps),
             "--policy", a.policy, "--budget", str(budget_bps),
             "--deadline-ms", str(a.deadline_ms), "--out", answers, "--summary", summary,
             "--progress", "on"], stdout=subprocess.PIPE, text=True)
        if edge.returncode != 0:
            sys.exit("deepcut-edge exited with %d" % edge.returncode)
    with open(summary) as f:
        return json.load(f)


def main():
    a = parse_args()
    os.makedirs(a.out_dir, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="deepcut-rt-")
    frames = os.path.join(a.out_dir, "scene.dctrace")
    print("scene trace: %d frames at %g fps, seed %d" % (a.frames, a.fps, a.seed), flush=True)
    run([os.path.join(a.bin_dir, "trace", "deepcut-trace"), "make", "--dataset", "fashion-mnist",
         "--split", "test", "--frames", str(a.frames), "--fps", str(a.fps), "--seed",
         str(a.seed), "--out", frames])
    budget_bps = a.budget
    if a.budget.endswith("%"):
        always = replay(a, frames, "always", 0, os.path.join(tmp, "always.json"))
        budget_bps = "%.0f" % (always["uplink_bps"] * float(a.budget[:-1]) / 100.0)
        print("budget %s of always-offload's %.0f bit/s = %s bit/s"
              % (a.budget, always["uplink_bps"], budget_bps))
    print("replay in virtual time ...", flush=True)
    rep = replay(a, frames, a.policy, budget_bps, os.path.join(a.out_dir, "replay.json"))
    rt = real_time(a, frames, budget_bps, tmp)

    rows = [
        ("accuracy %", 100 * rep["accuracy"], 100 * rt["accuracy"]),
        ("uplink bytes", rep["uplink_bytes"], rt["uplink_bytes"]),
        ("uplink bit/s", rep["uplink_bps"], rt["uplink_bps"]),
        ("offload fraction %", 100 * rep["offload_fraction"], 100 * rt["offload_fraction"]),
        ("deadline hit ratio %", 100 * rep["deadline_hit_ratio"], 100 * rt["deadline_hit_ratio"]),
        ("latency p50 ms", rep["latency_ms"]["p50"], rt["latency_ms"]["p50"]),
        ("latency p99 ms", rep["latency_ms"]["p99"], rt["latency_ms"]["p99"]),
    ]
    print("\n%s over %s, budget %s bit/s, %d frames at %g fps"
          % (a.policy, os.path.basename(a.link), budget_bps, a.frames, a.fps))
    print("%-22s %12s %12s %10s" % ("", "replay", "real time", "rt/replay"))
    for name, r, t in rows:
        ratio = "%.3f" % (t / r) if r else "-"
        print("%-22s %12.2f %12.2f %10s" % (name, r, t, ratio))
    print("real-time routes: %s; reasons: %s" % (rt["routes"], rt["reasons"]))
    report = {"link": a.link, "policy": a.policy, "budget_bps": float(budget_bps),
              "frames": a.frames, "fps": a.fps, "delay_ms": a.delay_ms,
              "replay": rep, "realtime": rt,
              "accuracy_points_diff": 100 * (rt["accuracy"] - rep["accuracy"]),
              "uplink_bytes_ratio": rt["uplink_bytes"] / rep["uplink_bytes"]
              if rep["uplink_bytes"] else None}
    with open(os.path.join(a.out_dir, "comparison.json"), "w") as f:
        json.dump(report, f, indent=1)
    print("wrote %s" % os.path.join(a.out_dir, "comparison.json"))


if __name__ == "__main__":
    main()
