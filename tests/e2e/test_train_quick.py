"""The training script, quick mode: it writes a complete package that the C++
runtime loads and serves (real training on real data, a few thousand images)."""
import os
import subprocess
import sys

from harness import main, expect, expect_one_answer_each, read_json


def test(env):
    out = os.path.join(env.tmp, "quick-model")
    script = os.path.join(env.args.root, "splitnet", "training", "train.py")
    res = subprocess.run(["/usr/bin/python3", script, "--out", out, "--quick", "--seed", "3"],
                         capture_output=True, text=True, timeout=900)
    print(res.stdout[-4000:])
    print(res.stderr[-4000:], file=sys.stderr)
    expect(res.returncode == 0, "train.py --quick exited with %d" % res.returncode)
    for f in ("manifest.json", "head.onnx", "exit.onnx", "tail.onnx"):
        expect(os.path.exists(os.path.join(out, f)), "package lacks " + f)
    expect(not [d for d in os.listdir(env.tmp) if d.startswith("quick-model") and d != "quick-model"],
           "temporary package folders left behind")
    manifest = read_json(os.path.join(out, "manifest.json"))
    expect("--quick" in manifest["provenance"]["command"], "provenance lacks the command")
    _, endpoint = env.start_cloud(model=out)
    answers, s = env.run_edge(endpoint, "--source", "fashion-mnist:test", "--frames", "200",
                              "--policy", "always", "--deadline-ms", "2000", model=out)
    expect_one_answer_each(answers, 200)
    expect(sum(a["route"] == "cloud" for a in answers) >= 195, "the quick model's cloud did not answer")
    expect(s["accuracy"] > 0.3, "quick model is no better than chance: %s" % s["accuracy"])


if __name__ == "__main__":
    main(test)
