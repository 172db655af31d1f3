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
        # A path the file system refuses (too long) is an error, not an exception.
        (["--source", "video:/" + "x" * 300], "video file"),
        (["--source", "trace:/" + "x" * 300], "x" * 20),
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
        (["--uplink", broken], 4, "broken.up:3"),
        (["--uplink", empty], 4, "empty"),
        (["--uplink", "/nonexistent.up"], 4, "nonexistent"),
        (["--uplink", "fast"], 4, "fast"),
        (["--uplink", "2M", "--downlink", "-1M"], 4, "--downlink"),
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

    options_checked_before_work(env, model)

    leftovers = [f for f in os.listdir(env.tmp) if f.startswith(("o.jsonl", "s.json", "."))]
    expect(not leftovers, "partial output left behind: %s" % leftovers)


def options_checked_before_work(env, model):
    """Issue 10, C, D, H, I, J and the manifest's default rate: every tool checks
    its options (ranges with readable messages, log levels, the directories of its
    outputs and ready files) before any work starts, and exits 2 at once."""
    b = env.args.bin_dir
    cloud = [env.cloud_bin, "--listen", "tcp://127.0.0.1:*", "--model", model]
    link = [os.path.join(b, "netem", "deepcut-link"), "--connect", "tcp://127.0.0.1:1",
            "--listen", "tcp://127.0.0.1:*", "--uplink", "2M"]
    edge = [env.edge_bin, "--cloud", "tcp://127.0.0.1:1", "--model", model,
            "--source", "fashion-mnist:test", "--progress", "off"]
    replay = [os.path.join(b, "replay", "deepcut-replay"), "--model", model,
              "--frames", "/nonexistent.dctrace", "--link-rate", "1M"]
    trace = [os.path.join(b, "trace", "deepcut-trace")]
    evaluate = [os.path.join(b, "eval", "deepcut-eval"), "rate-accuracy", "--model", model]
    ctl = [os.path.join(b, "edge", "deepcut-ctl"), "--control", "tcp://127.0.0.1:1"]
    missing_dir = "/nonexistent-deepcut-dir/out"
    unwritable = "/proc/deepcut-out"  # not writable even by root
    out = os.path.join(env.tmp, "o.jsonl")
    cases = [
        # C: ready files that cannot be written, refused before serving.
        (cloud + ["--ready-file", missing_dir], "--ready-file"),
        (cloud + ["--ready-file", unwritable], "--ready-file"),
        (link + ["--ready-file", missing_dir], "--ready-file"),
        (link + ["--ready-file", unwritable], "--ready-file"),
        # D: unknown log levels.
        (cloud + ["--log-level", "loud"], "--log-level"),
        (link + ["--log-level", "loud"], "--log-level"),
        (edge + ["--log-level", "loud"], "--log-level"),
        (replay + ["--log-level", "loud"], "--log-level"),
        (trace + ["--log-level", "loud", "inspect", "x"], "--log-level"),
        # H: ranges, with a short message.
        (edge + ["--deadline-ms", "0"], "--deadline-ms"),
        (edge + ["--fps", "-1"], "--fps"),
        (edge + ["--max-in-flight", "0"], "--max-in-flight"),
        (edge + ["--confidence-threshold", "2"], "--confidence-threshold"),
        (edge + ["--period", "0"], "--period"),
        (replay + ["--deadline-ms", "0"], "--deadline-ms"),
        (replay + ["--delay-ms", "-1"], "--delay-ms"),
        (cloud + ["--stats-interval-s", "-1"], "--stats-interval-s"),
        (link + ["--idle-close-s", "0"], "--idle-close-s"),
        (ctl + ["--timeout-ms", "0", "status"], "--timeout-ms"),
        # I: frame counts below -1.
        (edge + ["--frames", "-2"], "--frames"),
        (replay + ["--frames-max", "-2"], "--frames-max"),
        (evaluate + ["--frames", "-2", "--out", out], "--frames"),
        # J: outputs in a missing or unwritable directory, refused before the run.
        (edge + ["--summary", missing_dir, "--out", out], "--summary"),
        (edge + ["--out", unwritable], "--out"),
        (edge + ["--summary", env.tmp], "is a directory"),
        (edge + ["--out", out, "--summary", out], "same file"),
        (replay + ["--out", missing_dir], "--out"),
        (replay + ["--out", os.path.join(env.tmp, "r.json"), "--plot", unwritable], "--plot"),
        (evaluate + ["--out", missing_dir], "--out"),
        (evaluate + ["--out", out, "--markdown", unwritable], "--markdown"),
        (trace + ["make", "--frames", "10", "--out", missing_dir], "--out"),
        (trace + ["record", "--source", "fashion-mnist:test", "--out", unwritable], "--out"),
    ]
    for cmd, mention in cases:
        code, text = run(cmd)
        expect(code == 2, "%s: exit %d, wanted 2: %s" % (cmd[1:], code, text))
        expect(mention in text, "%s: the error does not name %s: %s" % (cmd[1:], mention, text))
        # One short line, not CLI11's 300-digit range.
        first = text.strip().splitlines()[0]
        expect(len(first) < 200 and "179769" not in text, "unreadable message: %s" % first)
    expect(not os.path.exists(out), "an output was written by a refused run")

    # A package without default_rate is refused, not run on its first rate.
    bare = os.path.join(env.tmp, "no-default-rate")
    shutil.copytree(model, bare)
    with open(os.path.join(bare, "manifest.json")) as f:
        manifest = json.load(f)
    del manifest["default_rate"]
    with open(os.path.join(bare, "manifest.json"), "w") as f:
        json.dump(manifest, f)
    for cmd in ([env.cloud_bin, "--listen", "tcp://127.0.0.1:*", "--model", bare],
                [env.edge_bin, "--cloud", "tcp://127.0.0.1:1", "--model", bare,
                 "--source", "fashion-mnist:test", "--progress", "off"]):
        code, text = run(cmd)
        expect(code == 3 and "default_rate is missing" in text,
               "no default_rate: exit %d, %s" % (code, text))


if __name__ == "__main__":
    main(test)
