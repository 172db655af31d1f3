"""A cloud made deliberately small (one worker, batches of one, a queue of two)
is flooded by several edges sending as fast as they can: it sheds the excess
with explicit "busy" replies instead of queueing without bound, every shed
frame is answered locally by its edge, every frame of every edge gets exactly
one answer, and the cloud still answers a share of every edge's frames.

Nothing here is timed: latencies are printed, never asserted."""
import glob
import os
import re
import signal
import subprocess

from harness import main, expect, expect_one_answer_each, read_answers, read_json

EDGES = 8
FRAMES = 1500  # per edge, read as fast as the pipeline allows (--fps 0)
# Generous, so that shedding, not the deadline, is what sends frames local: a
# cloud that sat on requests instead of shedding would show as deadline-missed.
DEADLINE_MS = 30000


def cloud_final_counters(log_path):
    """The cloud's last log line: received, answered, errors, busy, expired."""
    with open(log_path) as f:
        m = re.search(r"stopped: received (\d+), answered (\d+), errors (\d+), busy (\d+), "
                      r"expired (\d+)", f.read())
    expect(m is not None, "the cloud did not log its final counters")
    return dict(zip(["received", "answered", "errors", "busy", "expired"], map(int, m.groups())))


def percentile(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, max(0, -(-len(v) * p // 100) - 1))] if v else None


def test(env):
    cloud, endpoint = env.start_cloud(
        extra=["--threads", "1", "--max-batch", "1", "--max-queue", "2"])
    edges = []
    for i in range(EDGES):
        out = os.path.join(env.tmp, "edge%d.jsonl" % i)
        summary = os.path.join(env.tmp, "edge%d.json" % i)
        cmd = env.edge_cmd(endpoint, "--source", "fashion-mnist:test", "--frames", str(FRAMES),
                           "--policy", "always", "--deadline-ms", str(DEADLINE_MS),
                           "--out", out, "--summary", summary)
        edges.append((subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       text=True), out, summary))
    results = []
    for i, (proc, out, summary) in enumerate(edges):
        stdout, stderr = proc.communicate(timeout=600)
        print("edge %d:\n%s%s" % (i, stdout, stderr[-1500:]))
        expect(proc.returncode == 0, "edge %d exited with %d" % (i, proc.returncode))
        results.append((read_answers(out), read_json(summary)))

    # The cloud's own accounting, from the line it logs when it stops.
    cloud.send_signal(signal.SIGTERM)
    cloud.wait(30)
    logs = glob.glob(os.path.join(env.tmp, "cloud-*.log"))
    expect(len(logs) == 1, "expected one cloud log, found %s" % logs)
    server = cloud_final_counters(logs[0])
    print("cloud:", server)

    busy_replies = busy_local = cloud_routes = 0
    cloud_latency = []
    for i, (answers, summary) in enumerate(results):
        expect_one_answer_each(answers, FRAMES)
        expect(summary["answered"] == FRAMES and summary["duplicate_answers"] == 0,
               "edge %d: summary accounting" % i)
        counters = summary["counters"]
        shed = [a for a in answers if a["reason"] == "cloud-busy"]
        # A shed frame is answered once, by the edge's own exit.
        expect(all(a["route"] == "local" and a["offloaded"] for a in shed),
               "edge %d: a frame shed by the cloud was not answered locally" % i)
        # Each busy reply for a pending frame is exactly one local "cloud-busy" answer.
        expect(len(shed) == counters["replies_busy"],
               "edge %d: %d cloud-busy answers but %d busy replies" %
               (i, len(shed), counters["replies_busy"]))
        # Every request got a reply (answer or busy): nothing went local for lack of one.
        # ("cloud-unavailable": a frame sent before the edge's connection was up.)
        reasons = {a["reason"] for a in answers if a["route"] == "local"}
        expect(reasons <= {"cloud-busy", "cloud-unavailable"},
               "edge %d: unexpected local reasons %s" % (i, reasons))
        mine = [a for a in answers if a["route"] == "cloud"]
        # Shedding must not starve anyone: every edge gets some of the cloud's answers.
        expect(len(mine) > 0, "edge %d got no cloud answer at all" % i)
        cloud_routes += len(mine)
        busy_replies += counters["replies_busy"]
        busy_local += len(shed)
        cloud_latency += [a["latency_ms"] for a in mine]
        print("edge %d: cloud %d, local (busy) %d, busy replies %d, late replies %d, "
              "reconnects %d" % (i, len(mine), len(shed), counters["replies_busy"],
                                 counters["replies_late"], counters["reconnects"]))

    total = EDGES * FRAMES
    print("overload: %d frames, cloud answered %d (%.1f %%), shed busy %d (%.1f %%)" %
          (total, cloud_routes, 100.0 * cloud_routes / total, busy_local,
           100.0 * busy_local / total))
    # Reported, never asserted: the machine is shared.
    print("cloud-answer latency ms: p50 %.1f, p99 %.1f, max %.1f" %
          (percentile(cloud_latency, 50), percentile(cloud_latency, 99), max(cloud_latency)))

    expect(busy_replies > 0, "the cloud never replied busy: it did not shed load")
    expect(server["busy"] > 0, "the cloud counted no busy replies")
    # The cloud accounts for every request it received, and answered what the edges took.
    expect(server["received"] ==
           server["answered"] + server["busy"] + server["expired"] + server["errors"],
           "the cloud's counters do not add up: %s" % server)
    expect(server["answered"] >= cloud_routes, "edges took more cloud answers than were sent")
    sent = sum(s["counters"]["offloads_sent"] for _, s in results)
    expect(server["received"] == sent,
           "the edges sent %d requests, the cloud received %d" % (sent, server["received"]))


if __name__ == "__main__":
    main(test)
