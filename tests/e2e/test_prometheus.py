"""A real Prometheus server scrapes a cloud (--metrics-listen 127.0.0.1:0, the URL read
from its ready file) and a real-time edge (--metrics-listen on a port picked here) once a
second while the edge offloads 15 s of frames; read back through Prometheus's HTTP API:
both targets are up under their job labels, the cloud's requests and the edge's frames
grow with the load, the cloud's batch-size histogram and queue gauge are there (the
histogram good enough for histogram_quantile), and once the edge is done Prometheus holds
the cloud's final count, equal to what the edge says it sent. Skipped (77) without
/usr/bin/prometheus."""
import json
import os
import sys
import time
import urllib.parse

from harness import main, expect, read_json
from deepcut_procs import free_port, http_get, prometheus_binary
from cluster_config import prometheus_config

CLOUD_JOB, EDGE_JOB = "deepcut-cloud", "deepcut-edge"
FRAMES, FPS = 300, 20  # 15 s in real time


def query(prom, expr):
    """The instant vector of a PromQL expression: [(labels, value), ...]."""
    code, body = http_get(prom + "/api/v1/query?" + urllib.parse.urlencode({"query": expr}), 5.0)
    expect(code == 200, "Prometheus answered %s to %r: %s" % (code, expr, body[:300]))
    doc = json.loads(body)
    expect(doc["status"] == "success", "query %r failed: %s" % (expr, body[:300]))
    expect(doc["data"]["resultType"] == "vector", "query %r: not a vector" % expr)
    return [(r["metric"], float(r["value"][1])) for r in doc["data"]["result"]]


def one(prom, expr, job, instance):
    """The value of the one series `expr` has, checking its job and instance labels."""
    rows = query(prom, expr)
    expect(len(rows) == 1, "%r: expected one series, got %s" % (expr, rows))
    labels, value = rows[0]
    expect(labels.get("job") == job and labels.get("instance") == instance,
           "%r: labels %s, expected job=%s instance=%s" % (expr, labels, job, instance))
    return value


def wait_for(what, cond, timeout_s, edge=None):
    deadline = time.time() + timeout_s
    while True:
        result = cond()
        if result:
            return result
        expect(edge is None or edge.poll() is None, "the edge ended before %s" % what)
        expect(time.time() < deadline, "timed out waiting for %s" % what)
        time.sleep(0.25)


def test(env):
    _, endpoints, cloud_url, _ = env.procs.cloud_with_metrics(
        env.args.model, extra=["--threads", "1", "--stats-interval-s", "0"])
    cloud_target = cloud_url[len("http://"):]
    edge_target = "127.0.0.1:%d" % free_port()

    config = os.path.join(env.tmp, "prometheus.yml")
    with open(config, "w") as f:
        f.write(prometheus_config({CLOUD_JOB: [cloud_target], EDGE_JOB: [edge_target]}, "1s"))
    _, prom, prom_log = env.procs.prometheus(config, os.path.join(env.tmp, "tsdb"), free_port())
    print("prometheus at %s, cloud metrics at %s, edge metrics at %s" % (prom, cloud_url,
                                                                       edge_target))

    summary = os.path.join(env.tmp, "edge.json")
    edge, edge_log = env.procs.start("edge", env.edge_cmd(
        endpoints[0], "--source", "fashion-mnist:test", "--frames", str(FRAMES), "--fps", str(FPS),
        "--policy", "always", "--metrics-listen", edge_target,
        "--out", os.path.join(env.tmp, "edge.jsonl"), "--summary", summary))
    t0 = time.time()

    # Both targets up, each under its job.
    def both_up():
        up = {(m.get("job"), m.get("instance")): v for m, v in query(prom, "up")}
        return up.get((CLOUD_JOB, cloud_target)) == 1 and up.get((EDGE_JOB, edge_target)) == 1
    # (Prometheus applies new targets from discovery every 5 s: up to ~6 s.)
    wait_for("both targets to be up", both_up, 20, edge)
    print("both targets up %.1f s after the edge started" % (time.time() - t0))

    # The counters move with the load: two instant queries 4 s (4 scrapes) apart.
    received = "deepcut_cloud_requests_received_total"
    frames = "deepcut_edge_frames_total"
    wait_for("a first sample with load",
             lambda: one(prom, frames, EDGE_JOB, edge_target) > 0, 5, edge)
    first = (one(prom, received, CLOUD_JOB, cloud_target), one(prom, frames, EDGE_JOB, edge_target))
    time.sleep(4.0)
    expect(edge.poll() is None, "the edge ended too early (log: %s)" % edge_log)
    later = (one(prom, received, CLOUD_JOB, cloud_target), one(prom, frames, EDGE_JOB, edge_target))
    print("requests received %g -> %g, edge frames %g -> %g" % (first[0], later[0], first[1],
                                                                later[1]))
    expect(later[0] > first[0], "the cloud's requests did not grow: %s -> %s" % (first, later))
    expect(later[1] > first[1], "the edge's frames did not grow: %s -> %s" % (first, later))
    rate = one(prom, "rate(%s[5s])" % received, CLOUD_JOB, cloud_target)
    print("rate(requests received[5s]) = %.1f /s" % rate)
    expect(rate > 0, "rate() of the cloud's requests is %s" % rate)

    # The batch-size histogram: its buckets, +Inf among them, and PromQL can use them.
    buckets = query(prom, "deepcut_cloud_batch_size_bucket")
    les = {m.get("le") for m, _ in buckets}
    expect(len(buckets) >= 2 and "+Inf" in les, "batch size buckets: %s" % sorted(les))
    expect(all(m.get("job") == CLOUD_JOB for m, _ in buckets), "bucket labels: %s" % buckets[:2])
    inf = [v for m, v in buckets if m.get("le") == "+Inf"][0]
    expect(inf > 0, "no tail run counted in the +Inf bucket")
    q50 = query(prom, "histogram_quantile(0.5, rate(deepcut_cloud_batch_size_bucket[5s]))")
    # (Prometheus interpolates inside a bucket: all batches of 1 give a median of 0.5.)
    expect(len(q50) == 1 and 0 < q50[0][1] <= 1024, "median batch size: %s" % q50)
    depth = one(prom, "deepcut_cloud_queue_depth", CLOUD_JOB, cloud_target)
    expect(depth >= 0, "queue depth %s" % depth)
    latency = query(prom, "deepcut_edge_latency_seconds_bucket")
    expect(len(latency) >= 2 and all(m.get("job") == EDGE_JOB for m, _ in latency),
           "edge latency buckets: %s" % latency[:2])
    cloud_answers = one(prom, 'deepcut_edge_answers_total{route="cloud"}', EDGE_JOB, edge_target)
    print("batch size buckets %d, median batch %.2f, queue depth %g, edge cloud answers %g"
          % (len(buckets), q50[0][1], depth, cloud_answers))

    rc = edge.wait(60)
    expect(rc == 0, "the edge exited with %d (log: %s)" % (rc, edge_log))
    s = read_json(summary)
    expect(s["frames"] == FRAMES and s["answered"] == FRAMES, "edge summary: %s" % s)
    # The cloud is still scraped: Prometheus comes to hold its final count, which is what
    # the edge sent (each request once: nothing was lost, so nothing was sent again).
    sent = s["counters"]["offloads_sent"]
    expect(sent > 0, "the edge sent nothing")
    wait_for("Prometheus to hold the cloud's final count, %d" % sent,
             lambda: one(prom, received, CLOUD_JOB, cloud_target) == sent, 6)
    print("edge sent %d, Prometheus has the cloud's %s = %d; %.1f s after the edge started"
          % (sent, received, sent, time.time() - t0))
    with open(prom_log) as f:
        errors = [line for line in f if "level=error" in line]
    expect(not errors, "Prometheus logged errors: %s" % errors[:3])


if __name__ == "__main__":
    if not prometheus_binary():
        print("SKIP: prometheus is not installed (apt-get install prometheus)")
        sys.exit(77)
    main(test)
