#!/usr/bin/python3
"""Plots a deepcut-eval instability report: instability per answer (any two profiles, with the
clean image), and per profile the delivered answer's accuracy and share differing from clean.

    plot_instability.py REPORT.json OUT.png [--compare OTHER.json --labels A,B]
"""
import argparse
import json
import os
import tempfile

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("report")
    p.add_argument("out")
    p.add_argument("--compare", help="a second report (e.g. the robust package) side by side")
    p.add_argument("--labels", default="", help="names of the two reports, comma-separated")
    a = p.parse_args()
    reports = [json.load(open(a.report))] + ([json.load(open(a.compare))] if a.compare else [])
    labels = a.labels.split(",") if a.labels else [os.path.basename(r["model"]) for r in reports]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.8))
    paths = reports[0]["paths"]
    w = 0.8 / len(reports)
    for k, (rep, label) in enumerate(zip(reports, labels)):
        vals = [100 * rep["results"][pth]["instability"] for pth in paths]
        ax1.bar([i + k * w for i in range(len(paths))], vals, w, label=label)
    ax1.set_xticks([i + w * (len(reports) - 1) / 2 for i in range(len(paths))])
    ax1.set_xticklabels(paths, rotation=30, ha="right", fontsize=8)
    ax1.set_ylabel("instability (% of images, any two profiles)")
    ax1.set_title(f"{len(reports[0]['profiles'])} profiles, {reports[0]['frames']} test images")
    ax1.legend()
    names = [pr["name"] for pr in reports[0]["profiles"]]
    for k, (rep, label) in enumerate(zip(reports, labels)):
        d = rep["results"]["delivered"]
        ax2.bar([i + k * w for i in range(len(names))], [100 * d["vs_clean"][n] for n in names], w,
                label=f"{label}: differs from clean")
        ax2.plot([i + k * w for i in range(len(names))], [100 - 100 * d["accuracy"][n] for n in names],
                 "o", label=f"{label}: error rate")
    ax2.set_xticks([i + w * (len(reports) - 1) / 2 for i in range(len(names))])
    ax2.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
    ax2.set_ylabel("% of images (delivered answer)")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    fd, tmp = tempfile.mkstemp(prefix=".plot-", suffix=".png", dir=os.path.dirname(os.path.abspath(a.out)))
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=110)
        os.chmod(tmp, 0o644)
        os.replace(tmp, a.out)
    except BaseException:
        os.unlink(tmp)
        raise


if __name__ == "__main__":
    main()
