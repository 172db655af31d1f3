"""deepcut-eval rate-accuracy on a few hundred test images: every method's row
is there with real byte counts, the JSON, markdown and PNG are written, and a bad
model directory is refused without leaving output behind."""
import json
import os
import subprocess

from harness import main, expect


def test(env):
    root = env.args.root
    exe = os.path.join(env.args.bin_dir, "eval", "deepcut-eval")
    baseline = os.path.join(root, "models", "fmnist-baseline")
    out = os.path.join(env.tmp, "ra.json")
    md = os.path.join(env.tmp, "ra.md")
    png = os.path.join(env.tmp, "ra.png")
    cmd = [exe, "rate-accuracy", "--model", env.args.model, "--frames", "300",
           "--out", out, "--markdown", md, "--plot", png]
    has_baseline = os.path.isdir(baseline)
    if has_baseline:
        cmd += ["--baseline", baseline]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    print(res.stdout, res.stderr[-2000:])
    expect(res.returncode == 0, "deepcut-eval exited with %d" % res.returncode)
    with open(out) as f:
        report = json.load(f)
    rows = report["rows"]
    methods = {r["method"] for r in rows}
    expect({"features", "exit"} <= methods, "missing rows: %s" % methods)
    if has_baseline:
        expect({"png", "jpeg", "webp", "float-split"} <= methods, "missing baselines: %s" % methods)
        expect(len([r for r in rows if r["method"] == "jpeg"]) == 10, "JPEG qualities 10..95")
        expect(report["goal"]["evaluated"], "goal not evaluated")
    with open(os.path.join(env.args.model, "manifest.json")) as f:
        rates = [r["name"] for r in json.load(f)["rates"]]
    expect([r["setting"] for r in rows if r["method"] == "features"] == rates, "one row per rate")
    for r in rows:
        expect(0.0 <= r["accuracy"] <= 1.0, "accuracy out of range: %s" % r)
        if r["method"] != "exit":
            # The wire message is the payload plus a header of a few bytes.
            expect(r["bytes_per_frame"] > r["payload_bytes_per_frame"] > 0, "bytes: %s" % r)
    expect(os.path.getsize(png) > 1000 and os.path.getsize(md) > 100, "plot/markdown not written")

    bad = os.path.join(env.tmp, "bad.json")
    res = subprocess.run([exe, "rate-accuracy", "--model", "/no/such/model", "--out", bad],
                         capture_output=True, text=True, timeout=60)
    expect(res.returncode != 0 and "manifest" in res.stderr, "bad model: %s" % res.stderr)
    expect(not os.path.exists(bad), "output written for a failed run")


if __name__ == "__main__":
    main(test)
