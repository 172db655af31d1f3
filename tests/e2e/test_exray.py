"""Deployment visibility end to end: deepcut-edge --exray-out records, deepcut-exray validate
compares with the reference package. The unmodified package validates with no finding; each bug
injected into a copy of the package (or the edge's pre-processing settings) is reported with
ok false and its first divergence at the right stage (and layer, for the weight); bad input (a
log from another model, a truncated file, a bad rule file) is refused with a message and no
report is written. The frames are colour and of another size than the model's, so channel order
and the resize interpolation matter."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np

from harness import main, expect

FRAMES = 45
EVERY = 3


def make_frames(env):
    """Colour frames (42 x 57: not a whole multiple of 28) from Fashion-MNIST test images,
    each channel with its own gain so that the channel order changes the gray image."""
    import cv2
    sys.path.insert(0, os.path.join(env.args.root, "splitnet", "training"))
    import data
    x, _ = data.load_split(data.DEFAULT_DATA_DIR, "t10k")
    d = os.path.join(env.tmp, "frames")
    os.makedirs(d)
    for i in range(FRAMES):
        big = cv2.resize(x[i], (57, 42), interpolation=cv2.INTER_CUBIC).astype(np.float32)
        bgr = np.stack([big * 0.35, big * 0.8, np.clip(big * 1.1 + 20, 0, 255)], axis=2)
        cv2.imwrite(os.path.join(d, f"{i:04d}.png"), np.clip(bgr, 0, 255).astype(np.uint8))
    return d


def record(env, model, frames, name, cloud=None, policy="edge-only"):
    log = os.path.join(env.tmp, "log-" + name)
    cmd = [env.edge_bin, "--cloud", cloud or "tcp://127.0.0.1:1", "--model", model,
           "--source", "images:" + frames, "--policy", policy, "--progress", "off",
           "--exray-out", log, "--exray-every", str(EVERY),
           "--summary", os.path.join(env.tmp, name + "-summary.json")]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    expect(res.returncode == 0, f"{name}: edge exited {res.returncode}: {res.stderr[-2000:]}")
    with open(os.path.join(env.tmp, name + "-summary.json")) as f:
        ex = json.load(f)["exray"]
    expect(ex["recorded"] == FRAMES // EVERY and ex["skipped"] == 0 and ex["failed"] == 0,
           f"{name}: recorder counters {ex}")
    return log


def validate(env, log, reference, name, extra=()):
    exe = os.path.join(env.args.bin_dir, "exray", "deepcut-exray")
    out = os.path.join(env.tmp, name + "-report.json")
    md = os.path.join(env.tmp, name + "-report.md")
    cmd = [exe, "validate", "--log", log, "--reference", reference, "--out", out,
           "--markdown", md, *extra]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    return res, out, md


def copy_package(env, name, edit_manifest=None):
    d = os.path.join(env.tmp, "pkg-" + name)
    shutil.copytree(env.args.model, d)
    if edit_manifest:
        with open(os.path.join(d, "manifest.json")) as f:
            m = json.load(f)
        edit_manifest(m)
        with open(os.path.join(d, "manifest.json"), "w") as f:
            json.dump(m, f)
    return d


def perturb_weight(pkg, tensor):
    import onnx
    import onnx.numpy_helper
    path = os.path.join(pkg, "head.onnx")
    m = onnx.load(path)
    for init in m.graph.initializer:
        if init.name == tensor:
            w = onnx.numpy_helper.to_array(init).copy()
            w += np.random.default_rng(3).normal(0, 0.3 * w.std(), w.shape).astype(w.dtype)
            init.CopyFrom(onnx.numpy_helper.from_array(w, tensor))
    onnx.save(m, path)


def test(env):
    ref = env.args.model
    frames = make_frames(env)
    png = os.path.join(env.tmp, "clean.png")

    # The unmodified package, offloading to a real cloud: no finding.
    _, endpoint = env.start_cloud()
    log = record(env, ref, frames, "clean", cloud=endpoint, policy="always")
    res, out, md = validate(env, log, ref, "clean", ["--plot", png])
    print(res.stdout[-3000:], res.stderr[-2000:])
    expect(res.returncode == 0, f"clean: exit {res.returncode}: {res.stderr}")
    with open(out) as f:
        rep = json.load(f)
    expect(rep["ok"] and rep["findings"] == [] and rep["first_divergence"] is None,
           f"clean package has findings: {rep['findings']}")
    expect(rep["records"] == FRAMES // EVERY, "records")
    with open(os.path.join(log, "index.jsonl")) as f:
        index = [json.loads(line) for line in f]
    expect(all(r["offloaded"] and r["route"] == "offload" for r in index),
           "always: every record offloaded")
    expect(rep["answer_agreement"]["end_to_end"] == 1.0, "answers agree")
    expect(os.path.getsize(png) > 1000 and os.path.getsize(md) > 200, "plot / markdown")
    expect(len(rep["latency"]["layers"]) >= 10, "a latency row per layer")

    bugs = [
        ("channel-order", lambda m: m["input"].update(channel_order="rgb"), None,
         "preprocess", None, "channel_order"),
        ("normalisation", lambda m: m["input"].update(mean=[0.4], std=[0.3]), None,
         "preprocess", None, "normalisation"),
        ("0-255", lambda m: m["input"].update(scale=1.0), None, "preprocess", None, "value_range"),
        ("interpolation", lambda m: m["input"].update(interpolation="linear"), None,
         "preprocess", None, "resize_interpolation"),
        ("rate-range", lambda m: m["bottleneck"].update(max=0.5), None,
         "quantize", None, "quantizer_range"),
        ("head-weight", None, "net.5.weight", "head", "onnx_node!/net/net.5/Conv",
         "layer_divergence"),
    ]
    table = []
    for name, edit, weight, stage, layer, check in bugs:
        pkg = copy_package(env, name, edit)
        if weight:
            perturb_weight(pkg, weight)
        log = record(env, pkg, frames, name)
        res, out, _ = validate(env, log, ref, name)
        expect(res.returncode == 0, f"{name}: exit {res.returncode}: {res.stderr}")
        with open(out) as f:
            rep = json.load(f)
        fd = rep["first_divergence"]
        table.append((name, rep["ok"], fd, [f["check"] for f in rep["findings"]]))
        expect(not rep["ok"], f"{name}: reported ok")
        expect(fd is not None and fd["stage"] == stage, f"{name}: first divergence {fd}, want {stage}")
        if layer:
            expect(fd["layer"] == layer, f"{name}: layer {fd['layer']}, want {layer}")
        expect(rep["findings"][0]["check"] == check,
               f"{name}: first finding {rep['findings'][0]}, want check {check}")
    for row in table:
        print("bug %-14s ok=%s first=%s checks=%s" % row)

    # A user rule that fails on the clean log: the input must lie in [0, 1] (it does not:
    # it is normalised), and a good one that holds.
    rules = os.path.join(env.tmp, "rules.json")
    with open(rules, "w") as f:
        json.dump({"format": "deepcut-exray-rules/1", "rules": [
            {"name": "input-0-1", "stage": "preprocess", "check": "range", "min": 0, "max": 1},
            {"name": "features-finite", "stage": "head", "layer": "features", "check": "finite"}]}, f)
    res, out, _ = validate(env, os.path.join(env.tmp, "log-clean"), ref, "rules", ["--rules", rules])
    with open(out) as f:
        rep = json.load(f)
    expect(not rep["ok"] and [x["check"] for x in rep["findings"]] == ["rule:input-0-1"],
           f"rules: {rep['findings']}")

    # Bad input: nothing written, exit 2, a message naming the problem.
    def refused(args, what, needle):
        out = os.path.join(env.tmp, what + "-bad.json")
        exe = os.path.join(env.args.bin_dir, "exray", "deepcut-exray")
        res = subprocess.run([exe, "validate", *args, "--out", out], capture_output=True,
                             text=True, timeout=120)
        expect(res.returncode == 2 and needle in res.stderr, f"{what}: {res.returncode} {res.stderr}")
        expect(not os.path.exists(out), f"{what}: a report was written")

    baseline = os.path.join(env.args.root, "models", "fmnist-baseline")
    if os.path.isdir(baseline):
        other = record(env, baseline, frames, "baseline")
        refused(["--log", other, "--reference", ref], "other-model", "another model")
    trunc = os.path.join(env.tmp, "log-trunc")
    shutil.copytree(os.path.join(env.tmp, "log-clean"), trunc)
    victim = os.path.join(trunc, index[2]["file"])
    with open(victim, "r+b") as f:
        f.truncate(os.path.getsize(victim) - 100)
    refused(["--log", trunc, "--reference", ref], "truncated", "not a whole .npz file")
    with open(rules, "w") as f:
        json.dump({"format": "deepcut-exray-rules/1", "rules": [{"stage": "tail", "check": "range"}]}, f)
    refused(["--log", log, "--reference", ref, "--rules", rules], "bad-rule", "stage must be one of")
    refused(["--log", env.tmp, "--reference", ref], "not-a-log", "no log.json")

    # The recorder refuses a directory that is not empty.
    res = subprocess.run([env.edge_bin, "--cloud", "tcp://127.0.0.1:1", "--model", ref,
                          "--source", "images:" + frames, "--policy", "edge-only",
                          "--exray-out", log, "--progress", "off"],
                         capture_output=True, text=True, timeout=120)
    expect(res.returncode == 2 and "not empty" in res.stderr, f"non-empty dir: {res.stderr}")


if __name__ == "__main__":
    main(test)
