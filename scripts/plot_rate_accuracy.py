#!/usr/bin/python3
"""Plots a deepcut-eval rate-accuracy report: accuracy vs bytes per frame (log x)."""
import json
import os
import sys

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

STYLE = {
    "features": ("tab:red", "o", "DeepCut features (codec rates)"),
    "float-split": ("tab:purple", "s", "float32 split + zstd (Neurosurgeon-style)"),
    "png": ("tab:green", "D", "PNG"),
    "jpeg": ("tab:blue", "^", "JPEG q10..95"),
    "webp": ("tab:orange", "v", "WebP q10..95"),
}


def main(report_path, png_path):
    with open(report_path) as f:
        report = json.load(f)
    rows = report["rows"]
    fig, ax = plt.subplots(figsize=(8, 5))
    for method, (color, marker, label) in STYLE.items():
        pts = sorted((r["bytes_per_frame"], 100 * r["accuracy"], r["setting"])
                     for r in rows if r["method"] == method)
        if not pts:
            continue
        xs, ys, names = zip(*pts)
        ax.plot(xs, ys, marker=marker, color=color, label=label, linestyle="-" if len(xs) > 1 else "")
        if method == "features":
            for x, y, n in pts:
                ax.annotate(n, (x, y), textcoords="offset points", xytext=(4, -10), fontsize=7)
    for r in rows:
        if r["method"] == "exit":
            ax.axhline(100 * r["accuracy"], color="gray", linestyle="--",
                       label="edge exit only (0 bytes)")
    goal = report.get("goal", {})
    if goal.get("evaluated"):
        ax.axhline(100 * goal["target_accuracy"], color="black", linestyle=":", linewidth=0.8,
                   label="best input codec − 0.5 pt")
    ax.set_xscale("log")
    ax.set_xlabel("bytes per frame on the wire (request message, headers included)")
    ax.set_ylabel("accuracy on Fashion-MNIST test (%)")
    ax.set_title("DeepCut rate–accuracy, %d test images" % report["frames"])
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    tmp = png_path + ".tmp.png"
    fig.tight_layout()
    fig.savefig(tmp, dpi=120)
    os.replace(tmp, png_path)
    print("plot: wrote", png_path)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: plot_rate_accuracy.py REPORT.json OUT.png")
    main(sys.argv[1], sys.argv[2])
