#!/usr/bin/python3
"""The scheduler evaluation of docs/replay.md: scene traces from the Fashion-MNIST
*test* split (--seeds of them), every network trace in ../shared/traces/net/ (or a
fixed 2 Mbit/s link when they are absent), budgets of 5/10/25/50% of
always-offload's bit/s; every policy, its +fusion variant and the oracles side by
side (deepcut-replay --policies all per run, --jobs runs at a time).

Reports, per budget, each policy's mean accuracy over all (seed, network trace)
runs with a 95% paired-bootstrap interval of its difference to the best DeepCut
policy (deepcut or learned, whichever has the higher mean at that budget), its
mean uplink bytes relative to that policy's, and checks the goals of issue 12:
  G1 at 10/25/50%: the best DeepCut policy has the highest mean accuracy of all
     causal policies that spend no more bytes (mean uplink bytes <= its own);
  G2 at 25%: its errors <= 1/1.5 of the best published-form baseline's at <= bytes,
     and it captures >= 0.8 of oracle-expected's gain over edge-only;
  G3 its accuracy does not fall as the budget rises (5 -> 10 -> 25 -> 50%);
  G4 every run keeps the budget (every 10 s window <= 1.05x) and answers every
     frame by its deadline.
Writes OUT/runs/*.json, OUT/summary.md, OUT/summary.json, OUT/accuracy-vs-budget.png,
and with --docs FILE rewrites that file's generated section.

Usage: replay_eval.py [--bin-dir build] [--model models/fmnist] [--out out/replay-eval]
                      [--frames 2000] [--seeds 10] [--first-seed 1] [--budgets 5,10,25,50]
                      [--jobs 2] [--docs docs/replay.md]
"""
import argparse
import concurrent.futures
import glob
import json
import os
import subprocess
import sys
import time

import numpy as np

BASELINES = ["periodic", "random", "confidence", "framediff"]
CAUSAL = (["edge-only"] + BASELINES + [b + "+fusion" for b in ["edge-only"] + BASELINES] +
          ["deepcut", "learned"])
DEEPCUT = ["deepcut", "learned"]
ORACLES = ["oracle-expected", "oracle", "oracle-replayed"]
BEGIN = "<!-- replay_eval: generated, do not edit by hand -->"
END = "<!-- replay_eval: end -->"


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    p.add_argument("--bin-dir", default=os.path.join(root, "build"))
    p.add_argument("--model", default=os.path.join(root, "models", "fmnist"))
    p.add_argument("--out", default=os.path.join(root, "out", "replay-eval"))
    p.add_argument("--net-dir", default=os.path.join(root, "..", "shared", "traces", "net"))
    p.add_argument("--frames", type=int, default=2000)
    p.add_argument("--fps", type=float, default=10.0)
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--first-seed", type=int, default=1)
    p.add_argument("--budgets", default="5,10,25,50")
    p.add_argument("--deadline-ms", default="200")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--bootstrap", type=int, default=4000, help="bootstrap resamples")
    p.add_argument("--docs", default="", help="markdown file whose generated section to rewrite")
    p.add_argument("--check", action="store_true", help="exit 1 if a goal does not hold")
    return p.parse_args()


def make_traces(a, trace_exe):
    traces = {}
    os.makedirs(os.path.join(a.out, "frames"), exist_ok=True)
    for seed in range(a.first_seed, a.first_seed + a.seeds):
        path = os.path.join(a.out, "frames", "scene-test-%d-%d.dctrace" % (seed, a.frames))
        if not os.path.exists(path):
            subprocess.run([trace_exe, "make", "--dataset", "fashion-mnist", "--split", "test",
                            "--frames", str(a.frames), "--fps", str(a.fps), "--seed", str(seed),
                            "--out", path], check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        traces[seed] = path
    return traces


def run_one(replay_exe, a, frames, link, budget, out):
    if os.path.exists(out):
        with open(out) as f:
            return json.load(f)
    subprocess.run([replay_exe, "--model", a.model, "--source", "trace:" + frames, "--uplink", link,
                    "--budget", budget + "%", "--policies", "all", "--deadline-ms", a.deadline_ms,
                    "--out", out], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    with open(out) as f:
        return json.load(f)


def paired_ci(diff, rng, n):
    """95% bootstrap interval of the mean of paired differences."""
    diff = np.asarray(diff, dtype=np.float64)
    idx = rng.integers(0, len(diff), size=(n, len(diff)))
    means = diff[idx].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def main():
    a = parse_args()
    os.makedirs(os.path.join(a.out, "runs"), exist_ok=True)
    trace_exe = os.path.join(a.bin_dir, "trace", "deepcut-trace")
    replay_exe = os.path.join(a.bin_dir, "replay", "deepcut-replay")
    started = time.time()
    traces = make_traces(a, trace_exe)
    nets = sorted(glob.glob(os.path.join(a.net_dir, "*.up")))
    links = {os.path.basename(n).replace(".up", ""): n for n in nets} or {"fixed-2M": "2M"}
    budgets = [b.strip() for b in a.budgets.split(",") if b.strip()]
    jobs = [(seed, name, b) for seed in traces for name in links for b in budgets]
    print("replay_eval: %d runs (%d seeds x %d network traces x %d budgets), %d frames each" %
          (len(jobs), len(traces), len(links), len(budgets), a.frames), file=sys.stderr, flush=True)
    results = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=a.jobs) as pool:
        futures = {pool.submit(run_one, replay_exe, a, traces[s], links[n], b,
                               os.path.join(a.out, "runs", "%s-s%d-%s.json" % (n, s, b))): (s, n, b)
                   for s, n, b in jobs}
        for k, fut in enumerate(concurrent.futures.as_completed(futures), 1):
            key = futures[fut]
            results[key] = fut.result()
            dc = results[key]["policies"]["deepcut"]["accuracy"]
            print("[%d/%d] seed %d %s %s%%: deepcut %.2f%% (%.0f s)" %
                  (k, len(jobs), key[0], key[1], key[2], 100 * dc, time.time() - started),
                  file=sys.stderr, flush=True)

    rng = np.random.default_rng(12)
    names = [n for n in CAUSAL + ORACLES + ["always"]
             if all(n in r["policies"] for r in results.values())]
    per_budget = {}
    for b in budgets:
        keys = [k for k in jobs if k[2] == b]
        acc = {n: np.array([results[k]["policies"][n]["accuracy"] for k in keys]) for n in names}
        byt = {n: np.array([results[k]["policies"][n]["uplink_bytes"] for k in keys], float)
               for n in names}
        best = max((n for n in DEEPCUT if n in acc), key=lambda n: acc[n].mean())
        rows = {}
        for n in names:
            d = acc[n] - acc[best]
            lo, hi = paired_ci(d, rng, a.bootstrap)
            rows[n] = {"accuracy": float(acc[n].mean()), "diff_to_best": float(d.mean()),
                       "ci95": [lo, hi], "bytes_ratio": float(byt[n].mean() / max(byt[best].mean(), 1)),
                       "uplink_bytes": float(byt[n].mean())}
        rivals = [n for n in CAUSAL if n in acc and n not in DEEPCUT and
                  byt[n].mean() <= byt[best].mean() * 1.0001]
        beaten_by = [n for n in rivals if acc[n].mean() > acc[best].mean()]
        published = [n for n in ["edge-only"] + BASELINES if n in rivals]
        best_pub = max(published, key=lambda n: acc[n].mean()) if published else None
        err_ratio = float((1 - acc[best_pub].mean()) / max(1 - acc[best].mean(), 1e-9)) if best_pub else None
        gain = float(acc[best].mean() - acc["edge-only"].mean())
        exp_gain = (float(acc["oracle-expected"].mean() - acc["edge-only"].mean())
                    if "oracle-expected" in acc else None)
        keep = all(results[k]["policies"][n]["max_10s_window_bps"] <= 1.05 * results[k]["budget_bps"]
                   for k in keys for n in CAUSAL if n in results[k]["policies"] and n != "edge-only")
        deadlines = all(results[k]["policies"][n]["answered_by_deadline"] >= 1.0
                        for k in keys for n in CAUSAL if n in results[k]["policies"])
        per_budget[b] = {"best": best, "rows": rows, "beaten_by": beaten_by,
                         "best_published": best_pub, "error_ratio": err_ratio,
                         "expected_gain_fraction": gain / exp_gain if exp_gain else None,
                         "oracle_gain_fraction": gain / float(acc["oracle"].mean() - acc["edge-only"].mean()),
                         "budget_kept": bool(keep), "deadlines": bool(deadlines), "runs": len(keys)}
    best_curve = [per_budget[b]["rows"][per_budget[b]["best"]]["accuracy"] for b in budgets]
    goals = {
        "G1 highest at <= bytes (10/25/50%)": all(not per_budget[b]["beaten_by"]
                                                 for b in budgets if b in ("10", "25", "50")),
        "G2a errors <= 1/1.5 of best published baseline at 25%":
            "25" in per_budget and (per_budget["25"]["error_ratio"] or 0) >= 1.5,
        "G2b >= 0.8 of oracle-expected's gain at 25%":
            "25" in per_budget and (per_budget["25"]["expected_gain_fraction"] or 0) >= 0.8,
        "G3 accuracy does not fall as the budget rises":
            all(y >= x - 1e-9 for x, y in zip(best_curve, best_curve[1:])),
        "G4 budget kept, every frame by its deadline":
            all(per_budget[b]["budget_kept"] and per_budget[b]["deadlines"] for b in budgets),
    }
    goals = {k: bool(v) for k, v in goals.items()}
    md = summary_markdown(a, budgets, per_budget, names, goals, len(traces), list(links))
    with open(os.path.join(a.out, "summary.md"), "w") as f:
        f.write(md)
    with open(os.path.join(a.out, "summary.json"), "w") as f:
        json.dump({"budgets": per_budget, "goals": goals, "seeds": list(traces),
                   "network_traces": list(links), "frames": a.frames}, f, indent=1)
    plot(a, budgets, per_budget, names)
    if a.docs:
        rewrite_docs(a.docs, md, a)
    print(md)
    print("replay_eval: wrote %s (%.0f s)" % (os.path.join(a.out, "summary.md"), time.time() - started),
          file=sys.stderr)
    return 1 if a.check and not all(goals.values()) else 0


def summary_markdown(a, budgets, per_budget, names, goals, seeds, links):
    out = ["Measured by `scripts/replay_eval.py --frames %d --seeds %d` (%s): %d scene traces "
           "from the Fashion-MNIST test split (seeds %d..%d, %d frames at %g fps), network traces %s, "
           "deadline %s ms, budgets as a share of always-offload's bit/s. Each cell: the mean "
           "accuracy over the %d runs per budget; in brackets the mean paired difference to the "
           "best DeepCut policy at that budget (marked **best**) with its 95%% bootstrap interval, "
           "in points; then mean uplink bytes relative to it." %
           (a.frames, a.seeds, os.path.basename(a.model.rstrip("/")), seeds, a.first_seed,
            a.first_seed + seeds - 1, a.frames, a.fps, ", ".join("`%s`" % l for l in links),
            a.deadline_ms, seeds * len(links)), ""]
    out.append("| policy | " + " | ".join("%s%%" % b for b in budgets) + " |")
    out.append("|---|" + "---|" * len(budgets))
    for n in names:
        cells = []
        for b in budgets:
            r = per_budget[b]["rows"][n]
            if n == per_budget[b]["best"]:
                cells.append("**%.2f%%** best (x1.00 bytes)" % (100 * r["accuracy"]))
            else:
                cells.append("%.2f%% (%+.2f [%+.2f, %+.2f]) x%.2f" % (
                    100 * r["accuracy"], 100 * r["diff_to_best"], 100 * r["ci95"][0],
                    100 * r["ci95"][1], r["bytes_ratio"]))
        out.append("| %s | %s |" % (n, " | ".join(cells)))
    out += ["", "| budget | best DeepCut policy | beaten at <= bytes by | best published baseline "
            "at <= bytes | its errors / best's | of oracle-expected's gain | of oracle's gain | "
            "budget kept | by deadline |", "|---|---|---|---|---|---|---|---|---|"]
    for b in budgets:
        p = per_budget[b]
        out.append("| %s%% | %s | %s | %s | %s | %s | %.3f | %s | %s |" % (
            b, p["best"], ", ".join(p["beaten_by"]) or "none", p["best_published"] or "-",
            "%.2f" % p["error_ratio"] if p["error_ratio"] else "-",
            "%.3f" % p["expected_gain_fraction"] if p["expected_gain_fraction"] else "-",
            p["oracle_gain_fraction"], "yes" if p["budget_kept"] else "NO",
            "yes" if p["deadlines"] else "NO"))
    out += ["", "Goals:", ""] + ["- %s: **%s**" % (k, "holds" if v else "does not hold")
                                 for k, v in goals.items()]
    out += ["", "![accuracy versus budget](replay-accuracy-vs-budget.png)", ""]
    return "\n".join(out) + "\n"


def plot(a, budgets, per_budget, names):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    x = [float(b) for b in budgets]
    fig, ax = plt.subplots(figsize=(8, 5.2))
    drawn = [n for n in names if n not in ("oracle", "oracle-replayed", "always")]
    for i, n in enumerate(drawn):
        y = [100 * per_budget[b]["rows"][n]["accuracy"] for b in budgets]
        style = "-" if n in DEEPCUT else ("--" if n.endswith("+fusion") else ":")
        ax.plot(x, y, style, marker="o" if n in DEEPCUT else ".", lw=2.4 if n in DEEPCUT else 1.2,
                color=plt.cm.tab20(i % 20), label=n)
    for n, ls in (("always", "-."), ("oracle", "-.")):
        if n in names:
            ax.axhline(100 * np.mean([per_budget[b]["rows"][n]["accuracy"] for b in budgets])
                       if n == "always" else 100 * per_budget[budgets[-1]]["rows"][n]["accuracy"],
                       ls=ls, color="grey", lw=0.8)
            ax.text(x[0], 100 * per_budget[budgets[-1]]["rows"][n]["accuracy"], " " + n,
                    color="grey", fontsize=8, va="bottom")
    ax.set_xscale("log")
    ax.set_xticks(x)
    ax.set_xticklabels(["%s%%" % b for b in budgets])
    ax.set_xlabel("uplink budget (share of always-offload's bit/s)")
    ax.set_ylabel("accuracy (%%), mean of %d runs per budget" % per_budget[budgets[0]]["runs"])
    ax.set_title("Accuracy versus budget (test-split scenes, every network trace)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="lower right")
    fig.tight_layout()
    fig.savefig(os.path.join(a.out, "accuracy-vs-budget.png"), dpi=110)
    plt.close(fig)


def rewrite_docs(path, md, a):
    with open(path) as f:
        text = f.read()
    if BEGIN not in text or END not in text:
        raise SystemExit("%s has no generated section (%s ... %s)" % (path, BEGIN, END))
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(head + BEGIN + "\n" + md + END + tail)
    os.replace(tmp, path)
    png = os.path.join(os.path.dirname(path), "replay-accuracy-vs-budget.png")
    import shutil
    shutil.copyfile(os.path.join(a.out, "accuracy-vs-budget.png"), png)


if __name__ == "__main__":
    sys.exit(main())
