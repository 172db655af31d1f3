#!/usr/bin/env python3
"""Check a deepcut-model/1 package using OpenCV dnn only (as the C++ runtime would).

Reads manifest.json, runs head -> codec (per docs/model-package.md) -> tail and the exit
through cv2.dnn on the Fashion-MNIST test images, and compares the accuracies with
provenance.metrics. Also checks that batch 1 and batch 8 give the same outputs, and the
calibration bins' shape. Exit code 0 when everything matches.

  /usr/bin/python3 splitnet/training/verify_package.py models/fmnist
"""
import argparse
import json
import os
import sys

import cv2
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data  # noqa: E402


def load(pkg, key, manifest):
    net = cv2.dnn.readNetFromONNX(os.path.join(pkg, manifest["files"][key]))
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    return net


def run(net, x, batch=500):
    outs = []
    for i in range(0, len(x), batch):
        net.setInput(np.ascontiguousarray(x[i:i + batch], dtype=np.float32))
        outs.append(net.forward().copy())
    return np.concatenate(outs)


def codec(feat, bits, channels, lo, hi, fill):
    levels = (1 << bits) - 1
    q = np.clip(np.round((feat - lo) / (hi - lo) * levels), 0, levels)
    out = lo + q * (hi - lo) / levels
    out[:, channels:] = fill
    return out.astype(np.float32)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("package", help="package directory")
    p.add_argument("--data-dir", default=data.DEFAULT_DATA_DIR)
    p.add_argument("--tolerance", type=float, default=0.002, help="allowed accuracy difference")
    p.add_argument("--max-outside", type=float, default=0.001,
                   help="baseline packages (provenance.kind baseline): allowed fraction of head "
                        "outputs outside [bottleneck.min, max]")
    args = p.parse_args()

    m = json.load(open(os.path.join(args.package, "manifest.json")))
    assert m["format"] == "deepcut-model/1"
    inp, bn = m["input"], m["bottleneck"]
    xs, ys = data.load_split(args.data_dir, "t10k")
    x = ((xs.astype(np.float32) * inp["scale"] - inp["mean"][0]) / inp["std"][0])[:, None]
    head, exit_, tail = (load(args.package, k, m) for k in ("head", "exit", "tail"))
    ok = True

    feat = run(head, x)
    expect = (len(x), bn["channels"], bn["height"], bn["width"])
    outside = float(((feat < bn["min"]) | (feat > bn["max"])).mean())
    print(f"head output {feat.shape} range [{feat.min():.4f}, {feat.max():.4f}], "
          f"bottleneck [{bn['min']:g}, {bn['max']:g}], {100 * outside:.4f}% of values outside")
    ok &= feat.shape == expect
    # A baseline's unbounded ReLU features may rarely exceed max (the codec clamps them);
    # a learned (sigmoid) bottleneck must lie in its range.
    ok &= outside <= (args.max_outside if m["provenance"].get("kind") == "baseline" else 0.0)

    # batch 1 vs batch 8
    for name, net, xin in (("head", head, x[:8]), ("exit", exit_, feat[:8]), ("tail", tail, feat[:8])):
        b8 = run(net, xin, batch=8)
        b1 = np.concatenate([run(net, xin[i:i + 1]) for i in range(8)])
        d = float(np.abs(b8 - b1).max())
        print(f"{name}: batch1 vs batch8 max abs diff {d:.2e}")
        ok &= d < 1e-4

    metrics = m["provenance"]["metrics"]
    n = metrics["test_images"]
    ys = ys[:n]
    print(f"{'rate':8s} {'cv2 acc':>8s} {'manifest':>8s}")
    for r in m["rates"]:
        logits = run(tail, codec(feat[:n], r["bits"], r["channels"], bn["min"], bn["max"], bn["fill"]))
        acc = float((logits.argmax(1) == ys).mean())
        want = metrics["tail_accuracy"][r["name"]]
        print(f"{r['name']:8s} {100 * acc:8.2f} {100 * want:8.2f}")
        ok &= abs(acc - want) <= args.tolerance
    acc = float((run(tail, feat[:n]).argmax(1) == ys).mean())
    print(f"{'float':8s} {100 * acc:8.2f} {100 * metrics['float_tail_accuracy']:8.2f}")
    ok &= abs(acc - metrics["float_tail_accuracy"]) <= args.tolerance
    acc = float((run(exit_, feat[:n]).argmax(1) == ys).mean())
    print(f"{'exit':8s} {100 * acc:8.2f} {100 * metrics['exit_accuracy']:8.2f}")
    ok &= abs(acc - metrics["exit_accuracy"]) <= args.tolerance

    bins = m["exit_calibration"]["bins"]
    ok &= bins[0]["confidence_min"] == 0.0 and bins[-1]["confidence_max"] == 1.0
    ok &= all(a["confidence_max"] == b["confidence_min"] for a, b in zip(bins, bins[1:]))
    ok &= all(b["confidence_min"] < b["confidence_max"] for b in bins)
    ok &= m["default_rate"] in {r["name"] for r in m["rates"]}
    print("OK" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
