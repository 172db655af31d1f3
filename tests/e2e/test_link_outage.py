"""The real processes over deepcut-link on an uplink trace that goes to zero
capacity for 10 s, with the always policy and with DeepCut's own scheduler:
every frame gets exactly one answer, and the bytes the edge counts are the bytes
that crossed the link, to the byte. What happens when (no cloud answer during
the outage, the cloud back after it) depends on the wall clock of a shared
machine, so it is only reported here; it is asserted in virtual time
(tests/replay/replay_test.cpp, ALinkOutageIsAnsweredLocallyAndTheCloudComesBack)."""
import os
import re
import signal
import subprocess

from harness import main, expect, expect_one_answer_each, read_answers, read_json

GAP_FROM_S, GAP_TO_S, END_S = 5.0, 15.0, 30.0


def write_trace(path):
    # One 1500-byte opportunity every 2 ms (6 Mbit/s), none in the gap.
    with open(path, "w") as f:
        for ms in range(0, int(END_S * 1000) + 1, 2):
            if not GAP_FROM_S * 1000 <= ms < GAP_TO_S * 1000:
                f.write("%d\n" % ms)


def link_totals(log_path):
    with open(log_path) as f:
        lines = [l for l in f if "uplink" in l and "msgs" in l]
    m = re.search(r"uplink (\d+) msgs (\d+) B \((\d+) lost", lines[-1])
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def run(env, cloud_endpoint, trace, policy, n=500, fps=20):
    link, endpoint, log_path = env.start_link(cloud_endpoint, trace, ["--delay-ms", "10"])
    out = os.path.join(env.tmp, policy + ".jsonl")
    summary = os.path.join(env.tmp, policy + ".json")
    res = subprocess.run(env.edge_cmd(endpoint, "--source", "fashion-mnist:test", "--frames",
                                      str(n), "--fps", str(fps), "--policy", policy,
                                      "--deadline-ms", "300", "--out", out, "--summary", summary),
                         capture_output=True, text=True, timeout=300)
    print(res.stdout)
    print(res.stderr[-2000:])
    expect(res.returncode == 0, "edge exited with %d" % res.returncode)
    link.send_signal(signal.SIGTERM)
    link.wait(10)
    answers = sorted(read_answers(out), key=lambda a: a["frame"])
    s = read_json(summary)
    expect_one_answer_each(answers, n)
    expect(s["duplicate_answers"] == 0, "duplicate answers")
    # The link's clock starts with the edge's first message (frame 0 under
    # both policies: there is nothing to reuse yet).
    t0 = answers[0]["capture_s"]

    def window(a, b):
        return [x for x in answers if a <= x["capture_s"] - t0 < b]

    before, during, after = window(0.5, GAP_FROM_S - 0.5), window(
        GAP_FROM_S + 0.5, GAP_TO_S - 1.0), window(GAP_TO_S + 4.0, n / fps)
    cloud = lambda xs: sum(x["route"] == "cloud" for x in xs) / max(1, len(xs))
    print("%s: cloud share before %.2f, during %.2f, after %.2f (reported, not asserted)" %
          (policy, cloud(before), cloud(during), cloud(after)))
    msgs, wire_bytes, lost = link_totals(log_path)
    print("link: %d messages, %d B, %d lost; edge counted %d B over %d offloads" %
          (msgs, wire_bytes, lost, s["uplink_bytes"], s["counters"]["offloads_sent"]))
    expect(lost == 0, "the link queue overflowed")
    # Requests sent again (failover) are messages too, and their bytes are counted.
    expect(msgs == s["counters"]["offloads_sent"] + s["counters"]["resent"],
           "the link saw a different number of requests")
    expect(wire_bytes == s["uplink_bytes"], "the edge's byte count differs from the link's")


def test(env):
    trace = os.path.join(env.tmp, "outage.up")
    write_trace(trace)
    _, cloud_endpoint = env.start_cloud()
    run(env, cloud_endpoint, trace, "always")
    run(env, cloud_endpoint, trace, "deepcut")


if __name__ == "__main__":
    main(test)
