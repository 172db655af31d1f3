"""deepcut-eval instability on a few hundred test images: the report's figures hold together
(an image differing from clean under a profile counts in the instability with clean; a profile
that changes nothing has 0% against clean); markdown and PNG are written; bad profile files (an
unknown step, a value out of range) are refused with a message and no output. And the C++
profile steps agree with the Python ones the robust fine-tuning trains with."""
import json
import os
import subprocess
import sys

import numpy as np

from harness import main, expect


def profiles_file(env, name, profiles):
    path = os.path.join(env.tmp, name)
    with open(path, "w") as f:
        json.dump({"format": "deepcut-profiles/1", "profiles": profiles}, f)
    return path


def test(env):
    exe = os.path.join(env.args.bin_dir, "eval", "deepcut-eval")
    root = env.args.root
    shipped = json.load(open(os.path.join(root, "eval", "profiles", "phones.json")))["profiles"]
    prof = profiles_file(env, "p.json", shipped[:3] + [
        {"name": "identity", "steps": [{"op": "gain", "value": 1.0}]}])
    out, md, png = (os.path.join(env.tmp, n) for n in ("i.json", "i.md", "i.png"))
    res = subprocess.run([exe, "instability", "--model", env.args.model, "--profiles", prof,
                          "--frames", "300", "--capture-scale", "1",
                          "--out", out, "--markdown", md, "--plot", png],
                         capture_output=True, text=True, timeout=600)
    print(res.stdout, res.stderr[-2000:])
    expect(res.returncode == 0, f"exit {res.returncode}")
    rep = json.load(open(out))
    m = json.load(open(os.path.join(env.args.model, "manifest.json")))
    expect(rep["paths"] == ["exit"] + ["cloud:" + r["name"] for r in m["rates"]] + ["delivered"],
           f"paths {rep['paths']}")
    for path, r in rep["results"].items():
        expect(r["vs_clean"]["identity"] == 0.0, f"{path}: identity differs from clean")
        expect(r["instability_with_clean"] >= max(r["vs_clean"].values()) - 1e-12, f"{path}: with clean")
        expect(r["instability_with_clean"] >= r["instability"], f"{path}: instability")
        expect(abs(r["accuracy"]["identity"] - r["clean_accuracy"]) < 1e-12, f"{path}: identity acc")
        expect(all(0 <= v <= 1 for v in r["pairwise"].values()), f"{path}: pairwise")
    d = rep["results"]["delivered"]
    expect(0.1 < d["offload_fraction"]["clean"] < 0.45, f"offload fraction {d['offload_fraction']}")
    expect(rep["results"]["exit"]["instability"] > 0, "the exit is stable under JPEG, noise and WB?")
    expect(os.path.getsize(png) > 1000 and os.path.getsize(md) > 300, "plot / markdown")

    # At the default capture scale the profiles act on the upscaled image (a camera's
    # resolution); an identity profile then differs from the clean view by the capture only.
    out4 = os.path.join(env.tmp, "i4.json")
    res = subprocess.run([exe, "instability", "--model", env.args.model, "--profiles", prof,
                          "--frames", "200", "--out", out4], capture_output=True, text=True, timeout=600)
    expect(res.returncode == 0, f"scale 4: exit {res.returncode}: {res.stderr[-500:]}")
    rep4 = json.load(open(out4))
    expect(rep4["capture_scale"] == 4, "the default capture scale is recorded")
    d4 = rep4["results"]["delivered"]
    expect(d4["vs_clean"]["identity"] < 0.05, f"capture alone changes {d4['vs_clean']['identity']}")
    expect(d4["accuracy"]["identity"] > 0.85, f"accuracy through the capture {d4['accuracy']}")

    for name, steps, needle in [
            ("unknown", [{"op": "vignette", "value": 1}], 'unknown step "vignette"'),
            ("range", [{"op": "jpeg", "quality": 0}], "quality = 0 is out of range")]:
        bad = profiles_file(env, name + ".json", [{"name": name, "steps": steps}])
        o = os.path.join(env.tmp, name + "-out.json")
        res = subprocess.run([exe, "instability", "--model", env.args.model, "--profiles", bad,
                              "--out", o], capture_output=True, text=True, timeout=120)
        expect(res.returncode == 2 and needle in res.stderr, f"{name}: {res.returncode} {res.stderr}")
        expect(not os.path.exists(o), f"{name}: output written")

    # C++ (deepcut-eval apply-profile) and Python (splitnet/training/profiles.py) agree.
    import cv2
    sys.path.insert(0, os.path.join(root, "splitnet", "training"))
    import data
    import profiles
    img = cv2.resize(data.load_split(data.DEFAULT_DATA_DIR, "t10k")[0][0], (40, 36))
    colour = np.stack([img, (img * 0.7).astype(np.uint8), np.clip(img.astype(int) + 30, 0, 255).astype(np.uint8)], 2)
    src = os.path.join(env.tmp, "src.png")
    cv2.imwrite(src, colour)
    steps = [{"op": "gain", "value": 1.3}, {"op": "channel_gain", "b": 0.9, "g": 1.0, "r": 1.1},
             {"op": "gamma", "value": 0.8}, {"op": "blur", "sigma": 0.9},
             {"op": "sharpen", "amount": 0.6, "sigma": 1.0},
             {"op": "resize", "scale": 0.5, "down": "area", "up": "cubic"},
             {"op": "jpeg", "quality": 70}, {"op": "webp", "quality": 60}]
    each = [{"name": s["op"], "steps": [s]} for s in steps]
    pf = profiles_file(env, "agree.json", each + [{"name": "all", "steps": steps}])
    for p in each + [{"name": "all", "steps": steps}]:
        o = os.path.join(env.tmp, "cpp-" + p["name"] + ".png")
        res = subprocess.run([exe, "apply-profile", "--profiles", pf, "--profile", p["name"],
                              "--image", src, "--out", o], capture_output=True, text=True, timeout=60)
        expect(res.returncode == 0, f"apply-profile {p['name']}: {res.stderr}")
        cpp = cv2.imread(o, cv2.IMREAD_UNCHANGED).astype(int)
        py = profiles.apply(p, colour, np.random.default_rng(0)).astype(int)
        diff = np.abs(cpp - py)
        print(f"profile step {p['name']}: max diff {diff.max()}, mean {diff.mean():.4f}")
        expect(diff.max() <= 1 and diff.mean() < 0.01, f"{p['name']}: C++ and Python differ")


if __name__ == "__main__":
    main(test)
