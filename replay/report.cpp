#include "replay/report.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "core/files.h"
#include "core/units.h"
#include "edge/edge_runtime.h"
#include "network/net_trace.h"
#include "scheduler/policy.h"
#include "trace/frame_source.h"

namespace deepcut::replay {
namespace {

// The baselines, each in its published form and with DeepCut's answer rule.
const std::vector<std::string>& Baselines() {
  static const std::vector<std::string> names = {"edge-only", "periodic", "random", "confidence",
                                                 "framediff"};
  return names;
}

const std::vector<std::string>& Known() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n = {"edge-only", "always"};
    for (const auto& b : Baselines())
      if (b != "edge-only") n.push_back(b);
    for (const auto& b : Baselines()) n.push_back(b + "+fusion");
    n.insert(n.end(), {"deepcut", "learned", "oracle", "oracle-expected"});
    return n;
  }();
  return names;
}

std::string Fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

std::string Rate(double bps) {
  if (bps >= 1e6) return Fixed(bps / 1e6, 2) + " M";
  if (bps >= 1e3) return Fixed(bps / 1e3, 1) + " k";
  return Fixed(bps, 0) + " ";
}

struct Row {
  Metrics m;
  double realtime_factor = 0.0;
};

}  // namespace

std::vector<std::string> AllReportPolicies() { return Known(); }

Result<scheduler::FusionOptions> ParseFusionText(const std::string& text,
                                                 scheduler::FusionOptions f) {
  std::stringstream ss(text);
  for (std::string item; std::getline(ss, item, ',');) {
    const auto eq = item.find('=');
    const std::string key = item.substr(0, eq);
    double* target = key == "change"  ? &f.change_distance
                     : key == "decay" ? &f.decay_scale
                     : key == "exit"  ? &f.exit_weight
                     : key == "cloud" ? &f.cloud_weight
                                      : nullptr;
    if (eq == std::string::npos || !target)
      return InvalidArgument("--fusion: '" + item +
                             "' is not one of change=D, decay=S, exit=W, cloud=W");
    try {
      size_t used = 0;
      const std::string value = item.substr(eq + 1);
      *target = std::stod(value, &used);
      if (used != value.size() || !(*target >= 0.0) || !std::isfinite(*target))
        throw std::invalid_argument("value");
    } catch (const std::exception&) {
      return InvalidArgument("--fusion: '" + item + "' needs a number >= 0");
    }
  }
  return f;
}

Result<std::string> RunReport(const ReportOptions& o) {
  // Which policies, in the report's order.
  std::vector<std::string> wanted = o.policies;
  if (o.policies_spec == "all") {
    wanted = Known();
  } else if (!o.policies_spec.empty()) {
    std::stringstream ss(o.policies_spec);
    for (std::string name; std::getline(ss, name, ',');)
      if (!name.empty()) wanted.push_back(name);
  }
  if (wanted.empty()) wanted = {"deepcut"};
  for (auto& n : wanted) {
    if (n == "never") n = "edge-only";
    if (std::find(Known().begin(), Known().end(), n) == Known().end()) {
      std::string known;
      for (const auto& k : Known()) known += (known.empty() ? "" : ", ") + k;
      return InvalidArgument("unknown policy '" + n + "' (known: " + known + ", or all)");
    }
  }
  auto wants = [&](const std::string& n) {
    return std::find(wanted.begin(), wanted.end(), n) != wanted.end();
  };
  // The budget: bit/s, or a percentage of always-offload's bit/s.
  double budget_bps = 0.0, budget_percent = -1.0;
  if (!o.budget_text.empty() && o.budget_text.back() == '%') {
    try {
      size_t used = 0;
      budget_percent = std::stod(o.budget_text.substr(0, o.budget_text.size() - 1), &used);
      if (used + 1 != o.budget_text.size() || !(budget_percent > 0 && budget_percent <= 1000))
        throw std::invalid_argument("range");
    } catch (const std::exception&) {
      return InvalidArgument("--budget: '" + o.budget_text + "' is not a percentage in (0, 1000]");
    }
  } else {
    auto parsed = ParseBitRate(o.budget_text);
    if (!parsed.ok()) return InvalidArgument("--budget: " + parsed.status().message());
    budget_bps = *parsed;
  }
  if (o.json_path.empty() && o.markdown_path.empty() && o.plot_path.empty() && !o.progress)
    return InvalidArgument("nothing to report");
  if (!o.plot_path.empty() && o.json_path.empty())
    return InvalidArgument("--plot needs --out (the plot is drawn from the JSON report)");

  ASSIGN_OR_RETURN(auto manifest, splitnet::LoadManifest(o.model_dir));
  ReplayOptions replay_options = o.replay;
  if (!o.fusion_text.empty()) {
    auto fusion = ParseFusionText(o.fusion_text, edge::FusionFor(manifest));
    if (!fusion.ok()) return fusion.status();
    replay_options.fusion = *fusion;
  }
  if (!o.policy_weights.empty()) {
    auto net = edge::LoadPolicyNet(manifest, o.policy_weights);
    if (!net.ok()) return InvalidArgument("--policy-weights: " + net.status().message());
    replay_options.learned = *net;
  }
  ASSIGN_OR_RETURN(auto replayer, Replayer::Create(manifest, replay_options));
  if (o.policies_spec == "all" && !replayer->PolicyOptionsFor("learned").learned) {
    // A package without a trained policy: the rest of the table still means something.
    wanted.erase(std::remove(wanted.begin(), wanted.end(), "learned"), wanted.end());
    if (o.progress)
      std::cerr << "replay: learned: skipped (" << o.model_dir
                << " has no policy.json; deepcut-train-policy makes one)\n";
  }

  std::vector<Row> rows;
  std::unique_ptr<scheduler::OffloadPolicy> deepcut_policy;
  auto run = [&](const std::string& name, scheduler::PolicyOptions p,
                 std::unique_ptr<scheduler::OffloadPolicy>* keep) -> Result<Metrics> {
    ASSIGN_OR_RETURN(auto policy, scheduler::MakePolicy(p));
    ASSIGN_OR_RETURN(Metrics m,
                     replayer->Run(*policy, nullptr, scheduler::ParsePolicyChoice(name).fusion));
    m.policy = name;
    if (o.progress)
      std::cerr << "replay: " << name << ": " << m.summary.frames << " frames, accuracy "
                << Fixed(100 * m.summary.Accuracy(), 2) << "%, " << Rate(m.summary.UplinkBps())
                << "bit/s, " << Fixed(m.summary.duration_s / std::max(m.wall_s, 1e-9), 0)
                << "x real time\n";
    if (keep) *keep = std::move(policy);
    return m;
  };
  auto add = [&](const Metrics& m) {
    rows.push_back(Row{m, m.wall_s > 0 ? m.summary.duration_s / m.wall_s : 0.0});
  };
  double always_bps = -1.0;
  if (budget_percent > 0 || wants("always")) {
    auto p = replayer->PolicyOptionsFor("always");
    p.budget_bps = 0;
    ASSIGN_OR_RETURN(Metrics m, run("always", p, nullptr));
    always_bps = m.summary.UplinkBps();
    if (wants("always")) add(m);
  }
  if (budget_percent > 0) budget_bps = always_bps * budget_percent / 100.0;
  auto options_for = [&](const std::string& name) {
    auto p = replayer->PolicyOptionsFor(name);
    p.budget_bps = budget_bps;
    return p;
  };
  std::vector<Metrics> done;
  double deepcut_offload_fraction = -1.0;
  if (wants("deepcut") || wants("oracle") || wants("oracle-expected") || wants("random")) {
    ASSIGN_OR_RETURN(Metrics m, run("deepcut", options_for("deepcut"), &deepcut_policy));
    deepcut_offload_fraction = m.summary.OffloadFraction();
    if (wants("deepcut")) done.push_back(m);
  }
  if (wants("learned")) {
    ASSIGN_OR_RETURN(Metrics m, run("learned", options_for("learned"), nullptr));
    done.push_back(m);
  }
  for (const std::string& base : Baselines())
    for (const std::string& name : {base, base + "+fusion"}) {
      if (!wants(name)) continue;
      auto p = options_for(base);
      // "random at the same offload rate" as the DeepCut policy.
      if (base == "random" && deepcut_offload_fraction > 0)
        p.random_probability = deepcut_offload_fraction;
      ASSIGN_OR_RETURN(Metrics m, run(name, p, nullptr));
      done.push_back(m);
    }
  for (const std::string& name : Known())
    for (const Metrics& m : done)
      if (m.policy == name) add(m);
  const Metrics* oracle = nullptr;
  std::int64_t byte_budget = std::numeric_limits<std::int64_t>::max() / 4;
  if (wants("oracle") || wants("oracle-expected")) {
    ASSIGN_OR_RETURN(double duration_s, replayer->DurationS());
    if (budget_bps > 0) byte_budget = static_cast<std::int64_t>(budget_bps * duration_s / 8);
  }
  if (wants("oracle-expected")) {
    // Played through the runtime with DeepCut's answer rule, scored on the real answers.
    ASSIGN_OR_RETURN(auto plan, replayer->ExpectedOraclePlan(byte_budget));
    auto plan_policy =
        scheduler::MakePlanPolicy(plan, *deepcut_policy->scene(), edge::ModelFactsOf(manifest));
    ASSIGN_OR_RETURN(Metrics played, replayer->Run(*plan_policy, nullptr, /*fuse=*/true));
    played.policy = "oracle-expected";
    if (o.progress)
      std::cerr << "replay: oracle-expected: accuracy " << Fixed(100 * played.summary.Accuracy(), 2)
                << "%, " << Rate(played.summary.UplinkBps()) << "bit/s (its plan, played)\n";
    add(played);
  }
  if (wants("oracle")) {
    ASSIGN_OR_RETURN(auto solved, replayer->Oracle(byte_budget, *deepcut_policy->scene()));
    if (o.progress)
      std::cerr << "replay: oracle: accuracy " << Fixed(100 * solved.first.summary.Accuracy(), 2)
                << "%, " << Rate(solved.first.summary.UplinkBps()) << "bit/s (hindsight, solved in "
                << Fixed(solved.first.wall_s, 1) << " s)\n";
    add(solved.first);
    auto plan_policy = scheduler::MakePlanPolicy(solved.second, *deepcut_policy->scene(),
                                                 edge::ModelFactsOf(manifest));
    ASSIGN_OR_RETURN(Metrics replayed, replayer->Run(*plan_policy));
    replayed.policy = "oracle-replayed";
    add(replayed);
  }
  const Metrics *edge_only = nullptr, *expected = nullptr;
  for (const Row& r : rows) {
    if (r.m.policy == "oracle") oracle = &r.m;
    if (r.m.policy == "oracle-expected") expected = &r.m;
    if (r.m.policy == "edge-only") edge_only = &r.m;
  }

  // The JSON report.
  nlohmann::json policies = nlohmann::json::object();
  for (const Row& r : rows) {
    nlohmann::json j = r.m.ToJson();
    j["realtime_factor"] = r.realtime_factor;
    const double accuracy = r.m.summary.Accuracy();
    if (budget_bps > 0) j["budget_ratio"] = r.m.summary.UplinkBps() / budget_bps;
    // The yardstick: the share of oracle-expected's gain over edge-only.
    if (expected && edge_only && expected->summary.Accuracy() > edge_only->summary.Accuracy())
      j["expected_gain_fraction"] = (accuracy - edge_only->summary.Accuracy()) /
                                    (expected->summary.Accuracy() - edge_only->summary.Accuracy());
    if (oracle && oracle->summary.Accuracy() > 0) {
      const double best = oracle->summary.Accuracy();
      j["oracle_fraction"] = accuracy / best;
      if (edge_only && best > edge_only->summary.Accuracy())
        j["oracle_gain_fraction"] =
            (accuracy - edge_only->summary.Accuracy()) / (best - edge_only->summary.Accuracy());
    }
    policies[r.m.policy] = j;
  }
  const network::NetTrace& up = replayer->uplink();
  nlohmann::json report{{"model", o.model_dir},
                        {"source", o.replay.source},
                        {"uplink",
                         {{"trace", up.name},
                          {"mean_bps", up.MeanBps()},
                          {"delay_ms", o.replay.link.uplink.delay_ms},
                          {"queue_bytes", o.replay.link.uplink.queue_bytes}}},
                        {"downlink", o.replay.downlink},
                        {"budget", o.budget_text},
                        {"budget_bps", budget_bps},
                        {"always_bps", always_bps},
                        {"deadline_ms", o.replay.deadline_ms},
                        {"cloud_ms", o.replay.link.cloud_ms},
                        {"seed", o.replay.seed},
                        {"policies", policies}};
  // What the DeepCut policy learned of its scenes: P(the cloud's last answer
  // still holds) against feature distance.
  if (deepcut_policy && deepcut_policy->scene()) {
    nlohmann::json curve = nlohmann::json::array();
    for (int k = 0; k <= 20; ++k) {
      const double d = 0.02 * k;
      curve.push_back({d, deepcut_policy->scene()->ReuseProbability(d)});
    }
    report["deepcut_reuse_probability"] = curve;
  }

  // The table.
  std::ostringstream md;
  md << "Replay of " << o.replay.source << " over " << up.name << " (mean " << Rate(up.MeanBps())
     << "bit/s, delay " << o.replay.link.uplink.delay_ms << " ms), budget "
     << (budget_bps > 0 ? Rate(budget_bps) + "bit/s" : std::string("unlimited"))
     << (budget_percent > 0 ? " (" + Fixed(budget_percent, 0) + "% of always-offload)" : "")
     << ", deadline " << o.replay.deadline_ms << " ms\n\n";
  md << "| policy | accuracy | uplink bit/s | of budget | max 10 s bit/s | offloaded | "
        "cloud / reuse / local | deadline hit | p50 / p99 ms | of oracle | of oracle gain | "
        "of expected gain | x real time |\n";
  md << "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  for (const Row& r : rows) {
    const RunSummary& m = r.m.summary;
    const bool hindsight = r.m.hindsight;
    const auto& j = policies[r.m.policy];
    md << "| " << r.m.policy << (hindsight ? " (hindsight)" : "") << " | "
       << Fixed(100 * m.Accuracy(), 2) << "% | " << Rate(m.UplinkBps()) << " | "
       << (budget_bps > 0 ? Fixed(m.UplinkBps() / budget_bps, 2) : std::string("-")) << " | "
       << Rate(m.max_window_bps) << " | " << Fixed(100 * m.OffloadFraction(), 1) << "% | "
       << m.cloud_in_time << " / " << m.reused << " / " << m.local << " | "
       << (hindsight ? std::string("-") : Fixed(100 * m.DeadlineHitRatio(), 1) + "%") << " | "
       << (hindsight ? std::string("-") : Fixed(m.p50_ms, 1) + " / " + Fixed(m.p99_ms, 1)) << " | "
       << (j.contains("oracle_fraction") ? Fixed(j["oracle_fraction"].get<double>(), 3) : "-")
       << " | "
       << (j.contains("oracle_gain_fraction") ? Fixed(j["oracle_gain_fraction"].get<double>(), 3)
                                              : "-")
       << " | "
       << (j.contains("expected_gain_fraction")
               ? Fixed(j["expected_gain_fraction"].get<double>(), 3)
               : "-")
       << " | " << (hindsight ? std::string("-") : Fixed(r.realtime_factor, 0)) << " |\n";
  }

  if (!o.json_path.empty())
    RETURN_IF_ERROR(WriteFileAtomically(o.json_path, report.dump(2) + "\n"));
  if (!o.markdown_path.empty()) RETURN_IF_ERROR(WriteFileAtomically(o.markdown_path, md.str()));
  if (!o.plot_path.empty()) {
    const std::string script = o.plot_script.empty()
                                   ? std::string(DEEPCUT_SOURCE_DIR) + "/scripts/plot_replay.py"
                                   : o.plot_script;
    const std::string cmd =
        "/usr/bin/python3 '" + script + "' '" + o.json_path + "' '" + o.plot_path + "'";
    if (std::system(cmd.c_str()) != 0)
      return Internal("plotting failed (" + cmd + "); the JSON report is written");
  }
  return md.str();
}

Status ApplyFrameAndLinkFlags(ReportOptions& o, const std::string& frames,
                              const std::string& link_file, const std::string& link_rate) {
  char* end = nullptr;
  const long long count = std::strtoll(frames.c_str(), &end, 10);
  if (!frames.empty() && *end == '\0') {
    if (count < -1) return InvalidArgument("--frames: must be >= -1 (got " + frames + ")");
    if (count >= 0) o.replay.max_frames = count;
  } else if (o.replay.source.empty()) {
    o.replay.source = "trace:" + frames;
  } else {
    return InvalidArgument("--frames: '" + frames + "' is not a count (the trace is --source)");
  }
  if (o.replay.max_frames < -1) return InvalidArgument("--frames-max: must be >= -1");
  if (o.replay.source.empty()) return InvalidArgument("give the frames with --source trace:FILE");
  const int links = !o.replay.uplink.empty() + !link_file.empty() + !link_rate.empty();
  if (links != 1) return InvalidArgument("give the uplink once, with --uplink TRACE|RATE");
  if (!link_file.empty()) o.replay.uplink = link_file;
  if (!link_rate.empty()) o.replay.uplink = link_rate;
  return Status::Ok();
}

cli::Outcome RunReplayApp(const ReportOptions& o) {
  if (auto manifest = splitnet::LoadManifest(o.model_dir); !manifest.ok())
    return cli::Fail(cli::kExitBadModel, manifest.status());
  for (const auto& [flag, spec] :
       {std::pair{"--uplink", o.replay.uplink}, std::pair{"--downlink", o.replay.downlink}})
    if (auto link = network::OpenLink(spec); !link.ok())
      return cli::Fail(
          cli::kExitBadInput,
          Status(link.status().code(), std::string(flag) + ": " + link.status().message()));
  if (auto source = trace::OpenSource({.spec = o.replay.source}); !source.ok())
    return cli::Fail(cli::kExitBadInput,
                     Status(source.status().code(), "--source: " + source.status().message()));
  auto report = RunReport(o);
  if (!report.ok())
    return cli::Fail(report.status().code() == StatusCode::kInvalidArgument ? cli::kExitBadOption
                                                                            : cli::kExitFailed,
                     report.status());
  std::cout << *report << std::flush;
  return std::nullopt;
}

}  // namespace deepcut::replay
