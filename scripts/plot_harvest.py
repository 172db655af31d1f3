#!/usr/bin/python3
"""Plots deepcut-eval harvest reports: the exit's accuracy after fine-tuning against the frames
stored, one line per sampler (mean over seeds, 95% interval), the accuracy before as a dashed
line; one panel per report (e.g. one per shift).

    plot_harvest.py REPORT.json [MORE.json ...] OUT.png
"""
import json
import os
import sys
import tempfile

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLOURS = {"harvest": "tab:red", "uncertainty": "tab:orange", "random": "tab:blue",
           "periodic": "tab:green"}


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    reports = [json.load(open(p)) for p in sys.argv[1:-1]]
    out = sys.argv[-1]
    fig, axes = plt.subplots(1, len(reports), figsize=(6.2 * len(reports), 4.6), squeeze=False)
    for ax, r in zip(axes[0], reports):
        for name, s in r["samplers"].items():
            xs = [c["stored_frames"] for c in s["curve"]]
            ys = [100 * c["accuracy_after"] for c in s["curve"]]
            err = [100 * c["accuracy_after_ci95"] for c in s["curve"]]
            ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=name,
                        color=COLOURS.get(name))
        ax.axhline(100 * r["accuracy_before"]["exit"], ls="--", color="gray", label="before")
        ax.set_xscale("log")
        ax.set_xlabel("frames stored (mean over seeds)")
        ax.set_ylabel("exit accuracy after fine-tuning (%)")
        ax.set_title("%s under %s, seeds %s" % (r["model"], r["shift"]["name"],
                                               ",".join(map(str, r["seeds"]))))
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    # Written next to the target and moved into place: no partial PNG.
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(out)), suffix=".png")
    os.close(fd)
    fig.savefig(tmp, dpi=110)
    os.chmod(tmp, 0o644)  # mkstemp makes it private
    os.replace(tmp, out)


if __name__ == "__main__":
    main()
