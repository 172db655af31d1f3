#!/usr/bin/python3
"""Load test: one deepcut-cloud serving many deepcut-edge processes on loopback.

Starts one cloud and N edges (fashion-mnist:test, real time at --fps, each for
--seconds), shows progress while they run, then reads every edge's answers and
prints a summary: frames in and answered, the exactly-one-answer check, routes
and the reasons of local answers, cloud-answer latency p50/p90/p99/max over all
edges, the deadline hit ratio, frames shed by the cloud (busy replies), the
cloud's own counters, uplink bytes and CPU time. Writes OUT/load-report.json.

Timings are reported, never judged: the exit status is 1 only when some frame
of some edge lacks exactly one answer (or an edge failed), 0 otherwise.

The edge has no start-offset option, so every edge plays the same first
fps*seconds frames of the test split; that does not matter for load.

Usage: load_test.py --bin-dir BUILD --model models/fmnist [--edges 32] [--fps 10]
                    [--seconds 30] [--deadline-ms 200] [--policy always]
                    [--cloud-threads 2] [--cloud-max-batch 16] [--cloud-max-queue 256]
                    [--out-dir DIR]
"""
import argparse
import collections
import json
import math
import os
import re
import resource
import signal
import subprocess
import sys
import time

from deepcut_procs import Processes, StartFailed

CLK_TCK = os.sysconf("SC_CLK_TCK")
# The cloud's periodic and final log lines (cloud/cloud_server.cpp, cloud/main.cpp).
STATS_LINE = re.compile(r"served (\d+) \(\+(\d+)\), errors (\d+), busy (\d+), expired (\d+), "
                        r"mean batch ([\d.]+)")
STOPPED_LINE = re.compile(r"stopped: received (\d+), answered (\d+), errors (\d+), busy (\d+), "
                          r"expired (\d+)")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bin-dir", required=True, help="CMake build directory")
    p.add_argument("--model", required=True, help="model package directory")
    p.add_argument("--edges", type=int, default=32, help="edge processes (default 32)")
    p.add_argument("--fps", type=float, default=10.0, help="frames/s per edge (default 10)")
    p.add_argument("--seconds", type=float, default=30.0, help="capture time per edge (default 30)")
    p.add_argument("--deadline-ms", type=float, default=200.0, help="edge deadline (default 200)")
    p.add_argument("--policy", default="always", help="edge offload policy (default always)")
    p.add_argument("--source", default="fashion-mnist:test", help="edge frame source")
    p.add_argument("--cloud-threads", type=int, default=2, help="cloud workers (default 2)")
    p.add_argument("--cloud-max-batch", type=int, default=None, help="cloud --max-batch")
    p.add_argument("--cloud-max-queue", type=int, default=None, help="cloud --max-queue")
    p.add_argument("--out-dir", default=None,
                   help="where logs, answers and load-report.json go "
                        "(default: a new directory under /tmp)")
    a = p.parse_args()
    if a.edges < 1 or a.fps <= 0 or a.seconds <= 0:
        p.error("--edges, --fps and --seconds must be positive")
    if a.out_dir is None:
        a.out_dir = os.path.join("/tmp", time.strftime("deepcut-load-%Y%m%d-%H%M%S"))
    return a


def cpu_seconds(pid):
    """User + system CPU seconds of a live process, or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime
    except (OSError, IndexError, ValueError):
        return None


def machine_cpu():
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return sum(v) - idle, sum(v)


def sample_cpu(cloud, edges):
    """One CPU sample: monotonic time, cloud CPU s, edges' CPU s, machine (busy, total)."""
    edge_cpu = [cpu_seconds(p.pid) for p, _ in edges if p.poll() is None]
    return {"t": time.monotonic(), "cloud": cpu_seconds(cloud.pid),
            "edges": sum(c for c in edge_cpu if c is not None), "edges_alive": len(edge_cpu),
            "machine": machine_cpu()}


def steady_cpu(samples, window, edges):
    """CPU use between the first and last sample inside the steady window (all edges
    capturing): cores used by the cloud, by the edges, and the machine's busy fraction."""
    inside = [s for s in samples if window[0] <= s["t"] <= window[1] and
              s["edges_alive"] == edges and s["cloud"] is not None]
    if len(inside) < 2:
        return None
    a, b = inside[0], inside[-1]
    dt = b["t"] - a["t"]
    busy, total = b["machine"][0] - a["machine"][0], b["machine"][1] - a["machine"][1]
    return {"seconds": dt, "cloud_cores": (b["cloud"] - a["cloud"]) / dt,
            "edges_cores": (b["edges"] - a["edges"]) / dt,
            "machine_busy_fraction": busy / total if total else None}


def percentile(sorted_values, p):
    """Nearest rank, as the edge's own summary computes it."""
    if not sorted_values:
        return None
    rank = min(max(int(math.ceil(p / 100.0 * len(sorted_values))), 1), len(sorted_values))
    return sorted_values[rank - 1]


def cloud_counters(log_path):
    """The last periodic stats line and the final line of the cloud's log."""
    last, stopped = None, None
    try:
        with open(log_path) as f:
            for line in f:
                m = STATS_LINE.search(line)
                if m:
                    last = dict(zip(["served", "served_delta", "errors", "busy", "expired"],
                                    map(int, m.groups()[:5])))
                    last["mean_batch"] = float(m.group(6))
                m = STOPPED_LINE.search(line)
                if m:
                    stopped = dict(zip(["received", "answered", "errors", "busy", "expired"],
                                       map(int, m.groups())))
    except OSError:
        pass
    return last, stopped


def start_cloud(a, procs, log_path):
    extra = ["--threads", str(a.cloud_threads), "--stats-interval-s", "1"]
    if a.cloud_max_batch is not None:
        extra += ["--max-batch", str(a.cloud_max_batch)]
    if a.cloud_max_queue is not None:
        extra += ["--max-queue", str(a.cloud_max_queue)]
    try:
        proc, endpoint, _ = procs.cloud(a.model, extra=extra, log_path=log_path)
    except StartFailed as e:
        sys.exit("load_test: %s" % e)
    return proc, endpoint, proc.args


def edge_cmd(a, endpoint, i, frames):
    d = os.path.join(a.out_dir, "edge%02d" % i)
    os.makedirs(d, exist_ok=True)
    for stale in ("answers.jsonl", "summary.json"):  # from an earlier run: not this one's
        if os.path.exists(os.path.join(d, stale)):
            os.remove(os.path.join(d, stale))
    return [os.path.join(a.bin_dir, "edge", "deepcut-edge"), "--cloud", endpoint,
            "--model", a.model, "--source", a.source, "--frames", str(frames),
            "--fps", "%g" % a.fps, "--policy", a.policy, "--deadline-ms", "%g" % a.deadline_ms,
            "--progress", "off", "--out", os.path.join(d, "answers.jsonl"),
            "--summary", os.path.join(d, "summary.json")], d


def show_progress(started, edges, cloud_log, final=False):
    alive = sum(p.poll() is None for p, _ in edges)
    last, _ = cloud_counters(cloud_log)
    text = "[%5.1f s] edges running %d/%d" % (time.time() - started, alive, len(edges))
    if last:
        text += ("  cloud served %d (+%d/s)  busy %d  expired %d  mean batch %.1f" %
                 (last["served"], last["served_delta"], last["busy"], last["expired"],
                  last["mean_batch"]))
    if sys.stderr.isatty():
        sys.stderr.write("\r" + text + "   " + ("\n" if final else ""))
    else:
        sys.stderr.write(text + "\n")
    sys.stderr.flush()


def analyse_edge(i, directory, frames, returncode):
    """One edge's answers checked and tallied; problems listed, not raised."""
    r = {"edge": i, "exit_code": returncode, "problems": []}
    answers, summary = [], {}
    try:
        with open(os.path.join(directory, "answers.jsonl")) as f:
            answers = [json.loads(line) for line in f if line.strip()]
    except (OSError, ValueError) as e:
        r["problems"].append("answers unreadable: %s" % e)
    try:
        with open(os.path.join(directory, "summary.json")) as f:
            summary = json.load(f)
    except (OSError, ValueError) as e:
        r["problems"].append("summary unreadable: %s" % e)
    if returncode != 0:
        r["problems"].append("exited with %s" % returncode)
    per_frame = collections.Counter(a["frame"] for a in answers)
    missing = [f for f in range(frames) if per_frame[f] == 0]
    duplicated = [f for f, n in per_frame.items() if n > 1]
    stray = [f for f in per_frame if not 0 <= f < frames]
    if missing:
        r["problems"].append("%d frames without an answer (first %d)" % (len(missing), missing[0]))
    if duplicated:
        r["problems"].append("%d frames with several answers" % len(duplicated))
    if stray:
        r["problems"].append("%d answers for frames never sent" % len(stray))
    r.update(frames_in=summary.get("frames"), answers=answers, summary=summary)
    # First capture on the monotonic clock (Python's and the edge's are both
    # CLOCK_MONOTONIC on Linux), when the edge records it.
    captures = [x["capture_s"] for x in answers if "capture_s" in x]
    r["first_capture_s"] = min(captures) if captures else None
    r["last_capture_s"] = max(captures) if captures else None
    return r


def build_report(a, cmd_line, cloud_cmd, edge_results, cloud_info, timing):
    frames_expected = int(round(a.fps * a.seconds))
    routes, reasons_local = collections.Counter(), collections.Counter()
    cloud_latency, all_latency, steady_latency = [], [], []
    offloaded = uplink = on_time = total = cloud_on_time = 0
    # Steady state: every edge capturing (after the last one's first frame,
    # before the first one's last frame); start-up contention is left out.
    firsts = [r["first_capture_s"] for r in edge_results if r["first_capture_s"] is not None]
    lasts = [r["last_capture_s"] for r in edge_results if r["last_capture_s"] is not None]
    steady = (max(firsts), min(lasts)) if firsts and len(firsts) == len(edge_results) else None
    counters = collections.Counter()
    accuracy = []
    for r in edge_results:
        for ans in r["answers"]:
            total += 1
            routes[ans["route"]] += 1
            if ans["route"] == "local":
                reasons_local[ans["reason"]] += 1
            if ans["route"] == "cloud":
                cloud_latency.append(ans["latency_ms"])
                cloud_on_time += bool(ans.get("deadline_met"))
                if steady and steady[0] <= ans["capture_s"] <= steady[1]:
                    steady_latency.append(ans["latency_ms"])
            all_latency.append(ans["latency_ms"])
            offloaded += bool(ans.get("offloaded"))
            uplink += ans.get("bytes_sent", 0)
            on_time += bool(ans.get("deadline_met"))
        for k, v in r["summary"].get("counters", {}).items():
            counters[k] += v
        if r["summary"].get("accuracy") is not None:
            accuracy.append(r["summary"]["accuracy"])
    cloud_latency.sort()
    all_latency.sort()
    steady_latency.sort()

    def pcts(v):
        return {k: percentile(v, p) for k, p in
                (("p50", 50), ("p90", 90), ("p99", 99), ("max", 100))}

    frames_in = sum(r["frames_in"] or 0 for r in edge_results)
    starts = [r["first_capture_s"] - timing["edges_started_monotonic"]
              for r in edge_results if r["first_capture_s"] is not None]
    ok = all(not r["problems"] for r in edge_results)
    run_s = timing["edges_done"] - timing["edges_started"]
    return {
        "command": cmd_line,
        "cloud_command": cloud_cmd,
        "settings": {"edges": a.edges, "fps": a.fps, "seconds": a.seconds,
                     "frames_per_edge": frames_expected, "deadline_ms": a.deadline_ms,
                     "policy": a.policy, "source": a.source, "cloud_threads": a.cloud_threads,
                     "cloud_max_batch": a.cloud_max_batch, "cloud_max_queue": a.cloud_max_queue},
        "machine": {"cpus": os.cpu_count(), "loadavg_at_end": os.getloadavg()},
        "exactly_one_answer_each": ok,
        "frames_expected": frames_expected * a.edges,
        "frames_in": frames_in,
        "answered": total,
        "edges_failed": [r["edge"] for r in edge_results if r["exit_code"] != 0],
        "problems": {r["edge"]: r["problems"] for r in edge_results if r["problems"]},
        "routes": dict(routes),
        "local_reasons": dict(reasons_local),
        "offloaded": offloaded,
        "cloud_latency_ms": pcts(cloud_latency),
        "all_latency_ms": pcts(all_latency),
        "cloud_latency_steady_ms": pcts(steady_latency),
        "steady_window_s": steady[1] - steady[0] if steady else None,
        "steady_window_monotonic": steady,
        # Offloads whose cloud answer was delivered by the frame's deadline / offloads.
        "deadline_hit_ratio": cloud_on_time / offloaded if offloaded else None,
        # The edge's own figure (summary.deadline_hit_ratio): it counts every
        # route=="cloud" answer, including one taken after the deadline when the
        # edge was not scheduled in time to fall back.
        "cloud_answers_after_deadline": routes["cloud"] - cloud_on_time,
        # Every answer, whatever its route, by its deadline.
        "on_time_ratio": on_time / total if total else None,
        "busy_replies": counters["replies_busy"],
        "edge_counters": dict(counters),
        "cloud": cloud_info,
        "uplink_bytes": uplink,
        "uplink_bytes_per_offload": uplink / offloaded if offloaded else None,
        "uplink_kbit_per_s": 8e-3 * uplink / run_s if run_s > 0 else None,
        "accuracy_mean": sum(accuracy) / len(accuracy) if accuracy else None,
        "wall_seconds": {"edges_running": run_s, "launch": timing["launch"],
                         "launch_to_first_frame_max": max(starts) if starts else None},
    }


def print_report(rep):
    def ms(v):
        return "n/a" if v is None else "%.1f" % v

    def pct(v):
        return "n/a" if v is None else "%.2f %%" % (100 * v)

    s = rep["settings"]
    lat, alllat = rep["cloud_latency_ms"], rep["all_latency_ms"]
    steady = rep["cloud_latency_steady_ms"]
    cs = rep.get("cpu_steady")
    c = rep["cloud"]
    rows = [
        ("setup", "%d edges x %g fps x %g s, policy %s, deadline %g ms, cloud %d threads" %
         (s["edges"], s["fps"], s["seconds"], s["policy"], s["deadline_ms"], s["cloud_threads"])),
        ("frames in / answered", "%d / %d  (expected %d)" %
         (rep["frames_in"], rep["answered"], rep["frames_expected"])),
        ("exactly one answer each", "yes" if rep["exactly_one_answer_each"] else
         "NO: %s" % json.dumps(rep["problems"])),
        ("routes", "  ".join("%s %d" % kv for kv in sorted(rep["routes"].items()))),
        ("local answers, why", "  ".join("%s %d" % kv for kv in
                                         sorted(rep["local_reasons"].items())) or "none"),
        ("cloud latency p50/p90/p99", "%s / %s / %s ms  (max %s ms)" %
         (ms(lat["p50"]), ms(lat["p90"]), ms(lat["p99"]), ms(lat["max"]))),
        ("  steady state", "%s / %s / %s ms  (max %s ms; all edges capturing, %s s)" %
         (ms(steady["p50"]), ms(steady["p90"]), ms(steady["p99"]), ms(steady["max"]),
          ms(rep["steady_window_s"]))),
        ("all answers p50/p99", "%s / %s ms  (max %s ms)" %
         (ms(alllat["p50"]), ms(alllat["p99"]), ms(alllat["max"]))),
        ("deadline hit ratio", "%s of %d offloads  (on time, any route: %s)" %
         (pct(rep["deadline_hit_ratio"]), rep["offloaded"], pct(rep["on_time_ratio"]))),
        ("cloud answers past deadline", "%d" % rep["cloud_answers_after_deadline"]),
        ("shed by the cloud", "%d busy replies  (late replies %d, reconnects %d)" %
         (rep["busy_replies"], rep["edge_counters"].get("replies_late", 0),
          rep["edge_counters"].get("reconnects", 0))),
        ("cloud counters", "received %s  answered %s  busy %s  expired %s  errors %s" %
         tuple((c.get("final") or {}).get(k, "?") for k in
               ("received", "answered", "busy", "expired", "errors"))),
        ("cloud mean batch", "%s" % (c.get("last_stats") or {}).get("mean_batch", "?")),
        ("cloud CPU", "%s s over %.1f s of load (%s of one core)" %
         (ms(c.get("cpu_seconds")), rep["wall_seconds"]["edges_running"],
          pct(c.get("cpu_seconds") / rep["wall_seconds"]["edges_running"])
          if c.get("cpu_seconds") is not None else "n/a")),
        ("edges CPU (all)", "%s s, start-up included" % ms(rep.get("edges_cpu_seconds"))),
        ("CPU, steady state", "cloud %s cores, edges %s cores, machine %s busy (%s s)" %
         ((("%.2f" % cs["cloud_cores"]), ("%.2f" % cs["edges_cores"]),
           pct(cs["machine_busy_fraction"]), ms(cs["seconds"])) if cs else ("n/a",) * 4)),
        ("machine busy", "%s of %d cores  (load average %.1f before, %.1f after)" %
         (pct(rep.get("machine_busy_fraction")), rep["machine"]["cpus"],
          rep["machine"]["loadavg_at_start"][0], rep["machine"]["loadavg_at_end"][0])),
        ("uplink", "%.1f kB  (%s B per offload, %s kbit/s)" %
         (rep["uplink_bytes"] / 1e3, ms(rep["uplink_bytes_per_offload"]),
          ms(rep["uplink_kbit_per_s"]))),
        ("accuracy (mean of edges)", pct(rep["accuracy_mean"])),
        ("startup", "last edge's first frame %s s after the launch" %
         ms(rep["wall_seconds"]["launch_to_first_frame_max"])),
    ]
    print("DeepCut load test")
    for k, v in rows:
        print("  %-27s %s" % (k, v))


def main():
    a = parse_args()
    os.makedirs(a.out_dir, exist_ok=True)
    frames = int(round(a.fps * a.seconds))
    cloud_log = os.path.join(a.out_dir, "cloud.log")
    t0 = time.time()
    loadavg_at_start = os.getloadavg()  # the machine may be shared: say how busy it was
    procs = Processes(a.bin_dir, a.out_dir)
    cloud, endpoint, cloud_cmd = start_cloud(a, procs, cloud_log)
    print("load_test: cloud on %s; %d edges x %d frames at %g fps; output in %s" %
          (endpoint, a.edges, frames, a.fps, a.out_dir), file=sys.stderr)
    edges = []
    cloud_cpu0 = cpu_seconds(cloud.pid)
    machine0 = machine_cpu()
    children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    edges_started = time.time()
    edges_started_monotonic = time.monotonic()
    try:
        for i in range(a.edges):
            cmd, d = edge_cmd(a, endpoint, i, frames)
            log = open(os.path.join(d, "edge.log"), "w")
            edges.append((subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), d))
            log.close()
        launch = time.time() - edges_started
        limit = edges_started + a.seconds + 300  # generous: a stuck edge must not hang us
        next_show = next_sample = time.time()
        samples = []
        while any(p.poll() is None for p, _ in edges):
            if time.time() > limit:
                print("load_test: edges still running after %.0f s; killing them" %
                      (time.time() - edges_started), file=sys.stderr)
                for p, _ in edges:
                    if p.poll() is None:
                        p.kill()
                break
            if time.time() >= next_show:
                show_progress(edges_started, edges, cloud_log)
                next_show += 1.0 if sys.stderr.isatty() else 5.0
            if time.time() >= next_sample:
                samples.append(sample_cpu(cloud, edges))
                next_sample += 1.0
            time.sleep(0.2)
        for p, _ in edges:
            p.wait()
        edges_done = time.time()
        show_progress(edges_started, edges, cloud_log, final=True)
        cloud_cpu1 = cpu_seconds(cloud.pid)
        machine1 = machine_cpu()
        children1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    finally:
        for p, _ in edges:
            if p.poll() is None:
                p.kill()
        procs.stop_all()  # the cloud: SIGTERM, so that it logs its final counts
    last, stopped = cloud_counters(cloud_log)
    cloud_info = {
        "endpoint": endpoint,
        "exit_code": cloud.returncode,
        "last_stats": last,
        "final": stopped,
        "cpu_seconds": (cloud_cpu1 - cloud_cpu0
                        if cloud_cpu0 is not None and cloud_cpu1 is not None else None),
    }
    results = [analyse_edge(i, d, frames, p.returncode) for i, (p, d) in enumerate(edges)]
    rep = build_report(a, [sys.executable] + sys.argv, cloud_cmd, results, cloud_info,
                       {"edges_started": edges_started, "edges_done": edges_done,
                        "launch": launch, "edges_started_monotonic": edges_started_monotonic})
    # Edge CPU includes each edge's start-up (model load), the cloud's does not.
    rep["edges_cpu_seconds"] = ((children1.ru_utime + children1.ru_stime) -
                                (children0.ru_utime + children0.ru_stime))
    busy, total = machine1[0] - machine0[0], machine1[1] - machine0[1]
    rep["machine_busy_fraction"] = busy / total if total else None
    rep["machine"]["loadavg_at_start"] = loadavg_at_start
    rep["cpu_steady"] = (steady_cpu(samples, rep["steady_window_monotonic"], a.edges)
                         if rep["steady_window_monotonic"] else None)
    rep["cpu_samples"] = samples
    rep["total_wall_seconds"] = time.time() - t0
    with open(os.path.join(a.out_dir, "load-report.json"), "w") as f:
        json.dump(rep, f, indent=2)
        f.write("\n")
    print_report(rep)
    print("load_test: wrote %s" % os.path.join(a.out_dir, "load-report.json"))
    return 0 if rep["exactly_one_answer_each"] else 1


if __name__ == "__main__":
    sys.exit(main())
