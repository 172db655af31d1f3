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
        (["--source", "fashion-mnist:test", "--control", "bogus://ctl"], "--control"),
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

    # The link emulator: a malformed or missing trace, a bad rate, bad options.
    link_bin = os.path.join(env.args.bin_dir, "netem", "deepcut-link")
    broken = os.path.join(env.tmp, "broken.up")
    with open(broken, "w") as f:
        f.write("0\n5\n3\n")  # goes back in time on line 3
    empty = os.path.join(env.tmp, "empty.up")
    open(empty, "w").close()
    link_cases = [
        (["--uplink", broken], 3, "broken.up:3"),
        (["--uplink", empty], 3, "empty"),
        (["--uplink", "/nonexistent.up"], 3, "nonexistent"),
        (["--uplink", "fast"], 3, "fast"),
        (["--uplink", "2M", "--downlink", "-1M"], 3, "--downlink"),
        (["--uplink", "2M", "--delay-ms", "-4"], 2, "delay"),
        (["--uplink", "2M", "--queue-bytes", "10"], 2, "queue"),
        (["--uplink", "2M", "--listen", "bogus://x"], 2, "bogus"),
        ([], 2, "uplink"),
    ]
    for extra, want, mention in link_cases:
        code, text = run([link_bin, "--connect", "tcp://127.0.0.1:1", *extra])
        expect(code == want and mention in text,
               "deepcut-link %s: exit %d, %s" % (extra, code, text))
    ctl_bin = os.path.join(env.args.bin_dir, "edge", "deepcut-ctl")
    code, text = run([ctl_bin, "--control", "bogus://x", "status"])
    expect(code == 2 and "bogus" in text, "deepcut-ctl bad endpoint: %d %s" % (code, text))
    code, text = run([ctl_bin, "--control", "tcp://127.0.0.1:1"])
    expect(code == 2 and "command" in text, "deepcut-ctl without a command: %d %s" % (code, text))

    leftovers = [f for f in os.listdir(env.tmp) if f.startswith(("o.jsonl", "s.json"))]
    expect(not leftovers, "partial output left behind: %s" % leftovers)


if __name__ == "__main__":
    main(test)
