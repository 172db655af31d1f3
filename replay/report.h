// The replay report: runs the requested policies (and the oracle) over one
// frame trace, link and budget, and writes the JSON, the markdown table and
// the plot. Output files are written whole or not at all.
#pragma once

#include <string>
#include <vector>

#include "cli/cli.h"
#include "core/status.h"
#include "replay/replay.h"

namespace deepcut::replay {

struct ReportOptions {
  std::string model_dir;
  ReplayOptions replay;
  std::string budget_text = "0";      // bit/s, "25%" of always-offload, or 0
  std::vector<std::string> policies;  // --policy, repeatable
  std::string policies_spec;          // --policies all|a,b,c
  // --fusion: "change=D,decay=S,exit=W,cloud=W" (any of them) over the package's
  // fusion settings, for tuning (scripts/tune_fusion.py); empty: the package's.
  std::string fusion_text;
  std::string policy_weights;  // learned: its network (default: the package's policy.json)
  std::string json_path, markdown_path, plot_path;
  std::string plot_script;  // empty: scripts/plot_replay.py of this source tree
  bool progress = true;     // a line per policy on stderr
};

// `text` ("change=0.2,decay=0.3,exit=1,cloud=8", any subset) applied over `base`.
Result<scheduler::FusionOptions> ParseFusionText(const std::string& text,
                                                 scheduler::FusionOptions base);

// The names --policies all runs, in the report's order.
std::vector<std::string> AllReportPolicies();

// Runs everything; returns the readable summary (markdown table).
Result<std::string> RunReport(const ReportOptions& options);

// deepcut-replay's --frames (a count; a file name is the trace, as before
// --source existed) and its uplink (--uplink, or the old --link FILE /
// --link-rate RATE: exactly one of them), into `options`.
Status ApplyFrameAndLinkFlags(ReportOptions& options, const std::string& frames,
                              const std::string& link_file, const std::string& link_rate);

// deepcut-replay's run: the package, the frames and the network traces checked
// first (exit codes 3, 4), then RunReport (2 for what it refuses, 5 if the run
// fails); the table goes to stdout.
cli::Outcome RunReplayApp(const ReportOptions& options);

}  // namespace deepcut::replay
