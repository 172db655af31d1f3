// deepcut-edge's run: model, policy, link, source, answer log and control
// endpoint put together from its options, then the run loop. Its main.cpp only
// declares the flags that fill EdgeAppOptions.
//
//   edge::EdgeAppOptions o;   // filled from the command line
//   return cli::Finish(edge::RunEdgeApp(o, cli::StopOnSignals()));
//
// It prints the run's summary table on stdout and writes the answers and the
// summary JSON where the options say. Failures come back with their exit code:
// a bad model package (3), source (4), option (2), or a failed run (5).
#pragma once

#include <atomic>
#include <string>

#include "cli/cli.h"
#include "edge/edge_runtime.h"
#include "edge/stream_driver.h"
#include "harvest/harvester.h"
#include "scheduler/policy.h"
#include "trace/frame_source.h"

namespace deepcut::edge {

struct EdgeAppOptions {
  // One or more, comma-separated, e.g. tcp://10.0.0.5:5555,tcp://10.0.0.6:5555;
  // a name that resolves to several addresses stands for each of them.
  std::string cloud_endpoint;
  double resolve_interval_s = 10.0;  // names in cloud_endpoint resolved again this often
  double rebalance_s = 0.0;          // reopen connections about this old (0: never)
  std::string metrics_listen;        // HOST:PORT of /metrics, /healthz, /ready; empty: none
  std::string cloud_key_file;        // the cloud's CURVE .pub; empty: plaintext
  std::string curve_key_file;        // this edge's CURVE .key (with cloud_key_file)
  std::string model_dir;             // model package
  std::string policy_name = "deepcut";
  std::string policy_weights;     // learned: the network (default: the package's policy.json)
  std::string budget_text = "0";  // bit/s with suffixes; 0: unlimited
  std::string control_endpoint;   // the live knob's; empty: none
  std::string out_path;           // per-frame answers (JSONL); empty: none
  std::string summary_path;       // summary JSON; empty: none
  std::string progress = "auto";  // auto (a terminal) | on | off
  // The answer rule: on (scene fusion), off (a frame's own answer), auto (on for
  // deepcut, learned and NAME+fusion).
  std::string fusion = "auto";
  ExrayOptions exray;  // deployment visibility: dir empty, off
  // Harvesting (docs/harvest.md): store_path empty, off.
  harvest::HarvesterOptions harvest;
  std::string harvest_sampler = "harvest";
  std::string harvest_budget = "120/h";
  double harvest_finish_s = 0.0;  // after the source ends, keep uploading this long
  EdgeOptions runtime;
  trace::SourceOptions source;
  StreamOptions stream;
  scheduler::PolicyOptions policy;  // name, budget and model are set from the above
};

cli::Outcome RunEdgeApp(EdgeAppOptions options, const std::atomic<bool>& stop);

}  // namespace deepcut::edge
