#!/usr/bin/python3
"""A local DeepCut cluster to try: N cloud replicas, HAProxy in front of them, M real-time
edges and a Prometheus server scraping everything, all on 127.0.0.1.

    scripts/cluster.py                      # 3 clouds, HAProxy, 4 edges at 10 fps for 60 s
    scripts/cluster.py --clouds 2 --edges 8 --fps 20 --seconds 30
    scripts/cluster.py --direct             # no HAProxy: each edge gets all the replicas
    scripts/cluster.py --keep --restart     # stay up after the edges end, until Ctrl-C;
                                            # bring back replicas that exit

Each replica is `deepcut-cloud --metrics-listen` (Prometheus text on /metrics, /ready 200
while serving and 503 from SIGTERM on) with `--drain-delay-s 1`: after SIGTERM it serves
on for a second while /ready says 503, so that HAProxy (health checks on /ready every
250 ms, out on the first failure, back after two) takes it out of rotation before it stops
taking requests. HAProxy runs in TCP mode (an edge holds one ZeroMQ connection for its
whole run) with `option redispatch` and `retries 3`, and serves its own metrics on a stats
port (/metrics, and the stats page on /stats). Each edge plays fashion-mnist:test in real
time with --metrics-listen. Prometheus scrapes the clouds (job deepcut-cloud, label
replica), the edges (deepcut-edge, label edge), HAProxy (haproxy) and itself.

While it runs it prints a progress line every --progress-s seconds and, as they happen,
the events a load balancer cares about: a replica not ready, HAProxy marking a server
DOWN or UP, a replica exiting. Try `kill -TERM PID` (a graceful drain) or `kill -9 PID` of
a replica (the PIDs are printed at the start). At the end: per edge frames, answered and
the cloud's fraction (from each edge's --summary JSON), per replica the requests it
answered (from its /metrics) and HAProxy's sessions per server. Everything (configs,
logs, answers, summaries, the Prometheus TSDB, summary.json) is in the run directory.

Exit status: 0 when every edge exited 0 and answered each of its frames; 1 otherwise
(or a process did not start); 2 for a bad option or a missing binary; 130 when
interrupted before the edges were done (Ctrl-C or SIGTERM; the summary is printed).
"""
import argparse
import csv
import io
import json
import os
import shutil
import signal
import sys
import time

from cluster_config import haproxy_config, prometheus_config
from deepcut_procs import (Processes, StartFailed, free_port, http_get, metric,
                           prometheus_binary, read_metrics)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOST = "127.0.0.1"
TEST_SPLIT_FRAMES = 10000  # fashion-mnist:test


def parse_args():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clouds", type=int, default=3, help="cloud replicas (default 3)")
    p.add_argument("--edges", type=int, default=4, help="edge processes (default 4)")
    p.add_argument("--fps", type=float, default=10.0, help="frames/s per edge (default 10)")
    p.add_argument("--seconds", type=float, default=60.0,
                   help="capture time per edge (default 60; at most %d frames in all)"
                        % TEST_SPLIT_FRAMES)
    p.add_argument("--direct", action="store_true",
                   help="no HAProxy: give every edge all the replicas as a comma-separated --cloud")
    p.add_argument("--run-dir", default=None,
                   help="configs, logs, answers, TSDB (default: a new /tmp/deepcut-cluster-*)")
    p.add_argument("--bin-dir", default=os.path.join(ROOT, "build"),
                   help="CMake build directory (default: build)")
    p.add_argument("--model", default=os.path.join(ROOT, "models", "fmnist"),
                   help="model package (default: models/fmnist)")
    p.add_argument("--keep", action="store_true",
                   help="after the edges end, leave the clouds, HAProxy and Prometheus "
                        "running until Ctrl-C")
    p.add_argument("--restart", action="store_true",
                   help="start a replica that exits again (same ports) 2 s later")
    p.add_argument("--policy", default="always", help="edge offload policy (default always)")
    p.add_argument("--deadline-ms", type=float, default=200.0, help="edge deadline (default 200)")
    p.add_argument("--cloud-threads", type=int, default=1, help="workers per replica (default 1)")
    p.add_argument("--drain-delay-s", type=float, default=1.0,
                   help="replicas' --drain-delay-s (default 1)")
    p.add_argument("--balance", default="leastconn", choices=["leastconn", "roundrobin"],
                   help="HAProxy's balance algorithm (default leastconn)")
    p.add_argument("--rebalance-s", type=float, default=30.0,
                   help="through HAProxy: edges replace their connection about this often, so "
                        "that restarted replicas get edges back (default 30; 0: never)")
    p.add_argument("--scrape-interval", default="1s", help="Prometheus scrape interval (default 1s)")
    p.add_argument("--no-prometheus", action="store_true", help="do not start Prometheus")
    p.add_argument("--progress-s", type=float, default=2.0,
                   help="seconds between progress lines (default 2; 0: none)")
    a = p.parse_args()
    if a.clouds < 1 or a.edges < 0 or a.fps <= 0 or a.seconds <= 0 or a.cloud_threads < 1:
        p.error("--clouds, --fps, --seconds and --cloud-threads must be positive, --edges >= 0")
    a.frames = int(round(a.fps * a.seconds))
    if a.frames > TEST_SPLIT_FRAMES:
        p.error("--fps x --seconds is %d frames; the test split has %d"
                % (a.frames, TEST_SPLIT_FRAMES))
    if a.run_dir is None:
        a.run_dir = os.path.join("/tmp", time.strftime("deepcut-cluster-%Y%m%d-%H%M%S"))
    for path in (os.path.join(a.bin_dir, "cloud", "deepcut-cloud"),
                 os.path.join(a.bin_dir, "edge", "deepcut-edge")):
        if not os.access(path, os.X_OK):
            p.error("%s is not built (scripts/build.sh, or --bin-dir)" % path)
    if not os.path.isdir(a.model):
        p.error("no model package at %s" % a.model)
    a.haproxy = None if a.direct else (shutil.which("haproxy") or
                                       ("/usr/sbin/haproxy" if os.path.exists("/usr/sbin/haproxy")
                                        else None))
    if not a.direct and not a.haproxy:
        p.error("haproxy is not installed (apt-get install haproxy), or use --direct")
    a.prometheus = None if a.no_prometheus else prometheus_binary()
    return a


def say(text, t0=None):
    prefix = "%7.1f s  " % (time.monotonic() - t0) if t0 is not None else ""
    print(prefix + text, flush=True)


class Replica:
    """One deepcut-cloud on fixed ports (picked once), so that a restart keeps them."""

    def __init__(self, procs, args, index):
        self.procs, self.args, self.index = procs, args, index
        self.name = "cloud%d" % index
        self.port, self.metrics_port = free_port(), free_port()
        self.endpoint = "tcp://%s:%d" % (HOST, self.port)
        self.url = "http://%s:%d" % (HOST, self.metrics_port)
        self.proc, self.generation, self.exited_at = None, 0, None
        self.answered_before = 0.0  # by earlier processes of this replica (last scrape)
        self.last = None            # the last /metrics scrape of the current process

    def start(self):
        log = os.path.join(self.args.run_dir, "%s%s.log" % (
            self.name, "" if self.generation == 0 else "-restart%d" % self.generation))
        self.proc, _, _, _ = self.procs.cloud_with_metrics(
            self.args.model, listen=self.endpoint,
            metrics_listen="%s:%d" % (HOST, self.metrics_port), name=self.name,
            extra=["--threads", str(self.args.cloud_threads),
                   "--drain-delay-s", str(self.args.drain_delay_s)],
            log_path=log, new_session=True)
        self.generation += 1
        self.exited_at, self.last = None, None

    def answered(self):
        return self.answered_before + metric(self.last, "deepcut_cloud_requests_answered_total")


def haproxy_servers(stats_url):
    """{server: {"status": "UP"|"DOWN"|..., "scur": n, "stot": n}} of backend clouds."""
    code, body = http_get(stats_url + "/stats;csv", 1.0)
    if code != 200:
        return None
    rows = csv.DictReader(io.StringIO(body.lstrip("# ")))
    return {r["svname"]: {"status": r["status"], "scur": int(r["scur"] or 0),
                          "stot": int(r["stot"] or 0)}
            for r in rows if r["pxname"] == "clouds" and r["svname"] not in ("FRONTEND", "BACKEND")}


class Edge:
    def __init__(self, procs, args, index, cloud_arg):
        self.name = "edge%d" % index
        self.metrics_port = free_port()
        self.url = "http://%s:%d" % (HOST, self.metrics_port)
        self.out = os.path.join(args.run_dir, self.name + ".jsonl")
        self.summary = os.path.join(args.run_dir, self.name + ".json")
        self.cmd = [os.path.join(args.bin_dir, "edge", "deepcut-edge"), "--cloud", cloud_arg,
                    "--model", args.model, "--source", "fashion-mnist:test",
                    "--frames", str(args.frames), "--fps", str(args.fps), "--policy", args.policy,
                    "--deadline-ms", str(args.deadline_ms), "--progress", "off",
                    "--metrics-listen", "%s:%d" % (HOST, self.metrics_port),
                    "--out", self.out, "--summary", self.summary]
        if not args.direct and args.rebalance_s > 0:
            self.cmd += ["--rebalance-s", str(args.rebalance_s)]
        self.procs, self.args, self.proc, self.last = procs, args, None, None

    def start(self):
        self.proc, _ = self.procs.start(self.name, self.cmd,
                                        os.path.join(self.args.run_dir, self.name + ".log"),
                                        new_session=True)


class Cluster:
    def __init__(self, args):
        self.args = args
        self.procs = Processes(args.bin_dir, args.run_dir)
        self.replicas, self.edges = [], []
        self.stats_url = self.prom_url = None
        self.haproxy_proc = None
        self.lb_state = {}      # server -> last status seen
        self.ready_state = {}   # replica -> last deepcut_cloud_ready seen
        self.t0 = time.monotonic()

    # ---- starting ----
    def start(self):
        a = self.args
        for i in range(a.clouds):
            r = Replica(self.procs, a, i)
            r.start()
            self.replicas.append(r)
        if a.direct:
            cloud_arg = ",".join(r.endpoint for r in self.replicas)
        else:
            lb_port, stats_port = free_port(), free_port()
            cfg = os.path.join(a.run_dir, "haproxy.cfg")
            with open(cfg, "w") as f:
                f.write(haproxy_config([(r.port, r.metrics_port) for r in self.replicas], lb_port,
                                       balance=a.balance, stats_port=stats_port,
                                       names=[r.name for r in self.replicas]))
            self.stats_url = "http://%s:%d" % (HOST, stats_port)
            self.haproxy_proc, _ = self.procs.haproxy(
                cfg, ready_url=self.stats_url + "/metrics", binary=a.haproxy,
                log_path=os.path.join(a.run_dir, "haproxy.log"), new_session=True)
            cloud_arg = "tcp://%s:%d" % (HOST, lb_port)
            self.wait_haproxy_up()
        self.edges = [Edge(self.procs, a, i, cloud_arg) for i in range(a.edges)]
        if a.prometheus:
            prom_port = free_port()
            jobs = {"deepcut-cloud": [("%s:%d" % (HOST, r.metrics_port), {"replica": r.name})
                                      for r in self.replicas],
                    "deepcut-edge": [("%s:%d" % (HOST, e.metrics_port), {"edge": e.name})
                                     for e in self.edges],
                    "haproxy": [self.stats_url[len("http://"):]] if self.stats_url else [],
                    "prometheus": ["%s:%d" % (HOST, prom_port)]}
            cfg = os.path.join(a.run_dir, "prometheus.yml")
            with open(cfg, "w") as f:
                f.write(prometheus_config(jobs, a.scrape_interval))
            data = os.path.join(a.run_dir, "prometheus-data")
            shutil.rmtree(data, ignore_errors=True)  # series of an earlier run would mislead
            _, self.prom_url, _ = self.procs.prometheus(
                cfg, data, prom_port, log_path=os.path.join(a.run_dir, "prometheus.log"),
                new_session=True)
        self.print_layout(cloud_arg)
        self.t0 = time.monotonic()
        if not self.edges:
            return
        for e in self.edges:
            e.start()
        say("%d edges started: %d frames each at %g frames/s (%.0f s), policy %s"
            % (len(self.edges), a.frames, a.fps, a.frames / a.fps, a.policy), self.t0)

    def wait_haproxy_up(self, timeout_s=10):
        """Until HAProxy's health checks have seen every replica ready (rise 2)."""
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            servers = haproxy_servers(self.stats_url) or {}
            if len(servers) == len(self.replicas) and all(
                    s["status"] == "UP" for s in servers.values()):
                self.lb_state = {k: v["status"] for k, v in servers.items()}
                return
            time.sleep(0.1)
        say("warning: HAProxy does not see every replica UP yet: %s"
            % haproxy_servers(self.stats_url))

    def print_layout(self, cloud_arg):
        a = self.args
        print("DeepCut local cluster (run directory %s)" % a.run_dir)
        for r in self.replicas:
            print("  %-8s pid %-7d zmq %s  metrics %s/metrics  ready %s/ready"
                  % (r.name, r.proc.pid, r.endpoint, r.url, r.url))
        if self.stats_url:
            print("  %-8s pid %-7d edges connect to %s (%s, health check: GET /ready)"
                  % ("haproxy", self.haproxy_proc.pid, cloud_arg, a.balance))
            print("           stats %s/stats  metrics %s/metrics  config %s/haproxy.cfg"
                  % (self.stats_url, self.stats_url, a.run_dir))
        else:
            print("  edges connect to every replica directly: --cloud %s" % cloud_arg)
        for e in self.edges:
            print("  %-8s metrics %s/metrics" % (e.name, e.url))
        if self.prom_url:
            print("  Prometheus %s  (config %s/prometheus.yml)" % (self.prom_url, a.run_dir))
            print("    try: sum by (replica) (rate(deepcut_cloud_requests_answered_total[10s]))")
            print("         sum by (route) (rate(deepcut_edge_answers_total[10s]))")
            print("         histogram_quantile(0.95, sum by (le) "
                  "(rate(deepcut_edge_latency_seconds_bucket[30s])))")
            if self.stats_url:
                print('         haproxy_server_status{proxy="clouds", state="UP"}')
        elif not a.no_prometheus:
            print("  (prometheus is not installed: no Prometheus server; apt-get install prometheus)")
        print("  SIGTERM a replica to watch it drain (kill -TERM PID), or kill -9 it%s."
              % ("" if a.restart else "; --restart brings replicas back"), flush=True)

    # ---- watching ----
    def poll(self):
        """Scrapes the replicas and HAProxy and reports what changed; restarts replicas
        that exited when asked to."""
        for r in self.replicas:
            if r.proc.poll() is None:
                samples = read_metrics(r.url, 1.0)
                if samples is not None:
                    r.last = samples
                    ready = metric(samples, "deepcut_cloud_ready") == 1
                    if self.ready_state.get(r.name, True) != ready:
                        say("%s: /ready %s" % (r.name, "200 (ready)" if ready
                                              else "503 (draining)"), self.t0)
                    self.ready_state[r.name] = ready
            elif r.exited_at is None:
                r.exited_at = time.monotonic()
                rc = r.proc.returncode
                say("%s (pid %d) exited %s" % (r.name, r.proc.pid,
                                               "0" if rc == 0 else "with %d%s" % (
                                                   rc, " (%s)" % signal.Signals(-rc).name
                                                   if rc < 0 else "")), self.t0)
                r.answered_before = r.answered()
                r.last = None
                self.ready_state[r.name] = False
            elif self.args.restart and time.monotonic() - r.exited_at >= 2.0:
                try:
                    r.start()
                    self.ready_state[r.name] = True
                    say("%s restarted on the same ports (pid %d)" % (r.name, r.proc.pid), self.t0)
                except StartFailed as e:
                    say("%s: restart failed: %s" % (r.name, e), self.t0)
                    r.exited_at = time.monotonic()
        if self.stats_url:
            servers = haproxy_servers(self.stats_url)
            if servers is None:
                if self.lb_state.get("_haproxy") != "gone":
                    say("HAProxy's stats do not answer", self.t0)
                self.lb_state["_haproxy"] = "gone"
                return
            self.lb_state.pop("_haproxy", None)
            for name, s in sorted(servers.items()):
                # "UP 1/2": one good check of the two it needs; report the settled states
                status = s["status"].split()[0] if " " not in s["status"] else None
                if status and self.lb_state.get(name) != status:
                    say("HAProxy: %s %s -> %s" % (name, self.lb_state.get(name, "?"), status),
                        self.t0)
                    self.lb_state[name] = status

    def progress(self):
        frames = cloud = local = 0
        for e in self.edges:
            if e.proc.poll() is None:
                samples = read_metrics(e.url, 1.0)
                if samples is not None:
                    e.last = samples
            frames += metric(e.last, "deepcut_edge_frames_total")
            cloud += metric(e.last, "deepcut_edge_answers_total", route="cloud")
            local += metric(e.last, "deepcut_edge_answers_total", route="local")
        running = sum(e.proc.poll() is None for e in self.edges)
        parts = ["edges %d/%d running: %d frames, %d cloud / %d local answers"
                 % (running, len(self.edges), frames, cloud, local)]
        parts.append("answered by " + ", ".join(
            "%s %d" % (r.name, r.answered()) for r in self.replicas))
        if self.stats_url:
            parts.append("haproxy " + " ".join(
                "%s:%s" % (n, s) for n, s in sorted(self.lb_state.items()) if n[0] != "_"))
        say(" | ".join(parts), self.t0)

    def run(self):
        last_progress = time.monotonic()
        while any(e.proc.poll() is None for e in self.edges):
            self.poll()
            if self.args.progress_s > 0 and time.monotonic() - last_progress >= self.args.progress_s:
                self.progress()
                last_progress = time.monotonic()
            time.sleep(0.25)
        self.poll()

    def keep(self):
        say("the edges are done; clouds%s%s stay up until Ctrl-C"
            % (", HAProxy" if self.stats_url else "", " and Prometheus (%s)" % self.prom_url
               if self.prom_url else ""), self.t0)
        while True:
            self.poll()
            time.sleep(0.25)

    def stop_edges(self):
        for e in self.edges:
            if e.proc is not None and e.proc.poll() is None:
                e.proc.send_signal(signal.SIGINT)  # the edge writes its summary and exits 0
        for e in self.edges:
            if e.proc is not None:
                try:
                    e.proc.wait(10)
                except Exception:
                    e.proc.kill()

    # ---- the end ----
    def summary(self):
        """Prints the per-edge and per-replica summary; returns (report, all edges ok)."""
        ok = True
        report = {"run_dir": self.args.run_dir, "direct": self.args.direct, "edges": [],
                  "clouds": [], "haproxy": None}
        print("\nDeepCut cluster summary (%s, %d replicas, %d edges at %g frames/s)"
              % ("direct" if self.args.direct else "through HAProxy, " + self.args.balance,
                 len(self.replicas), len(self.edges), self.args.fps))
        if self.edges:
            print("  %-7s %6s %8s %8s %7s %9s %9s %10s" % (
                "edge", "exit", "frames", "answered", "cloud", "accuracy", "p95 ms", "uplink B"))
        for e in self.edges:
            rc = e.proc.returncode if e.proc else None
            try:
                with open(e.summary) as f:
                    s = json.load(f)
            except (OSError, ValueError):
                s = None
            if s is None:
                print("  %-7s %6s   (no summary; log %s/%s.log)" % (e.name, rc, self.args.run_dir,
                                                                  e.name))
                ok = False
                report["edges"].append({"edge": e.name, "exit": rc})
                continue
            frac = s["routes"].get("cloud", 0) / s["answered"] if s["answered"] else 0.0
            acc = "%.2f %%" % (100 * s["accuracy"]) if s.get("accuracy") is not None else "-"
            print("  %-7s %6s %8d %8d %6.1f%% %9s %9.2f %10d" % (
                e.name, rc, s["frames"], s["answered"], 100 * frac, acc, s["latency_ms"]["p95"],
                s["uplink_bytes"]))
            ok = ok and rc == 0 and s["answered"] == s["frames"] and s["duplicate_answers"] == 0
            report["edges"].append({"edge": e.name, "exit": rc, "frames": s["frames"],
                                    "answered": s["answered"], "cloud_fraction": frac,
                                    "accuracy": s.get("accuracy"), "routes": s["routes"],
                                    "latency_ms": s["latency_ms"]})
        servers = haproxy_servers(self.stats_url) if self.stats_url else None
        print("  %-7s %8s %9s %9s %6s %8s  %s" % ("replica", "running", "received", "answered",
                                                  "shed", "batch", "haproxy (status, sessions in all)"))
        for r in self.replicas:
            running = r.proc.poll() is None
            if running:
                samples = read_metrics(r.url, 2.0)
                if samples is not None:
                    r.last = samples
            received = metric(r.last, "deepcut_cloud_requests_received_total")
            shed = metric(r.last, "deepcut_cloud_requests_shed_total")
            batches = metric(r.last, "deepcut_cloud_batch_size_count")
            mean_batch = metric(r.last, "deepcut_cloud_batch_size_sum") / batches if batches else 0
            lb = servers.get(r.name) if servers else None
            restarted = " (%d processes)" % r.generation if r.generation > 1 else ""
            print("  %-7s %8s %9d %9d %6d %8.2f  %s%s" % (
                r.name, "yes" if running else "no", received, r.answered(), shed, mean_batch,
                "%s, %d" % (lb["status"], lb["stot"]) if lb else "-", restarted))
            report["clouds"].append({"replica": r.name, "running": running, "answered": r.answered(),
                                     "received": received, "shed": shed, "mean_batch": mean_batch,
                                     "processes": r.generation,
                                     "haproxy": lb})
        if servers is not None:
            report["haproxy"] = servers
        if any(r.generation > 1 for r in self.replicas):
            print("  (received, shed, batch: a restarted replica's current process; answered: "
                  "all its processes, as last scraped)")
        print("  answers, logs and configs: %s" % self.args.run_dir)
        with open(os.path.join(self.args.run_dir, "summary.json"), "w") as f:
            json.dump(report, f, indent=1)
        return report, ok


def main():
    args = parse_args()
    os.makedirs(args.run_dir, exist_ok=True)
    cluster = Cluster(args)

    def on_term(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with it ignored
    ok, interrupted = False, False
    try:
        try:
            cluster.start()
            cluster.run()
        except KeyboardInterrupt:
            print("\ninterrupted: stopping the edges", flush=True)
            interrupted = True
            cluster.stop_edges()
        except StartFailed as e:
            print("cluster: %s" % e, file=sys.stderr)
            return 1
        _, ok = cluster.summary()
        if args.keep:
            try:
                cluster.keep()
            except KeyboardInterrupt:
                print()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):  # a second one must not orphan them
            signal.signal(sig, signal.SIG_IGN)
        say("stopping everything")
        cluster.procs.terminate_all(15)
    return 130 if interrupted else 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
