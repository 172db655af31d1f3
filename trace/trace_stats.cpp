#include "trace/trace_stats.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <sstream>
#include <vector>

namespace deepcut::trace {
namespace {

RunStats Summarise(const std::vector<std::int64_t>& runs) {
  RunStats s;
  if (runs.empty()) return s;
  s.count = static_cast<std::int64_t>(runs.size());
  s.min_frames = *std::min_element(runs.begin(), runs.end());
  s.max_frames = *std::max_element(runs.begin(), runs.end());
  std::int64_t total = 0;
  for (auto r : runs) total += r;
  s.mean_frames = static_cast<double>(total) / static_cast<double>(runs.size());
  return s;
}

nlohmann::json RunJson(const RunStats& r, double fps) {
  nlohmann::json j{{"count", r.count},
                   {"min_frames", r.min_frames},
                   {"max_frames", r.max_frames},
                   {"mean_frames", r.mean_frames}};
  if (fps > 0) j["mean_s"] = r.mean_frames / fps;
  return j;
}

std::string Format(const char* format, auto... args) {
  char text[256];
  std::snprintf(text, sizeof(text), format, args...);
  return text;
}

}  // namespace

Result<TraceStats> InspectTrace(const std::string& path,
                                const std::function<void(std::int64_t, std::int64_t)>& progress) {
  ASSIGN_OR_RETURN(auto reader, FrameTraceReader::Open(path));
  TraceStats s;
  s.path = path;
  std::error_code ec;
  s.file_bytes = static_cast<std::int64_t>(std::filesystem::file_size(path, ec));
  s.header = reader->header();
  const std::int64_t total = reader->Remaining();
  std::vector<std::int64_t> label_runs, scenes;
  int run_label = -1;
  std::int64_t previous_us = 0;
  while (true) {
    ASSIGN_OR_RETURN(auto record, reader->Next());
    if (!record) break;
    const FrameRecord& r = *record;
    if (r.index == 0) {
      s.first_capture_us = r.capture_us;
    } else {
      const std::int64_t interval = r.capture_us - previous_us;
      s.min_interval_us = r.index == 1 ? interval : std::min(s.min_interval_us, interval);
      s.max_interval_us = std::max(s.max_interval_us, interval);
    }
    previous_us = s.last_capture_us = r.capture_us;
    ++s.sizes[std::to_string(r.image.cols) + "x" + std::to_string(r.image.rows) + "x" +
              std::to_string(r.image.channels())];
    ++s.labels[r.label];
    // A run of a known label; an unknown label ends it.
    if (r.label >= 0 && r.label == run_label && !label_runs.empty())
      ++label_runs.back();
    else if (r.label >= 0)
      label_runs.push_back(1);
    run_label = r.label;
    if (s.header.scene_starts_marked) {
      if (r.scene_start || scenes.empty())
        scenes.push_back(1);
      else
        ++scenes.back();
    }
    ++s.frames;
    if (progress && (s.frames % 500 == 0 || s.frames == total)) progress(s.frames, total);
  }
  s.label_runs = Summarise(label_runs);
  s.scenes = Summarise(scenes);
  const double span_s = static_cast<double>(s.last_capture_us - s.first_capture_us) * 1e-6;
  if (s.frames > 1 && span_s > 0) s.measured_fps = static_cast<double>(s.frames - 1) / span_s;
  const double fps = s.header.fps > 0 ? s.header.fps : s.measured_fps;
  s.duration_s = s.frames == 0 ? 0.0 : span_s + (fps > 0 ? 1.0 / fps : 0.0);
  return s;
}

nlohmann::json TraceStats::ToJson() const {
  nlohmann::json labels_json = nlohmann::json::object();
  for (const auto& [label, count] : labels) {
    std::string name = label < 0 ? "unknown" : std::to_string(label);
    labels_json[name] = count;
  }
  const double fps = header.fps > 0 ? header.fps : measured_fps;
  nlohmann::json j{{"path", path},
                   {"file_bytes", file_bytes},
                   {"header", header.ToJson()},
                   {"frames", frames},
                   {"duration_s", duration_s},
                   {"first_capture_us", first_capture_us},
                   {"last_capture_us", last_capture_us},
                   {"min_interval_us", min_interval_us},
                   {"max_interval_us", max_interval_us},
                   {"fps", header.fps},
                   {"measured_fps", measured_fps},
                   {"sizes", sizes},
                   {"labels", labels_json}};
  if (label_runs.count > 0) j["label_runs"] = RunJson(label_runs, fps);
  if (scenes.count > 0) j["scenes"] = RunJson(scenes, fps);
  return j;
}

std::string TraceStats::ToText() const {
  std::ostringstream out;
  const double fps = header.fps > 0 ? header.fps : measured_fps;
  out << "frame trace  " << path << "  (" << kFrameTraceFormat << ", " << file_bytes << " bytes)\n";
  out << "  source      " << (header.source.empty() ? "-" : header.source);
  if (header.seed >= 0) out << "  seed " << header.seed;
  out << "  created " << (header.created.empty() ? "-" : header.created) << "\n";
  out << "  frames      " << frames
      << Format("  over %.3f s  (nominal %.3g fps, measured %.3g fps)\n", duration_s, header.fps,
                measured_fps);
  if (frames > 1)
    out << Format("  intervals   %.3f .. %.3f ms\n", min_interval_us * 1e-3,
                  max_interval_us * 1e-3);
  out << "  sizes      ";
  for (const auto& [size, count] : sizes) out << " " << size << " (" << count << ")";
  out << "\n  labels     ";
  const char* separator = " ";
  for (const auto& [label, count] : labels) {
    out << separator;
    separator = ", ";
    if (label < 0)
      out << "unknown " << count;
    else if (label < static_cast<int>(header.classes.size()))
      out << label << ":" << header.classes[label] << " " << count;
    else
      out << label << " " << count;
  }
  out << "\n";
  auto runs = [&](const char* name, const RunStats& r) {
    out << Format("  %-11s %lld, %lld .. %lld frames, mean %.1f", name,
                  static_cast<long long>(r.count), static_cast<long long>(r.min_frames),
                  static_cast<long long>(r.max_frames), r.mean_frames);
    if (fps > 0) out << Format(" (%.2f s)", r.mean_frames / fps);
    out << "\n";
  };
  if (label_runs.count > 0) runs("label runs", label_runs);
  if (scenes.count > 0) runs("scenes", scenes);
  if (!header.params.empty()) out << "  params      " << header.params.dump() << "\n";
  return out.str();
}

}  // namespace deepcut::trace
