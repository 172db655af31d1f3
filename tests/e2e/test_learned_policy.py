"""The learned policy: its C++ network against numpy on fixed inputs (random
weights, and the package's own policy.json), a short training run in the replay
that writes a loadable weights file with its provenance and keeps the budget
when replayed, and bad weight files refused with a message naming what is
wrong (exit code 2, no output file)."""
import json
import os
import subprocess

import numpy as np

from harness import main, expect

INPUTS = ["exit_error", "expected_cloud", "fused_confidence", "scene_exit_frames",
          "scene_cloud_frames", "reuse_probability", "since_offload", "bucket_fill",
          "budget_share", "latency_share", "in_flight_share", "bias_one"]


def run(cmd, timeout=900):
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    print(" ".join(cmd), "->", res.returncode)
    print(res.stdout[-2000:], res.stderr[-2000:])
    return res


def numpy_scores(weights, x):
    h = x
    layers = weights["layers"]
    for k, layer in enumerate(layers):
        h = h @ np.array(layer["weights"], dtype=np.float64).T + np.array(layer["bias"])
        if k + 1 < len(layers):
            h = np.tanh(h)
    return h[:, 0]


def check_against_numpy(env, trainer, weights, name):
    rng = np.random.default_rng(7)
    x = rng.uniform(-1.0, 1.5, size=(64, len(INPUTS)))
    x[:, -1] = 1.0
    wfile = os.path.join(env.tmp, name + ".json")
    with open(wfile, "w") as f:
        json.dump(weights, f)
    xfile = os.path.join(env.tmp, name + ".csv")
    np.savetxt(xfile, x, delimiter=",", fmt="%.17g")
    res = run([trainer, "--score-inputs", xfile, "--weights", wfile])
    expect(res.returncode == 0, "scoring %s failed" % name)
    cpp = np.array([float(v) for v in res.stdout.split()])
    ref = numpy_scores(weights, x)
    expect(cpp.shape == ref.shape, "%s: %d scores for %d rows" % (name, cpp.size, ref.size))
    err = np.max(np.abs(cpp - ref))
    print("%s: max |C++ - numpy| = %.3g" % (name, err))
    expect(err < 1e-9, "%s: C++ and numpy differ by %.3g" % (name, err))


def random_weights(rng, sizes):
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers.append({"weights": rng.normal(0, 1, size=(b, a)).tolist(),
                       "bias": rng.normal(0, 0.5, size=b).tolist()})
    return {"format": "deepcut-policy/1", "inputs": INPUTS, "layers": layers, "provenance": {}}


def test(env):
    bins = env.args.bin_dir
    trainer = os.path.join(bins, "replay", "deepcut-train-policy")
    replay = os.path.join(bins, "replay", "deepcut-replay")
    trace_exe = os.path.join(bins, "trace", "deepcut-trace")
    rng = np.random.default_rng(1)
    check_against_numpy(env, trainer, random_weights(rng, [12, 8, 1]), "one-hidden")
    check_against_numpy(env, trainer, random_weights(rng, [12, 6, 4, 1]), "two-hidden")
    package_policy = os.path.join(env.args.model, "policy.json")
    if os.path.exists(package_policy):
        with open(package_policy) as f:
            check_against_numpy(env, trainer, json.load(f), "package")

    # A short training run on a training-split scene trace.
    frames = os.path.join(env.tmp, "train.dctrace")
    res = run([trace_exe, "make", "--split", "train", "--frames", "400", "--seed", "5",
               "--out", frames])
    expect(res.returncode == 0, "deepcut-trace make failed")
    out = os.path.join(env.tmp, "policy.json")
    res = run([trainer, "--model", env.args.model, "--source", "trace:" + frames,
               "--uplink", "2M", "--budgets", "10,50", "--iterations", "2", "--population", "3",
               "--elite", "1", "--episodes", "1", "--hidden", "4", "--out", out])
    expect(res.returncode == 0, "training failed")
    expect("iteration 2/2" in res.stderr, "no progress per iteration")
    with open(out) as f:
        trained = json.load(f)
    prov = trained["provenance"]
    for key in ("command", "sources", "uplinks", "budget_percents", "history", "training_seconds"):
        expect(key in prov, "provenance lacks %s" % key)
    expect(len(prov["history"]) == 2, "history has %d iterations" % len(prov["history"]))
    check_against_numpy(env, trainer, trained, "trained")
    report = os.path.join(env.tmp, "learned.json")
    res = run([replay, "--model", env.args.model, "--source", "trace:" + frames, "--uplink", "2M",
               "--budget", "25%", "--policy", "learned", "--policy-weights", out, "--out", report])
    expect(res.returncode == 0, "replaying the learned policy failed")
    with open(report) as f:
        r = json.load(f)
    m = r["policies"]["learned"]
    expect(m["frames"] == 400 and m["answered_by_deadline"] == 1.0, "learned: frames or deadlines")
    expect(m["uplink_bps"] <= 1.05 * r["budget_bps"], "learned over budget")

    # Bad weight files: refused before any work, naming the problem.
    bad = dict(trained)
    bad["layers"] = [dict(trained["layers"][0]), trained["layers"][1]]
    bad["layers"][0]["bias"] = bad["layers"][0]["bias"][:-1]
    cases = {
        "bias": bad,
        "format": dict(trained, format="deepcut-policy/9"),
        "inputs[0]": dict(trained, inputs=["exit_confidence"] + INPUTS[1:]),
    }
    for needle, weights in cases.items():
        wfile = os.path.join(env.tmp, "bad.json")
        with open(wfile, "w") as f:
            json.dump(weights, f)
        target = os.path.join(env.tmp, "never.json")
        res = run([replay, "--model", env.args.model, "--source", "trace:" + frames, "--uplink",
                   "2M", "--policy", "learned", "--policy-weights", wfile, "--out", target])
        expect(res.returncode == 2, "bad weights (%s): exit %d, not 2" % (needle, res.returncode))
        expect(needle in res.stderr, "the error does not name %s: %s" % (needle, res.stderr))
        expect(not os.path.exists(target), "a report was written for bad weights")
    res = run([replay, "--model", env.args.model, "--source", "trace:" + frames, "--uplink", "2M",
               "--policy", "learned", "--policy-weights", os.path.join(env.tmp, "absent.json"),
               "--out", os.path.join(env.tmp, "never.json")])
    expect(res.returncode == 2 and "not found" in res.stderr, "a missing weights file")
    with open(os.path.join(env.tmp, "truncated.json"), "w") as f:
        f.write(json.dumps(trained)[:100])
    res = run([os.path.join(bins, "edge", "deepcut-edge"), "--model", env.args.model,
               "--policy", "learned", "--policy-weights", os.path.join(env.tmp, "truncated.json"),
               "--source", "trace:" + frames, "--cloud", "tcp://127.0.0.1:1"])
    expect(res.returncode == 2 and "not valid JSON" in res.stderr,
           "the edge took a truncated weights file")


if __name__ == "__main__":
    main(test)
