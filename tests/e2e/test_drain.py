"""SIGTERM drains a cloud: /ready turns 503 at once while the listener still serves (the
drain delay), then the cloud answers "draining", finishes its queue and exits 0 within
the bound; the edge keeps exactly one answer per frame throughout. Then the bad inputs of
the operations flags: a malformed --metrics-listen, a port in use, an endpoint list with
a bad entry, each refused with a message naming it and exit 2, before any work."""
import signal
import socket
import subprocess
import time

from harness import main, expect, expect_one_answer_each, read_answers, read_json
from deepcut_procs import free_port, http_get, metric, read_metrics


def drain(env):
    metrics_port = free_port()
    url = "http://127.0.0.1:%d" % metrics_port
    cloud, endpoint = env.start_cloud(extra=["--metrics-listen", "127.0.0.1:%d" % metrics_port,
                                             "--drain-delay-s", "1.5", "--drain-timeout-s", "5"])
    expect(http_get(url + "/ready")[0] == 200, "a serving cloud is not ready")
    expect(http_get(url + "/healthz")[0] == 200, "no liveness")
    out, summary = env.tmp + "/drain.jsonl", env.tmp + "/drain.json"
    n = 120
    # By name: the edge resolves it itself (getaddrinfo), one replica per address.
    by_name = endpoint.replace("127.0.0.1", "localhost")
    edge = subprocess.Popen(env.edge_cmd(by_name, "--source", "fashion-mnist:test", "--frames",
                                         str(n), "--fps", "20", "--policy", "always",
                                         "--out", out, "--summary", summary),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(2.0)
    sent = time.monotonic()
    cloud.send_signal(signal.SIGTERM)
    not_ready = None
    while time.monotonic() - sent < 5 and cloud.poll() is None:
        code, _ = http_get(url + "/ready", 0.5)
        if code == 503 and not_ready is None:
            not_ready = time.monotonic()
            samples = read_metrics(url)
            expect(samples is not None, "/metrics stopped answering while draining")
            expect(metric(samples, "deepcut_cloud_ready") == 0 and
                   metric(samples, "deepcut_cloud_draining") == 1, "the gauges did not flip")
        time.sleep(0.02)
    rc = cloud.wait(10)
    exited = time.monotonic()
    expect(rc == 0, "the cloud exited %d after SIGTERM" % rc)
    expect(not_ready is not None, "/ready never said 503 after SIGTERM")
    print("not ready %.2f s after SIGTERM, exited %.2f s after it" % (not_ready - sent,
                                                                       exited - sent))
    expect(not_ready - sent < 1.0, "readiness flipped only %.2f s after SIGTERM" %
           (not_ready - sent))
    stdout, _ = edge.communicate(timeout=120)
    expect(edge.returncode == 0, "edge exited %d: %s" % (edge.returncode, stdout[-2000:]))
    answers = read_answers(out)
    expect_one_answer_each(answers, n)
    # The listener served after readiness flipped: cloud answers to frames captured
    # between "not ready" and the end of the delay.
    served_while_not_ready = [a for a in answers if a["route"] == "cloud" and
                              not_ready <= a["capture_s"] < sent + 1.4]
    expect(served_while_not_ready, "no cloud answer while not ready: the listener closed first")
    counters = read_json(summary)["counters"]
    expect(counters["replies_draining"] >= 1, "the edge got no draining reply: %s" % counters)
    print("cloud answers while not ready: %d; draining replies: %d" % (
        len(served_while_not_ready), counters["replies_draining"]))


def run(cmd):
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    return res.returncode, res.stdout + res.stderr


def bad_input(env):
    model = env.args.model
    cloud = [env.cloud_bin, "--listen", "tcp://127.0.0.1:*", "--model", model]
    edge = [env.edge_bin, "--model", model, "--source", "fashion-mnist:test", "--progress",
            "off", "--frames", "5"]
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    busy = "127.0.0.1:%d" % taken.getsockname()[1]
    ok_cloud = ["--cloud", "tcp://127.0.0.1:1"]
    cases = [
        (cloud + ["--metrics-listen", "nonsense"], "--metrics-listen"),
        (cloud + ["--metrics-listen", "127.0.0.1:70000"], "0..65535"),
        (cloud + ["--metrics-listen", busy], busy),
        # Checked before the model loads: the metrics error, not the model's.
        ([env.cloud_bin, "--model", "/nonexistent", "--metrics-listen", busy], busy),
        (cloud + ["--drain-delay-s", "-1"], "--drain-delay-s"),
        (cloud + ["--drain-timeout-s", "x"], "--drain-timeout-s"),
        (edge + ok_cloud + ["--metrics-listen", "9100"], "--metrics-listen"),
        (edge + ok_cloud + ["--metrics-listen", busy], busy),
        ([env.edge_bin, "--model", "/nonexistent", "--source", "fashion-mnist:test", *ok_cloud,
          "--metrics-listen", busy], busy),
        (edge + ["--cloud", "tcp://127.0.0.1:5555,tcp://127.0.0.1"], "endpoint 2"),
        (edge + ["--cloud", "tcp://127.0.0.1:5555,,tcp://127.0.0.1:5556"], "endpoint 2"),
        (edge + ["--cloud", "tcp://127.0.0.1:5555,udp://x:1"], "udp://x:1"),
        (edge + ["--cloud", "tcp://127.0.0.1:5555,tcp://no-such-host.invalid:5555"],
         "no-such-host.invalid"),
        (edge + ok_cloud + ["--resolve-interval-s", "0"], "--resolve-interval-s"),
    ]
    for cmd, mention in cases:
        code, text = run(cmd)
        expect(code == 2, "%s: exit %d (want 2): %s" % (cmd[1:], code, text))
        expect(mention in text, "%s: the error does not name %s: %s" % (cmd[1:], mention, text))
    taken.close()
    print("%d bad operations inputs refused with exit 2" % len(cases))


def test(env):
    drain(env)
    bad_input(env)


if __name__ == "__main__":
    main(test)
