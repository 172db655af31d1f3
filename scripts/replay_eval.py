#!/usr/bin/python3
"""The scheduler evaluation of docs/replay.md: scene traces from the test split,
every network trace in ../shared/traces/net/ (or a fixed 2 Mbit/s link when they
are absent), budgets of 10%, 25% and 50% of always-offload's bit/s; every policy
and the oracle side by side. Writes OUT/replay-<trace>-<budget>.json, OUT/summary.md,
OUT/summary.json and OUT/replay.png, and prints whether the goals hold:
  - the DeepCut policy has the highest accuracy of the non-oracle policies that
    spend no more bytes than it does,
  - and reaches >= 0.95 of the oracle's accuracy.

Usage: replay_eval.py [--bin-dir build] [--model models/fmnist] [--out out/replay]
                      [--frames 3000] [--fps 10] [--seed 1] [--budgets 10,25,50]
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import time

POLICIES = ["edge-only", "periodic", "random", "confidence", "framediff", "deepcut", "oracle"]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    p.add_argument("--bin-dir", default=os.path.join(root, "build"))
    p.add_argument("--model", default=os.path.join(root, "models", "fmnist"))
    p.add_argument("--out", default=os.path.join(root, "out", "replay"))
    p.add_argument("--net-dir", default=os.path.join(root, "..", "shared", "traces", "net"))
    p.add_argument("--frames", type=int, default=3000)
    p.add_argument("--fps", type=float, default=10.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--budgets", default="10,25,50")
    p.add_argument("--deadline-ms", default="200")
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    trace_exe = os.path.join(a.bin_dir, "trace", "deepcut-trace")
    replay_exe = os.path.join(a.bin_dir, "replay", "deepcut-replay")
    frames = os.path.join(a.out, "scene-test-%d.dctrace" % a.seed)
    if not os.path.exists(frames):
        subprocess.run([trace_exe, "make", "--dataset", "fashion-mnist", "--split", "test",
                        "--frames", str(a.frames), "--fps", str(a.fps), "--seed", str(a.seed),
                        "--out", frames], check=True)
    nets = sorted(glob.glob(os.path.join(a.net_dir, "*.up")))
    links = nets or ["2M"]
    budgets = [b.strip() for b in a.budgets.split(",") if b.strip()]
    results = []
    total = len(links) * len(budgets)
    started = time.time()
    for i, link in enumerate(links):
        for j, budget in enumerate(budgets):
            k = i * len(budgets) + j + 1
            name = os.path.basename(link).replace(".up", "") if link in nets else "fixed-" + link
            out = os.path.join(a.out, "replay-%s-%s.json" % (name, budget))
            print("[%d/%d] %s at %s%% of always-offload (%.0f s so far)" %
                  (k, total, name, budget, time.time() - started), file=sys.stderr, flush=True)
            subprocess.run([replay_exe, "--model", a.model, "--source", "trace:" + frames,
                            "--uplink", link,
                            "--budget", budget + "%", "--policies", "all", "--deadline-ms",
                            a.deadline_ms, "--out", out], check=True, stdout=subprocess.DEVNULL)
            with open(out) as f:
                results.append((name, budget, json.load(f)))
    lines = ["| network trace | budget | policy | accuracy | uplink bit/s | of budget | "
             "offloaded | deadline hit | of oracle | of oracle gain |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    checks = []
    for name, budget, r in results:
        pol = r["policies"]
        for pname in POLICIES + ["always", "oracle-replayed"]:
            m = pol.get(pname)
            if not m:
                continue
            lines.append("| %s | %s%% | %s | %.2f%% | %.0f | %.2f | %.1f%% | %s | %s | %s |" % (
                name, budget, pname, 100 * m["accuracy"], m["uplink_bps"],
                m["uplink_bps"] / r["budget_bps"], 100 * m["offload_fraction"],
                "-" if m.get("hindsight") else "%.1f%%" % (100 * m["deadline_hit_ratio"]),
                "%.3f" % m["oracle_fraction"] if "oracle_fraction" in m else "-",
                "%.3f" % m["oracle_gain_fraction"] if "oracle_gain_fraction" in m else "-"))
        dc = pol["deepcut"]
        rivals = [(n, pol[n]) for n in POLICIES if n not in ("deepcut", "oracle")
                  and pol[n]["uplink_bytes"] <= dc["uplink_bytes"] * 1.0001]
        beaten = [n for n, m in rivals if m["accuracy"] > dc["accuracy"]]
        frac = dc["accuracy"] / pol["oracle"]["accuracy"]
        checks.append({"trace": name, "budget_percent": budget, "deepcut_accuracy": dc["accuracy"],
                       "oracle_accuracy": pol["oracle"]["accuracy"], "oracle_fraction": frac,
                       "best_rival": max(rivals, key=lambda x: x[1]["accuracy"])[0] if rivals else None,
                       "beaten_by": beaten, "highest": not beaten, "reaches_95": frac >= 0.95,
                       "realtime_factor": dc["realtime_factor"]})
    ok = all(c["highest"] and c["reaches_95"] for c in checks)
    summary = ["# Scheduler evaluation (deepcut-replay, virtual time)", "",
               "Frame trace: %d frames at %g fps from the Fashion-MNIST test split (seed %d); "
               "model %s; deadline %s ms." % (a.frames, a.fps, a.seed, a.model, a.deadline_ms), "",
               "| network trace | budget | DeepCut | oracle | of oracle | best rival at <= bytes | "
               "highest | x real time |", "|---|---|---|---|---|---|---|---|"]
    for c in checks:
        summary.append("| %s | %s%% | %.2f%% | %.2f%% | %.3f | %s | %s | %.0f |" % (
            c["trace"], c["budget_percent"], 100 * c["deepcut_accuracy"],
            100 * c["oracle_accuracy"], c["oracle_fraction"], c["best_rival"],
            "yes" if c["highest"] else "no (%s)" % ", ".join(c["beaten_by"]),
            c["realtime_factor"]))
    summary += ["", "Goals: DeepCut highest of the non-oracle policies at equal or fewer bytes, "
                "and >= 0.95 of the oracle: **%s**" % ("hold" if ok else "do NOT all hold"), "",
                "## All policies", ""] + lines
    with open(os.path.join(a.out, "summary.md"), "w") as f:
        f.write("\n".join(summary) + "\n")
    with open(os.path.join(a.out, "summary.json"), "w") as f:
        json.dump({"checks": checks, "goals_hold": ok}, f, indent=2)
    plot = os.path.join(os.path.dirname(os.path.abspath(__file__)), "plot_replay.py")
    # One plot per network trace, all budgets on it; the first is the headline.
    for name in dict.fromkeys(n for n, _, _ in results):
        files = [os.path.join(a.out, "replay-%s-%s.json" % (name, b)) for b in budgets]
        subprocess.run(["/usr/bin/python3", plot] + files +
                       [os.path.join(a.out, "replay-%s.png" % name)], check=True)
    print("\n".join(summary[:len(checks) + 8]))
    print("wrote %s/summary.md (%.0f s)" % (a.out, time.time() - started), file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
