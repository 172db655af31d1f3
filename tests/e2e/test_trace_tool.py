"""deepcut-trace end to end: make a scene trace, inspect it, record a source,
replay a trace through the edge; bad options and bad files exit non-zero with
a message and leave no output file."""
import json
import os
import subprocess

from harness import main, expect, expect_one_answer_each

DATASET = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"
MAGIC = b"deepcut-frames/1\n"


def run(cmd):
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    print("$", " ".join(cmd), "->", res.returncode)
    print(res.stdout[-2000:])
    print(res.stderr[-2000:])
    return res.returncode, res.stdout, res.stderr


def records(path):
    """The bytes after the JSON header (the header holds the creation time)."""
    with open(path, "rb") as f:
        data = f.read()
    expect(data.startswith(MAGIC), "%s does not start with the magic line" % path)
    header_bytes = int.from_bytes(data[len(MAGIC):len(MAGIC) + 4], "little")
    return data[len(MAGIC) + 4 + header_bytes:]


def leftovers(directory, name):
    return [f for f in os.listdir(directory) if f.startswith(name)]


def test(env):
    if not os.path.exists(DATASET):
        print("SKIP: dataset-fashion-mnist not installed")
        raise SystemExit(77)
    tool = os.path.join(env.args.bin_dir, "trace", "deepcut-trace")
    scenes = os.path.join(env.tmp, "scenes.dcft")
    again = os.path.join(env.tmp, "again.dcft")

    # make: deterministic for a seed.
    code, out, err = run([tool, "make", "--frames", "300", "--fps", "10", "--seed", "3",
                          "--out", scenes])
    expect(code == 0, "make failed: %s" % err)
    expect("wrote " + scenes in out and "300 frames" in out, "make summary: %s" % out)
    code, _, err = run([tool, "make", "--frames", "300", "--fps", "10", "--seed", "3",
                        "--out", again])
    expect(code == 0, "second make failed: %s" % err)
    expect(records(scenes) == records(again), "the same seed made different frames")

    # inspect: text and JSON.
    code, out, err = run([tool, "inspect", scenes])
    expect(code == 0 and "label runs" in out and "scenes" in out, "inspect: %s %s" % (out, err))
    code, out, err = run([tool, "inspect", scenes, "--json"])
    expect(code == 0, "inspect --json failed: %s" % err)
    s = json.loads(out)
    expect(s["frames"] == 300 and s["header"]["format"] == "deepcut-frames/1", "stats: %s" % s)
    expect(abs(s["duration_s"] - 30.0) < 1e-9, "duration %s" % s["duration_s"])
    expect(s["sizes"] == {"28x28x1": 300}, "sizes %s" % s["sizes"])
    expect(sum(s["labels"].values()) == 300 and "unknown" not in s["labels"], "labels %s"
           % s["labels"])
    expect(s["header"]["seed"] == 3 and s["header"]["classes"][9] == "Ankle boot", "header")
    expect(1 < s["scenes"]["count"] < 100, "scenes %s" % s["scenes"])
    expect(s["scenes"]["count"] >= s["label_runs"]["count"], "more label runs than scenes")

    # record: a dataset source, capture times k / fps.
    recorded = os.path.join(env.tmp, "recorded.dcft")
    code, out, err = run([tool, "record", "--source", "fashion-mnist:test", "--frames", "20",
                          "--out", recorded])
    expect(code == 0 and "20 frames" in out, "record: %s %s" % (out, err))
    code, out, _ = run([tool, "inspect", recorded, "--json"])
    r = json.loads(out)
    expect(r["frames"] == 20 and r["last_capture_us"] == 1900000, "recorded %s" % r)
    expect(r["header"]["source"] == "fashion-mnist:test", "recorded source")
    expect("unknown" not in r["labels"], "fashion-mnist labels were lost")

    # The edge replays a trace: one answer per frame, labels known.
    _, endpoint = env.start_cloud()
    answers, summary = env.run_edge(endpoint, "--source", "trace:" + scenes, "--frames", "50",
                                    "--policy", "always")
    expect_one_answer_each(answers, 50)
    expect(summary["accuracy"] is not None and summary["accuracy"] > 0.5,
           "accuracy on the trace: %s" % summary["accuracy"])

    # Bad options: exit code 2, a message, no output file.
    bad_out = os.path.join(env.tmp, "bad.dcft")
    for args, mention in [
        (["make", "--frames", "0", "--out", bad_out], "--frames"),
        (["make", "--split", "val", "--out", bad_out], "--split"),
        (["make", "--fps", "abc", "--out", bad_out], "--fps"),
        (["record", "--frames", "5", "--out", bad_out], "--source"),
        (["frobnicate"], "subcommand"),
    ]:
        code, out, err = run([tool, *args])
        expect(code == 2, "%s: exit %d" % (args, code))
        expect(mention in out + err, "%s: message does not mention %s: %s" % (args, mention,
                                                                              out + err))
    # A source or dataset that is not there: exit code 4.
    for args, mention in [
        (["record", "--source", "nonsense:x", "--out", bad_out], "nonsense"),
        (["record", "--source", "images:/no/such/dir", "--out", bad_out], "/no/such/dir"),
        (["make", "--fashion-mnist-dir", "/no/such/dir", "--out", bad_out], "/no/such/dir"),
    ]:
        code, out, err = run([tool, *args])
        expect(code == 4, "%s: exit %d" % (args, code))
        expect(mention in err, "%s: message does not mention %s: %s" % (args, mention, err))
    # An output that cannot be written: refused as an option, before any work.
    code, _, err = run([tool, "make", "--frames", "5", "--out", "/no/such/dir/x.dcft"])
    expect(code == 2 and "/no/such/dir/x.dcft" in err, "unwritable output: %d %s" % (code, err))
    expect(not leftovers(env.tmp, "bad.dcft"), "a failed run left %s" % leftovers(env.tmp,
                                                                                  "bad.dcft"))

    # Malformed traces: inspect and the edge refuse them with the file's name.
    with open(scenes, "rb") as f:
        data = f.read()
    truncated = os.path.join(env.tmp, "truncated.dcft")
    with open(truncated, "wb") as f:
        f.write(data[:len(data) - 100])
    code, _, err = run([tool, "inspect", truncated])
    expect(code == 4 and truncated in err and "record 299" in err, "truncated: %d %s"
           % (code, err))
    text = os.path.join(env.tmp, "text.dcft")
    with open(text, "w") as f:
        f.write("hello\n")
    code, _, err = run([tool, "inspect", text])
    expect(code == 4 and "not a frame trace" in err, "text file: %d %s" % (code, err))
    code, _, err = run([tool, "inspect", os.path.join(env.tmp, "missing.dcft")])
    expect(code == 4 and "missing.dcft" in err, "missing file: %d %s" % (code, err))
    res = env.run_edge(endpoint, "--source", "trace:" + truncated, check=False)
    expect(res.returncode == 4 and "record 299" in res.stdout + res.stderr, "edge on a truncated trace: %d"
           % res.returncode)


if __name__ == "__main__":
    main(test)
