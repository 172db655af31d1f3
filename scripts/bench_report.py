#!/usr/bin/python3
"""Joins the micro benchmark JSON and the ratio JSON into report.json and a
short summary.md, and prints the summary."""
import json
import os
import platform
import sys


def write(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def main(micro_path, ratios_path, out_dir):
    with open(micro_path) as f:
        micro = json.load(f)
    with open(ratios_path) as f:
        ratios = json.load(f)
    rows = []
    for b in micro["benchmarks"]:
        if b.get("run_type") == "aggregate":
            continue
        unit = b.get("time_unit", "ns")
        scale = {"ns": 1e-3, "us": 1.0, "ms": 1e3}[unit]
        rows.append({"name": b["name"], "label": b.get("label", ""),
                     "us_per_iteration": b["real_time"] * scale,
                     "items_per_second": b.get("items_per_second")})
    report = {"machine": {"cpus": os.cpu_count(), "host": platform.node(),
                          "context": micro.get("context", {})},
              "micro": rows, "ratios": ratios}
    write(os.path.join(out_dir, "report.json"), json.dumps(report, indent=2) + "\n")

    lines = ["# DeepCut benchmarks", "",
             "Measured on %d CPUs, side by side in one run; ratios are what to compare across "
             "machines." % os.cpu_count(), "", "## Ratios", "",
             "| ratio | value | goal | figures |", "|---|---:|---|---|"]
    e = ratios.get("edge_overhead")
    if e:
        lines.append("| edge overhead, offloading every frame: (pipeline − head+exit) / head+exit, "
                     "median of %d chunk pairs | %.3f | ≤ 0.05 | pipeline %.0f µs/frame, head+exit "
                     "%.0f µs/frame (process CPU time, ZeroMQ I/O thread and loopback TCP included; "
                     "the peer answers at once) |"
                     % (e["chunk_pairs"], e["ratio"], e["pipeline_us_per_frame"],
                        e["inference_us_per_frame"]))
        if "zeromq_floor_ratio" in e:
            lines.append("| of which ZeroMQ itself: a bare DEALER sending one message per frame "
                         "in the same pattern | %.3f | report | %.0f µs/frame |"
                         % (e["zeromq_floor_ratio"], e["zeromq_floor_us_per_frame"]))
            lines.append("| the runtime beyond ZeroMQ's floor | %.3f | ≤ 0.05 | |"
                         % e["runtime_beyond_zeromq_ratio"])
    e = ratios.get("edge_overhead_real_cloud")
    if e:
        lines.append("| edge overhead against the real cloud on the same cores (its tail runs "
                     "only in the pipeline's slices) | %.3f | report | pipeline %.0f µs/frame, "
                     "head+exit %.0f µs/frame |"
                     % (e["ratio"], e["pipeline_us_per_frame"], e["inference_us_per_frame"]))
    e = ratios.get("edge_overhead_local")
    if e:
        lines.append("| edge overhead, answering locally (no network) | %.3f | ≤ 0.05 | "
                     "pipeline %.0f µs/frame, head+exit %.0f µs/frame |"
                     % (e["ratio"], e["pipeline_us_per_frame"], e["inference_us_per_frame"]))
    x = ratios.get("exray_overhead")
    if x:
        lines.append("| recording every %dth frame (ML-EXray): (recording − plain) / plain wall time "
                     "per frame, median of %d chunk pairs | %.3f | ≤ 0.10 | %.0f vs %.0f µs/frame; "
                     "process CPU (the writer thread included) %.3f: %.0f vs %.0f µs/frame; %d "
                     "records, %d skipped |"
                     % (x["every"], x["chunk_pairs"], x["ratio"], x["recording_us_per_frame"],
                        x["plain_us_per_frame"], x["cpu_ratio"], x["recording_cpu_us_per_frame"],
                        x["plain_cpu_us_per_frame"], x["records"], x["records_skipped"]))
    x = ratios.get("harvest_overhead")
    if x:
        lines.append("| harvesting (the harvest sampler on every frame, 1 in %d kept into SQLite): "
                     "(harvesting − plain) / plain wall time per frame, median of %d chunk pairs | "
                     "%.3f | ≤ 0.05 | %.0f vs %.0f µs/frame; process CPU (the writer thread "
                     "included) %.3f: %.0f vs %.0f µs/frame; %d of %d frames kept |"
                     % (x["one_in"], x["chunk_pairs"], x["ratio"], x["harvesting_us_per_frame"],
                        x["plain_us_per_frame"], x["cpu_ratio"], x["harvesting_cpu_us_per_frame"],
                        x["plain_cpu_us_per_frame"], x["committed"], x["offered"]))
    c = ratios.get("cloud_efficiency")
    if c:
        lines.append("| cloud efficiency served / bare tail (frames/s) | %.3f | ≥ 0.9 | served %.0f "
                     "frames/s to %d edges, bare tail %.0f frames/s, %d thread(s), mean batch %.1f |"
                     % (c["ratio"], c["served_fps"], c["edges"], c["bare_tail_fps"], c["threads"],
                        c["mean_batch"]))
        lines.append("| cloud efficiency per CPU-second (whole cloud process / bare tail) | %.3f | "
                     "— | %.0f vs %.0f frames per CPU-second (the load generator shares the cores) |"
                     % (c["cpu_ratio"], c["served_frames_per_cpu_second"],
                        c["bare_frames_per_cpu_second"]))
    x = ratios.get("metrics_overhead")
    if x:
        lines.append("| a cloud with --metrics-listen, scraped every %.1f s / not scraped, frames/s "
                     "under the same load, alternating slices | %.3f | ≥ 0.98 | %.0f vs %.0f frames/s; "
                     "median of %d slice ratios %.3f; %d scrapes, %d failed |"
                     % (x["scrape_interval_s"], x["ratio"], x["metrics_fps"], x["plain_fps"],
                        x["slices"], x["median_slice_ratio"], x["scrapes"], x["failed_scrapes"]))
    r = ratios.get("loopback_rtt")
    if r:
        lines.append("| loopback round trip minus tail / echo spending the tail's time, minus it "
                     "(p50, %d interleaved rounds) | %.2f | ≤ 1.5 | RTT p50/p99 %.0f/%.0f µs, minus "
                     "tail %.0f/%.0f µs; echo that spins %.0f µs: %.0f/%.0f µs after it; %d-byte "
                     "requests |"
                     % (r["rounds"], r["ratio_p50"], r["rtt_us"]["p50"], r["rtt_us"]["p99"],
                        r["rtt_minus_tail_us"]["p50"], r["rtt_minus_tail_us"]["p99"],
                        r["echo_busy_us"], r["busy_echo_minus_busy_us"]["p50"],
                        r["busy_echo_minus_busy_us"]["p99"], r["request_bytes"]))
        lines.append("| the same against a bare echo that replies at once (p50) | %.2f | report | "
                     "bare echo %.0f/%.0f µs; the cloud's queue %.0f µs and payload decoding %.0f "
                     "µs (p50) are in the round trip |"
                     % (r["ratio_to_idle_echo_p50"], r["bare_echo_us"]["p50"],
                        r["bare_echo_us"]["p99"], r["cloud_queue_us"]["p50"],
                        r["cloud_decode_us"]["p50"]))
    lines += ["", "## Micro benchmarks", "", "| benchmark | label | µs / iteration |",
              "|---|---|---:|"]
    for row in rows:
        lines.append("| %s | %s | %.3f |" % (row["name"], row["label"], row["us_per_iteration"]))
    text = "\n".join(lines) + "\n"
    write(os.path.join(out_dir, "summary.md"), text)
    print(text)
    print("bench: wrote %s and %s" % (os.path.join(out_dir, "report.json"),
                                      os.path.join(out_dir, "summary.md")))


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: bench_report.py MICRO.json RATIOS.json OUT_DIR")
    main(*sys.argv[1:])
