#!/usr/bin/env python3
"""Turns the bandwidth knob of a running edge and shows the uplink follow it.

Starts deepcut-cloud, optionally deepcut-link, and deepcut-edge with a control
endpoint on a scene trace in real time; changes the budget with deepcut-ctl at
the given times; then bins the bytes the edge really sent (headers included, by
capture time) and reports, for each knob position, the uplink bit/s over the
next --window-s seconds against the budget. Writes knob.json and knob.png
(uplink bit/s over time with the budget as a step line) to --out-dir.

  examples/bandwidth_knob.py                      # 4k, then 2k at 30 s, 5k at 60 s
  examples/bandwidth_knob.py --budgets 4k,2k,5k --change-at 30,60 --seconds 90
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
from deepcut_procs import Processes  # noqa: E402  (scripts/)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_args():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bin-dir", default=os.path.join(ROOT, "build"))
    p.add_argument("--model", default=os.path.join(ROOT, "models", "fmnist"))
    p.add_argument("--budgets", default="4k,2k,5k",
                   help="the budget at the start, then after each change (bit/s)")
    p.add_argument("--change-at", default="30,60", help="seconds from the first frame")
    p.add_argument("--seconds", type=float, default=90.0, help="length of the run")
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--seed", type=int, default=1, help="scene trace seed")
    p.add_argument("--policy", default="deepcut")
    p.add_argument("--link", default="", help="run through deepcut-link with this uplink "
                   "(trace file or rate); default: straight to the cloud")
    p.add_argument("--window-s", type=float, default=10.0,
                   help="the window after each change that must follow the budget")
    p.add_argument("--out-dir", default=os.path.join(ROOT, "out", "knob"))
    p.add_argument("--no-plot", action="store_true")
    return p.parse_args()


def parse_rate(text):
    mult = {"k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9}
    return float(text[:-1]) * mult[text[-1]] if text[-1] in mult else float(text)


def ctl(a, endpoint, *words):
    res = subprocess.run([os.path.join(a.bin_dir, "edge", "deepcut-ctl"), "--control", endpoint,
                          *words], capture_output=True, text=True, timeout=30)
    if res.returncode != 0:
        sys.exit("deepcut-ctl %s failed: %s%s" % (" ".join(words), res.stdout, res.stderr))
    return res.stdout.strip()


def run(a, tmp):
    budgets = a.budgets.split(",")
    changes = [float(x) for x in a.change_at.split(",")] if a.change_at else []
    if len(budgets) != len(changes) + 1:
        sys.exit("--budgets needs one more value than --change-at")
    frames = int(a.seconds * a.fps)
    trace = os.path.join(tmp, "scene.dctrace")
    subprocess.run([os.path.join(a.bin_dir, "trace", "deepcut-trace"), "make", "--dataset",
                    "fashion-mnist", "--split", "test", "--frames", str(frames), "--fps",
                    str(a.fps), "--seed", str(a.seed), "--out", trace], check=True,
                   capture_output=True)
    with Processes(a.bin_dir, tmp) as procs:
        _, endpoint, _ = procs.cloud(a.model, extra=["--stats-interval-s", "0"])
        if a.link:
            _, endpoint, _ = procs.link(endpoint, a.link, ["--stats-interval-s", "0"])
        control = "ipc://" + os.path.join(tmp, "edge.ctl")
        answers = os.path.join(a.out_dir, "answers.jsonl")
        summary = os.path.join(a.out_dir, "summary.json")
        edge = procs.add(subprocess.Popen(
            [os.path.join(a.bin_dir, "edge", "deepcut-edge"), "--cloud", endpoint, "--model",
             a.model, "--source", "trace:" + trace, "--fps", str(a.fps), "--policy", a.policy,
             "--budget", budgets[0], "--control", control, "--out", answers,
             "--summary", summary, "--progress", "off"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        # The edge's clock starts with its first frame; wait for the control
        # endpoint, then time the changes from the edge's own "now".
        t0 = None
        for _ in range(600):
            if edge.poll() is not None:
                sys.exit("deepcut-edge exited with %d: %s" % (edge.returncode, edge.stderr.read()))
            res = subprocess.run([os.path.join(a.bin_dir, "edge", "deepcut-ctl"), "--control",
                                  control, "--timeout-ms", "500", "status"],
                                 capture_output=True, text=True)
            if res.returncode == 0:
                t0 = time.monotonic()
                break
            time.sleep(0.1)
        if t0 is None:
            sys.exit("the edge's control endpoint did not answer")
        print("edge running: %s at %g fps for %.0f s, budget %s" % (a.policy, a.fps, a.seconds,
                                                                   budgets[0]), flush=True)
        for at, budget in zip(changes, budgets[1:]):
            while time.monotonic() - t0 < at:
                time.sleep(0.05)
            print("  t=%5.1f s  knob -> %s   (%s)" % (time.monotonic() - t0, budget,
                                                    ctl(a, control, "budget", budget)), flush=True)
        out, err = edge.communicate(timeout=a.seconds * 3 + 120)
        if edge.returncode != 0:
            sys.exit("deepcut-edge exited with %d: %s" % (edge.returncode, err[-2000:]))
        print(out)
    with open(answers) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    with open(summary) as f:
        return rows, json.load(f), budgets


def analyse(a, rows, summary, budgets):
    start = min(r["capture_s"] for r in rows)
    end = max(r["capture_s"] for r in rows)
    sends = sorted((r["capture_s"] - start, r["bytes_sent"]) for r in rows if r["bytes_sent"])
    # Knob positions on the edge's clock, as the edge recorded them.
    knob = [(0.0, parse_rate(budgets[0]))] + [
        (c["capture_s"] - start, c["budget_bps"]) for c in summary.get("budget_changes", [])]

    def bps(t1, t2):
        return 8.0 * sum(b for t, b in sends if t1 <= t < t2) / (t2 - t1)

    segments = []
    for i, (t, budget) in enumerate(knob):
        t_end = knob[i + 1][0] if i + 1 < len(knob) else end - start
        w_end = min(t + a.window_s, t_end)
        segments.append({"from_s": round(t, 3), "to_s": round(t_end, 3), "budget_bps": budget,
                         "window_s": round(w_end - t, 3), "window_bps": bps(t, w_end),
                         "ratio": bps(t, w_end) / budget if budget else None,
                         "segment_bps": bps(t, t_end)})
    print("%-16s %12s %14s %8s %14s" % ("knob at", "budget", "next %gs" % a.window_s, "ratio",
                                         "whole segment"))
    for s in segments:
        print("%-16s %12.0f %14.0f %8.3f %14.0f" % ("%.1f-%.1f s" % (s["from_s"], s["to_s"]),
                                                    s["budget_bps"], s["window_bps"],
                                                    s["ratio"] or 0, s["segment_bps"]))
    report = {"policy": a.policy, "fps": a.fps, "frames": len(rows), "link": a.link or None,
              "accuracy": summary["accuracy"], "segments": segments,
              "answered": summary["answered"], "duplicate_answers": summary["duplicate_answers"],
              "uplink_bytes": summary["uplink_bytes"]}
    with open(os.path.join(a.out_dir, "knob.json"), "w") as f:
        json.dump(report, f, indent=1)
    if not a.no_plot:
        plot(a, sends, knob, end - start)
    return report


def plot(a, sends, knob, duration):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    secs = int(duration) + 1
    per_s = [0.0] * secs
    for t, b in sends:
        per_s[min(int(t), secs - 1)] += 8.0 * b
    trailing = [sum(per_s[max(0, i - 9):i + 1]) / min(10, i + 1) for i in range(secs)]
    fig, ax = plt.subplots(figsize=(9, 4))
    ax.bar(range(secs), per_s, width=1.0, align="edge", color="#b8cce4", label="uplink, 1 s bins")
    ax.plot([i + 1 for i in range(secs)], trailing, color="#1f4e79", label="uplink, trailing 10 s")
    xs, ys = [], []
    for i, (t, b) in enumerate(knob):
        t_end = knob[i + 1][0] if i + 1 < len(knob) else duration
        xs += [t, t_end]
        ys += [b, b]
    ax.plot(xs, ys, color="#c00000", linestyle="--", label="budget (knob)")
    ax.set_xlabel("time since the first frame, s")
    ax.set_ylabel("bit/s (bytes sent, headers included)")
    ax.set_title("Live bandwidth knob: %s policy, %g fps" % (a.policy, a.fps))
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(os.path.join(a.out_dir, "knob.png"), dpi=110)
    print("wrote %s" % os.path.join(a.out_dir, "knob.png"))


def main():
    a = parse_args()
    os.makedirs(a.out_dir, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="deepcut-knob-") as tmp:
        rows, summary, budgets = run(a, tmp)
    analyse(a, rows, summary, budgets)
    print("wrote %s" % os.path.join(a.out_dir, "knob.json"))


if __name__ == "__main__":
    main()
