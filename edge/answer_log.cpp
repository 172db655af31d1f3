#include "edge/answer_log.h"

#include "core/files.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <sstream>

namespace deepcut::edge {
namespace {}  // namespace

AnswerLog::AnswerLog(AnswerLogOptions options, std::vector<std::string> class_names)
    : options_(std::move(options)),
      class_names_(std::move(class_names)),
      progress_("edge", "frames", options_.progress) {}

AnswerLog::~AnswerLog() {
  // A run that did not reach Finish leaves no partial per-frame file.
  if (jsonl_.is_open()) {
    jsonl_.close();
    std::error_code ec;
    std::filesystem::remove(jsonl_tmp_, ec);
  }
}

Result<std::unique_ptr<AnswerLog>> AnswerLog::Create(AnswerLogOptions options,
                                                     std::vector<std::string> class_names) {
  std::unique_ptr<AnswerLog> log(new AnswerLog(std::move(options), std::move(class_names)));
  if (!log->options_.jsonl_path.empty()) {
    log->jsonl_tmp_ = log->options_.jsonl_path + ".tmp";
    log->jsonl_.open(log->jsonl_tmp_, std::ios::trunc);
    if (!log->jsonl_) return NotFound("cannot write " + log->jsonl_tmp_);
  }
  return log;
}

void AnswerLog::Record(const Answer& a) {
  summary_.Add(a);
  if (jsonl_.is_open()) {
    nlohmann::json j{
        {"frame", a.frame_id},
        {"answer", a.class_id},
        {"answer_name",
         a.class_id >= 0 && a.class_id < (int)class_names_.size() ? class_names_[a.class_id] : ""},
        {"confidence", std::round(a.confidence * 1e4) / 1e4},
        {"route", RouteName(a.route)},
        {"reason", ReasonName(a.reason)},
        {"offloaded", a.offloaded},
        {"bytes_sent", a.uplink_bytes},
        {"latency_ms", static_cast<double>(a.LatencyUs()) / 1000.0},
        {"capture_s", static_cast<double>(a.capture_us) / 1e6},
        {"deadline_met", a.answer_us <= a.deadline_us}};
    if (a.label >= 0) j["label"] = a.label;
    // Scene fusion: the frames whose exit and cloud posteriors this answer pooled.
    if (a.evidence_exit + a.evidence_cloud > 0)
      j["evidence"] = {{"exit_frames", a.evidence_exit}, {"cloud_frames", a.evidence_cloud}};
    if (a.offloaded) j["rate"] = a.rate;
    jsonl_ << j.dump() << '\n';
  }
  if (options_.progress) DrawProgress(false);
}

void AnswerLog::DrawProgress(bool final) {
  const RunSummary& c = summary_.counts();
  char detail[128];
  std::snprintf(detail, sizeof detail, "acc %.2f%%  uplink %.1f kB  offload %lld",
                100.0 * c.Accuracy(), c.uplink_bytes / 1000.0, static_cast<long long>(c.offloaded));
  progress_.Update(c.frames, final ? c.frames : options_.expected_frames, detail);
  if (final) progress_.Done();
}

nlohmann::json AnswerLog::Summary(std::int64_t frames_in, double wall_seconds,
                                  const nlohmann::json& extra) const {
  nlohmann::json s = summary_.Build().ToJson();
  s["frames"] = frames_in;
  s["wall_seconds"] = wall_seconds;
  s["frames_per_second"] = wall_seconds > 0 ? answered() / wall_seconds : 0.0;
  for (const auto& [k, v] : extra.items()) s[k] = v;
  return s;
}

Status AnswerLog::Finish(const nlohmann::json& summary) {
  if (options_.progress) DrawProgress(true);
  Status status;
  if (jsonl_.is_open()) {
    jsonl_.close();
    std::error_code ec;
    std::filesystem::rename(jsonl_tmp_, options_.jsonl_path, ec);
    if (ec) status = Internal("cannot rename " + jsonl_tmp_ + ": " + ec.message());
  }
  if (!options_.summary_path.empty() && status.ok())
    status = WriteFileAtomically(options_.summary_path, summary.dump(2) + "\n");
  return status;
}

std::string AnswerLog::SummaryTable(const nlohmann::json& s) {
  std::ostringstream out;
  char line[160];
  auto row = [&](const char* k, const std::string& v) {
    std::snprintf(line, sizeof line, "  %-22s %s\n", k, v.c_str());
    out << line;
  };
  auto num = [](double v, const char* fmt) {
    char b[64];
    std::snprintf(b, sizeof b, fmt, v);
    return std::string(b);
  };
  out << "DeepCut edge summary\n";
  row("frames / answered", std::to_string(s["frames"].get<long long>()) + " / " +
                               std::to_string(s["answered"].get<long long>()));
  row("accuracy", s["accuracy"].is_null() ? "n/a (no labels)"
                                          : num(100.0 * s["accuracy"].get<double>(), "%.2f %%"));
  row("uplink", num(s["uplink_bytes"].get<double>() / 1000.0, "%.1f kB") + "  (" +
                    num(s["uplink_bytes_per_offload"].get<double>(), "%.1f B") + " per offload, " +
                    num(s["uplink_bps"].get<double>() / 1000.0, "%.1f kbit/s") + ")");
  row("offload fraction", num(100.0 * s["offload_fraction"].get<double>(), "%.1f %%"));
  row("latency p50/p95/p99", num(s["latency_ms"]["p50"].get<double>(), "%.2f") + " / " +
                                 num(s["latency_ms"]["p95"].get<double>(), "%.2f") + " / " +
                                 num(s["latency_ms"]["p99"].get<double>(), "%.2f") + " ms");
  row("deadline hit ratio", s["deadline_hit_ratio"].is_null()
                                ? "n/a (nothing offloaded)"
                                : num(100.0 * s["deadline_hit_ratio"].get<double>(), "%.1f %%"));
  std::string routes;
  for (const auto& [k, v] : s["routes"].items())
    if (v.get<long long>() > 0) routes += k + " " + std::to_string(v.get<long long>()) + "  ";
  row("routes", routes);
  std::string reasons;
  for (const auto& [k, v] : s["reasons"].items())
    reasons += k + " " + std::to_string(v.get<long long>()) + "  ";
  row("reasons", reasons);
  row("throughput", num(s["frames_per_second"].get<double>(), "%.1f frames/s") + " over " +
                        num(s["wall_seconds"].get<double>(), "%.1f s"));
  return out.str();
}

}  // namespace deepcut::edge
