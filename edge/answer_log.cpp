#include "edge/answer_log.h"

#include "core/files.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <sstream>

namespace deepcut::edge {
namespace {

double Percentile(std::vector<std::int64_t> v, double p) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  // Nearest-rank percentile.
  size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size())));
  rank = std::clamp<size_t>(rank, 1, v.size());
  return static_cast<double>(v[rank - 1]);
}

}  // namespace

AnswerLog::AnswerLog(AnswerLogOptions options, std::vector<std::string> class_names)
    : options_(std::move(options)), class_names_(std::move(class_names)) {}

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
  if (seen_[a.frame_id]++ > 0) ++duplicates_;
  latencies_us_.push_back(a.LatencyUs());
  if (a.label >= 0) {
    ++labelled_;
    correct_ += a.Correct();
  }
  uplink_bytes_ += a.uplink_bytes;
  if (a.offloaded) {
    ++offloaded_;
    rates_[a.rate]++;
    if (a.route == Route::kCloud && a.answer_us <= a.deadline_us) ++cloud_in_time_;
  }
  if (a.answer_us <= a.deadline_us) ++on_time_;
  routes_[RouteName(a.route)]++;
  reasons_[ReasonName(a.reason)]++;
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
    if (a.offloaded) j["rate"] = a.rate;
    jsonl_ << j.dump() << '\n';
  }
  if (options_.progress) DrawProgress(false);
}

void AnswerLog::DrawProgress(bool final) {
  const std::int64_t n = answered();
  // Redraw at most ~200 times per run.
  const std::int64_t step = std::max<std::int64_t>(1, options_.expected_frames / 200);
  if (!final && last_drawn_ >= 0 && n - last_drawn_ < step) return;
  last_drawn_ = n;
  const double acc = labelled_ ? 100.0 * correct_ / labelled_ : 0.0;
  const double kb = uplink_bytes_ / 1000.0;
  if (options_.expected_frames > 0) {
    const int width = 30;
    const double frac = std::min(1.0, double(n) / options_.expected_frames);
    std::string bar(static_cast<size_t>(frac * width), '#');
    bar.resize(width, '.');
    std::fprintf(stderr, "\r[%s] %lld/%lld  acc %.2f%%  uplink %.1f kB  offload %lld", bar.c_str(),
                 (long long)n, (long long)options_.expected_frames, acc, kb, (long long)offloaded_);
  } else {
    std::fprintf(stderr, "\r%lld frames  acc %.2f%%  uplink %.1f kB  offload %lld", (long long)n,
                 acc, kb, (long long)offloaded_);
  }
  if (final) std::fputc('\n', stderr);
  std::fflush(stderr);
}

nlohmann::json AnswerLog::Summary(std::int64_t frames_in, double wall_seconds,
                                  const nlohmann::json& extra) const {
  const std::int64_t n = answered();
  auto ms = [&](double p) { return Percentile(latencies_us_, p) / 1000.0; };
  nlohmann::json s{
      {"frames", frames_in},
      {"answered", n},
      {"duplicate_answers", duplicates_},
      {"labelled", labelled_},
      {"accuracy", labelled_ ? nlohmann::json(double(correct_) / labelled_) : nlohmann::json()},
      {"uplink_bytes", uplink_bytes_},
      {"uplink_bytes_per_frame", n ? double(uplink_bytes_) / n : 0.0},
      {"uplink_bytes_per_offload", offloaded_ ? double(uplink_bytes_) / offloaded_ : 0.0},
      {"uplink_bps", wall_seconds > 0 ? 8.0 * uplink_bytes_ / wall_seconds : 0.0},
      {"offloaded", offloaded_},
      {"offload_fraction", n ? double(offloaded_) / n : 0.0},
      {"latency_ms", {{"p50", ms(50)}, {"p95", ms(95)}, {"p99", ms(99)}, {"max", ms(100)}}},
      {"deadline_hit_ratio",
       offloaded_ ? nlohmann::json(double(cloud_in_time_) / offloaded_) : nlohmann::json()},
      {"on_time_ratio", n ? double(on_time_) / n : 0.0},
      {"routes", routes_},
      {"reasons", reasons_},
      {"rates", rates_},
      {"wall_seconds", wall_seconds},
      {"frames_per_second", wall_seconds > 0 ? n / wall_seconds : 0.0},
  };
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
    routes += k + " " + std::to_string(v.get<long long>()) + "  ";
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
