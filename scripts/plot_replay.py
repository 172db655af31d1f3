#!/usr/bin/python3
"""Plots deepcut-replay reports: accuracy vs uplink bit/s, one point per policy.

Usage: plot_replay.py REPORT.json [REPORT.json ...] OUT.png
Several reports (e.g. the same trace at several budgets) go on one plot; the
points of one policy are joined across them.
"""
import json
import os
import sys

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

STYLE = {
    "deepcut": ("tab:red", "o"),
    "oracle": ("black", "*"),
    "oracle-replayed": ("gray", "*"),
    "always": ("tab:purple", "s"),
    "edge-only": ("tab:brown", "X"),
    "periodic": ("tab:blue", "^"),
    "random": ("tab:olive", "v"),
    "confidence": ("tab:green", "D"),
    "framediff": ("tab:orange", "P"),
}


def main(paths, out):
    reports = []
    for p in paths:
        with open(p) as f:
            reports.append(json.load(f))
    fig, ax = plt.subplots(figsize=(8, 5))
    for name, (color, marker) in STYLE.items():
        pts = []
        for r in reports:
            m = r["policies"].get(name)
            if m is None or m.get("accuracy") is None:
                continue
            pts.append((max(m["uplink_bps"], 1.0) / 1e3, 100 * m["accuracy"]))
        if not pts:
            continue
        pts.sort()
        xs, ys = zip(*pts)
        ax.plot(xs, ys, color=color, marker=marker, linestyle="-" if len(pts) > 1 else "none",
                label=name, markersize=9 if marker == "*" else 6)
    for r in reports:
        if r.get("budget_bps", 0) > 0:
            ax.axvline(r["budget_bps"] / 1e3, color="lightgray", linestyle=":", zorder=0)
    ax.set_xscale("log")
    ax.set_xlabel("uplink kbit/s (bytes actually sent, headers included; log)")
    ax.set_ylabel("accuracy (%)")
    first = reports[0]
    ax.set_title("Replay: %s over %s" % (os.path.basename(first.get("source", first.get("frames", ""))),
                                         os.path.basename(first["uplink"]["trace"])))
    ax.grid(True, which="both", alpha=0.3)
    # edge-only sends nothing: it sits at the left edge (1 bit/s on the log axis).
    ax.legend(loc="center left", fontsize=8)
    fig.tight_layout()
    tmp = out + ".tmp.png"
    fig.savefig(tmp, dpi=120)
    os.replace(tmp, out)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(sys.argv[1:-1], sys.argv[-1])
