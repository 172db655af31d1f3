"""The committed rate-accuracy table (docs/rate-accuracy.json) is reproduced by
running the command again on the committed packages: every row's accuracy
within 0.1 points and its bytes per frame within 0.5 bytes."""
import json
import os
import subprocess

from harness import main, expect


def test(env):
    root = env.args.root
    committed_path = os.path.join(root, "docs", "rate-accuracy.json")
    with open(committed_path) as f:
        committed = json.load(f)
    out = os.path.join(env.tmp, "ra.json")
    cmd = [os.path.join(env.args.bin_dir, "eval", "deepcut-eval"), "rate-accuracy",
           "--model", os.path.join(root, "models", "fmnist"),
           "--baseline", os.path.join(root, "models", "fmnist-baseline"), "--out", out]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    print(res.stdout)
    expect(res.returncode == 0, "deepcut-eval failed: %s" % res.stderr[-2000:])
    with open(out) as f:
        fresh = json.load(f)
    expect(fresh["frames"] == committed["frames"] == 10000, "not the full test set")
    key = lambda r: (r["method"], r["setting"])
    old = {key(r): r for r in committed["rows"]}
    new = {key(r): r for r in fresh["rows"]}
    expect(set(old) == set(new), "rows differ: %s" % (set(old) ^ set(new)))
    for k, r in new.items():
        expect(abs(r["accuracy"] - old[k]["accuracy"]) <= 0.001,
               "%s accuracy %.4f vs committed %.4f" % (k, r["accuracy"], old[k]["accuracy"]))
        expect(abs(r["bytes_per_frame"] - old[k]["bytes_per_frame"]) <= 0.5,
               "%s bytes %.2f vs committed %.2f" % (k, r["bytes_per_frame"],
                                                    old[k]["bytes_per_frame"]))
    expect(fresh["goal"]["met"] == committed["goal"]["met"], "goal verdict changed")


if __name__ == "__main__":
    main(test)
