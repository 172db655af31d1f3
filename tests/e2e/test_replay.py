"""deepcut-replay on a small scene trace: every policy and the oracle side by
side at a budget of 25% of always-offload, with the JSON, markdown and plot;
the budget holds, the oracle is on top, a second run gives the same numbers,
and bad options or a malformed network trace are refused without output."""
import json
import os
import subprocess

from harness import main, expect

BASELINES = ["periodic", "random", "confidence", "framediff"]
CAUSAL = (["edge-only", "always"] + BASELINES + [b + "+fusion" for b in ["edge-only"] + BASELINES]
          + ["deepcut"])
NAMES = CAUSAL + ["oracle", "oracle-expected", "oracle-replayed"]


def run(cmd, timeout=900):
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    print(" ".join(cmd), "->", res.returncode)
    print(res.stdout[-3000:], res.stderr[-2000:])
    return res


def test(env):
    bins = env.args.bin_dir
    trace_exe = os.path.join(bins, "trace", "deepcut-trace")
    replay_exe = os.path.join(bins, "replay", "deepcut-replay")
    frames = os.path.join(env.tmp, "scene.dctrace")
    res = run([trace_exe, "make", "--dataset", "fashion-mnist", "--split", "test", "--frames",
               "2000", "--fps", "10", "--seed", "1", "--out", frames])
    expect(res.returncode == 0, "deepcut-trace make failed")

    out = os.path.join(env.tmp, "replay.json")
    md = os.path.join(env.tmp, "replay.md")
    png = os.path.join(env.tmp, "replay.png")
    cmd = [replay_exe, "--model", env.args.model, "--source", "trace:" + frames, "--uplink", "2M",
           "--budget", "25%", "--policies", "all", "--out", out, "--markdown", md, "--plot", png]
    res = run(cmd)
    expect(res.returncode == 0, "deepcut-replay exited with %d" % res.returncode)
    with open(out) as f:
        report = json.load(f)
    pol = report["policies"]
    for name in NAMES:
        expect(name in pol, "missing policy %s" % name)
        for key in ("accuracy", "uplink_bytes", "uplink_bps", "max_10s_window_bps",
                    "answered_by_deadline", "offload_fraction", "deadline_hit_ratio"):
            expect(key in pol[name], "%s lacks %s" % (name, key))
        if name != "oracle":
            expect(set(pol[name]["latency_ms"]) >= {"p50", "p95", "p99"}, "latency of %s" % name)
            expect(pol[name]["frames"] == 2000, "%s answered %s frames" % (name, pol[name]["frames"]))
            expect(pol[name]["answered_by_deadline"] == 1.0, "%s missed deadlines" % name)
    budget = report["budget_bps"]
    expect(abs(budget - 0.25 * report["always_bps"]) < 1e-6 * budget + 1e-9, "25% budget")
    expect(pol["edge-only"]["uplink_bytes"] == 0, "edge-only sent bytes")
    expect(pol["always"]["offload_fraction"] == 1.0, "always did not offload everything")
    if os.path.exists(os.path.join(env.args.model, "policy.json")):
        expect("learned" in pol, "the package has a policy.json but the report lacks learned")
        CAUSAL.append("learned")
    for name in [n for n in CAUSAL if n not in ("always", "edge-only")] + ["oracle"]:
        expect(pol[name]["uplink_bps"] <= 1.05 * budget,
               "%s over budget: %.0f > %.0f" % (name, pol[name]["uplink_bps"], budget))
    for name in CAUSAL:
        if name not in ("always", "edge-only"):
            expect(pol[name]["max_10s_window_bps"] <= 1.05 * budget,
                   "%s over budget in a 10 s window" % name)
    # The fusion variants answer from the scene; the published forms do not.
    expect(pol["edge-only+fusion"]["routes"]["cloud"] == 0, "edge-only+fusion asked the cloud")
    best = max(pol[n]["accuracy"] for n in CAUSAL if n != "always")
    expect(pol["oracle"]["accuracy"] >= best - 0.005,
           "oracle %.4f below a policy %.4f" % (pol["oracle"]["accuracy"], best))
    expect(pol["deepcut"]["accuracy"] > pol["edge-only"]["accuracy"], "deepcut no better than edge")
    for path in (md, png):
        expect(os.path.getsize(path) > 0, "%s is empty" % path)

    # Deterministic: the same run gives the same numbers.
    out2 = os.path.join(env.tmp, "replay2.json")
    # The same again, in the spellings before --source and --uplink (kept for scripts).
    res = run([replay_exe, "--model", env.args.model, "--frames", frames, "--link-rate", "2M",
               "--budget", "25%", "--policies", "all", "--out", out2])
    expect(res.returncode == 0, "second run failed")
    with open(out2) as f:
        again = json.load(f)["policies"]
    for name in NAMES:
        for key in ("accuracy", "uplink_bytes", "offload_fraction"):
            expect(again[name][key] == pol[name][key], "%s %s differs between runs" % (name, key))

    # Bad input: clear message, non-zero exit, no output file.
    bad_trace = os.path.join(env.tmp, "bad.up")
    with open(bad_trace, "w") as f:
        f.write("10\n5\n")
    for args, needle in (
            (["--link", bad_trace], "backwards"),
            (["--link-rate", "fast"], "neither"),
            (["--link-rate", "2M", "--budget", "lots"], "--budget"),
            (["--link-rate", "2M", "--policies", "bogus"], "unknown policy"),
            (["--link-rate", "2M", "--budget", "-5%"], "--budget")):
        target = os.path.join(env.tmp, "bad.json")
        res = run([replay_exe, "--model", env.args.model, "--frames", frames, "--out", target]
                  + args)
        expect(res.returncode != 0, "%s accepted" % args)
        expect(needle in res.stderr, "%s: message lacks %r" % (args, needle))
        expect(not os.path.exists(target), "%s left %s behind" % (args, target))


if __name__ == "__main__":
    main(test)
