"""Malformed manifests and options: a clear error naming the problem, a
non-zero exit code, no partial output files."""
import json
import os
import shutil
import subprocess

from harness import main, expect


def run(cmd):
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    return res.returncode, res.stdout + res.stderr


def test(env):
    model = env.args.model
    bad = os.path.join(env.tmp, "bad-model")
    shutil.copytree(model, bad)
    with open(os.path.join(bad, "manifest.json")) as f:
        manifest = json.load(f)
    manifest["rates"][0]["bits"] = 12
    with open(os.path.join(bad, "manifest.json"), "w") as f:
        json.dump(manifest, f)
    out = os.path.join(env.tmp, "o.jsonl")
    summary = os.path.join(env.tmp, "s.json")
    common = ["--out", out, "--summary", summary, "--progress", "off"]

    code, text = run([env.edge_bin, "--cloud", "tcp://127.0.0.1:1", "--model", bad,
                      "--source", "fashion-mnist:test", *common])
    expect(code == 3 and "rates[0].bits" in text, "bad manifest: %d %s" % (code, text))
    code, text = run([env.cloud_bin, "--listen", "tcp://127.0.0.1:*", "--model", bad])
    expect(code == 3 and "rates[0].bits" in text, "cloud bad manifest: %d %s" % (code, text))

    manifest["rates"][0]["bits"] = 8
    with open(os.path.join(bad, "manifest.json"), "w") as f:
        json.dump(manifest, f)
    os.remove(os.path.join(bad, "tail.onnx"))
    code, text = run([env.cloud_bin, "--listen", "tcp://127.0.0.1:*", "--model", bad])
    expect(code == 3 and "tail" in text, "missing tail: %d %s" % (code, text))

    cases = [
        (["--source", "nonsense"], "--source"),
        (["--source", "fashion-mnist:val"], "split"),
        (["--source", "fashion-mnist:test", "--policy", "psychic"], "psychic"),
        (["--source", "fashion-mnist:test", "--rate", "77b"], "77b"),
        (["--source", "fashion-mnist:test", "--deadline-ms", "-5"], "deadline"),
        (["--source", "fashion-mnist:test", "--fps", "abc"], "fps"),
        (["--source", "fashion-mnist:test", "--budget", "12q"], "--budget"),
        (["--source", "fashion-mnist:test", "--budget", "-3k"], "--budget"),
        (["--source", "fashion-mnist:test", "--policy", "oracle"], "deepcut-replay"),
        (["--source", "trace:/nonexistent.dctrace"], "nonexistent"),
    ]
    for extra, mention in cases:
        code, text = run([env.edge_bin, "--cloud", "tcp://127.0.0.1:1", "--model", model,
                          *common, *extra])
        expect(code != 0, "accepted %s" % extra)
        expect(mention in text, "error for %s does not mention %s: %s" % (extra, mention, text))
    code, text = run([env.edge_bin, "--cloud", "not-an-endpoint", "--model", model,
                      "--source", "fashion-mnist:test", *common])
    expect(code == 2 and "not-an-endpoint" in text, "bad endpoint: %d %s" % (code, text))
    code, text = run([env.cloud_bin, "--listen", "bogus://x", "--model", model])
    expect(code == 2 and "bogus" in text, "bad listen endpoint: %d %s" % (code, text))
    leftovers = [f for f in os.listdir(env.tmp) if f.startswith(("o.jsonl", "s.json"))]
    expect(not leftovers, "partial output left behind: %s" % leftovers)


if __name__ == "__main__":
    main(test)
