#!/usr/bin/python3
"""Fits the learned entropy model of a package and writes it into its manifest.

For every rate of at most 4 bits: per channel, the frequency of each quantised
symbol given its left and upper neighbours (left-up-context/1 in
docs/model-package.md), counted on the training images through the package's own
head.onnx in OpenCV dnn (exactly what the C++ runtime computes), smoothed, and
scaled to integers >= 1 summing to 4096.

    /usr/bin/python3 splitnet/training/fit_entropy.py --package models/fmnist

Uses the training split only (the test images stay unseen). Rewrites
manifest.json atomically; the command is recorded in provenance.
"""
import argparse
import json
import os
import sys
import time

import cv2
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data  # noqa: E402

TOTAL = 4096


def scale_to_total(counts):
    """Integer frequencies >= 1 summing to TOTAL, proportional to counts."""
    p = counts / counts.sum()
    f = np.maximum(1, np.floor(p * TOTAL).astype(np.int64))
    while f.sum() > TOTAL:
        f[np.argmax(f)] -= 1
    while f.sum() < TOTAL:
        f[np.argmax(p * TOTAL - f)] += 1
    assert f.min() >= 1 and f.sum() == TOTAL
    return f


def head_features(package, images, manifest):
    net = cv2.dnn.readNetFromONNX(os.path.join(package, manifest["files"]["head"]))
    inp = manifest["input"]
    out = []
    for i in range(0, len(images), 1000):
        x = images[i:i + 1000].astype(np.float32) * inp["scale"]
        x = (x - inp["mean"][0]) / inp["std"][0]
        net.setInput(x[:, None])
        out.append(net.forward().copy())
        done = min(i + 1000, len(images))
        if done % 10000 == 0 or done == len(images):
            print("fit_entropy: features %d/%d" % (done, len(images)), file=sys.stderr)
    return np.concatenate(out)


def fit_rate(z, rate, lo, hi, smoothing):
    bits, ch = rate["bits"], rate["channels"]
    levels = (1 << bits) - 1
    q = np.clip(np.round((z[:, :ch] - lo) / (hi - lo) * levels), 0, levels).astype(np.int64)
    s = levels + 1
    n, _, h, w = q.shape
    left = np.full_like(q, s)
    left[:, :, :, 1:] = q[:, :, :, :-1]
    up = np.full_like(q, s)
    up[:, :, 1:, :] = q[:, :, :-1, :]
    ctx = left * (s + 1) + up
    tables, bits_total = [], 0.0
    for c in range(ch):
        counts = np.full(((s + 1) * (s + 1), s), smoothing)
        np.add.at(counts, (ctx[:, c].ravel(), q[:, c].ravel()), 1)
        freqs = np.stack([scale_to_total(row) for row in counts])
        tables.append(freqs.tolist())
        p = freqs / TOTAL
        bits_total += -np.log2(p[ctx[:, c].ravel(), q[:, c].ravel()]).sum()
    return tables, bits_total / n / 8


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--package", required=True, help="model package directory")
    ap.add_argument("--data-dir", default=data.DEFAULT_DATA_DIR)
    ap.add_argument("--images", type=int, default=60000, help="training images to count on")
    ap.add_argument("--smoothing", type=float, default=0.5, help="pseudo-count per symbol")
    args = ap.parse_args()
    t0 = time.time()
    path = os.path.join(args.package, "manifest.json")
    with open(path) as f:
        manifest = json.load(f)
    images, _ = data.load_split(args.data_dir, "train")
    images = images[:args.images]
    z = head_features(args.package, images, manifest)
    b = manifest["bottleneck"]
    rates = {}
    print("rate      raw B   fitted B (train)", file=sys.stderr)
    for rate in manifest["rates"]:
        if rate["bits"] > 4:
            continue
        tables, nbytes = fit_rate(z, rate, b["min"], b["max"], args.smoothing)
        rates[rate["name"]] = tables
        raw = rate["bits"] * rate["channels"] * b["height"] * b["width"] / 8
        print("%-8s %6.1f   %6.1f" % (rate["name"], raw, nbytes), file=sys.stderr)
    manifest["entropy_model"] = {"kind": "left-up-context/1", "total_bits": 12, "rates": rates}
    manifest.setdefault("provenance", {})["entropy_model_command"] = " ".join(
        ["/usr/bin/python3"] + [os.path.relpath(sys.argv[0])] + sys.argv[1:])
    manifest["provenance"]["entropy_model_images"] = int(len(images))
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)
    print("fit_entropy: wrote %s in %.1f s" % (path, time.time() - t0), file=sys.stderr)


if __name__ == "__main__":
    main()
