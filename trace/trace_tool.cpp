#include "trace/trace_tool.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <opencv2/videoio.hpp>

#include "core/clock.h"
#include "core/progress.h"
#include "trace/frame_trace.h"
#include "trace/trace_stats.h"

namespace deepcut::trace {
namespace {

using cli::Fail;

std::string Summary(const FrameTraceWriter& w, double fps) {
  char text[256];
  const double seconds = fps > 0 ? static_cast<double>(w.frames()) / fps : 0.0;
  std::snprintf(text, sizeof(text),
                "wrote %s: %lld frames, %.1f s at %.3g fps, %.1f kB (%.0f B/frame)",
                w.path().c_str(), static_cast<long long>(w.frames()), seconds, fps,
                static_cast<double>(w.bytes_written()) / 1000.0,
                w.frames() > 0 ? static_cast<double>(w.bytes_written()) / w.frames() : 0.0);
  return text;
}

cli::Failure Interrupted(const std::string& out) {
  return Fail(cli::kExitInterrupted, Unavailable("interrupted; " + out + " not written"));
}

}  // namespace

cli::Outcome MakeTrace(const MakeOptions& o, const std::atomic<bool>& stop) {
  auto items = LoadFashionMnist(o.fashion_mnist_dir, o.split);
  if (!items.ok()) return Fail(cli::kExitBadInput, items.status());
  const std::int64_t item_count = items->count();
  auto maker = SceneMaker::Create(std::move(*items), o.scene);
  if (!maker.ok()) return Fail(cli::kExitBadOption, maker.status());
  FrameTraceHeader header;
  header.fps = o.scene.fps;
  header.source = "scene:" + o.dataset + ":" + o.split;
  header.seed = static_cast<std::int64_t>(o.scene.seed & 0x7fffffffffffffffull);
  header.scene_starts_marked = true;
  header.classes = (*maker)->items().classes;
  header.params = (*maker)->Params();
  header.params["dataset"] = o.dataset;
  header.params["split"] = o.split;
  header.params["items"] = item_count;
  auto writer = FrameTraceWriter::Create(o.out, header);
  if (!writer.ok())
    return Fail(cli::kExitFailed,
                Status(writer.status().code(), "--out: " + writer.status().message()));
  ProgressLine progress("make", "frames");
  std::int64_t scenes = 0;
  while (auto frame = (*maker)->Next()) {
    if (stop) return Interrupted(o.out);
    Status s = (*writer)->Append(frame->image, frame->capture_us, frame->label, frame->scene_start);
    if (!s.ok()) return Fail(cli::kExitFailed, s);
    scenes += frame->scene_start ? 1 : 0;
    progress.Update(frame->index + 1, o.scene.frames);
  }
  if (Status s = (*writer)->Finish(); !s.ok()) return Fail(cli::kExitFailed, s);
  progress.Done();
  std::printf(
      "%s\n  %lld items in view, %.1f frames each on average (seed %llu)\n",
      Summary(**writer, o.scene.fps).c_str(), static_cast<long long>(scenes),
      static_cast<double>(o.scene.frames) / static_cast<double>(std::max<std::int64_t>(1, scenes)),
      static_cast<unsigned long long>(o.scene.seed));
  return std::nullopt;
}

cli::Outcome RecordTrace(const RecordOptions& o, const std::atomic<bool>& stop) {
  auto source = OpenSource(o.source);
  if (!source.ok())
    return Fail(cli::kExitBadInput,
                Status(source.status().code(), "--source: " + source.status().message()));
  const bool live = (*source)->IsLive();
  if (live && o.frames < 0)
    return Fail(cli::kExitBadOption, InvalidArgument("--frames: a live source (" + o.source.spec +
                                                     ") needs a frame count"));
  FrameTraceHeader header;
  header.source = o.source.spec;
  header.fps = live ? 0.0 : o.fps;
  if (!o.fps_given && o.source.spec.starts_with("video:")) {
    cv::VideoCapture video(o.source.spec.substr(6));
    const double video_fps = video.isOpened() ? video.get(cv::CAP_PROP_FPS) : 0.0;
    if (std::isfinite(video_fps) && video_fps > 0 && video_fps <= 1e6) header.fps = video_fps;
  }
  if (o.source.spec.starts_with("fashion-mnist:")) header.classes = FashionMnistClasses();
  if (o.source.spec.starts_with("trace:")) {
    // A copy of a trace keeps its class names and nominal rate.
    if (auto original = FrameTraceReader::Open(o.source.spec.substr(6)); original.ok()) {
      header.classes = (*original)->header().classes;
      if ((*original)->header().fps > 0) header.fps = (*original)->header().fps;
    }
  }
  auto writer = FrameTraceWriter::Create(o.out, header);
  if (!writer.ok())
    return Fail(cli::kExitFailed,
                Status(writer.status().code(), "--out: " + writer.status().message()));
  RealClock clock;
  std::int64_t expected = (*source)->Remaining();
  if (o.frames >= 0 && (expected < 0 || expected > o.frames)) expected = o.frames;
  ProgressLine progress("record", "frames");
  TimeUs start_us = -1, last_us = 0;
  std::int64_t written = 0, skipped = 0, failures_in_a_row = 0;
  while (o.frames < 0 || written < o.frames) {
    if (stop) return Interrupted(o.out);
    auto next = (*source)->Next();
    if (!next.ok()) {
      // As the edge does: skip an unreadable item, give up on a source that keeps failing.
      spdlog::warn("skipping unreadable source item: {}", next.status().message());
      ++skipped;
      if (++failures_in_a_row >= 100)
        return Fail(cli::kExitBadInput,
                    Unavailable("--source: failed 100 times in a row; " + o.out + " not written"));
      continue;
    }
    failures_in_a_row = 0;
    if (!next->has_value()) break;
    const SourceFrame& f = **next;
    const TimeUs now_us = clock.NowUs();
    if (start_us < 0) start_us = now_us;
    TimeUs capture_us;
    if (f.capture_offset_us >= 0)
      capture_us = f.capture_offset_us;
    else if (live)
      capture_us = now_us - start_us;
    else
      capture_us = std::llround(static_cast<double>(written) * 1e6 / header.fps);
    capture_us = std::max(capture_us, last_us);
    if (Status s = (*writer)->Append(f.image, capture_us, f.label); !s.ok())
      return Fail(cli::kExitFailed, s);
    last_us = capture_us;
    ++written;
    progress.Update(written, expected);
  }
  double fps = header.fps;
  if (live && written > 1 && last_us > 0)
    fps = static_cast<double>(written - 1) * 1e6 / static_cast<double>(last_us);
  (*writer)->set_fps(fps);
  if (Status s = (*writer)->Finish(); !s.ok()) return Fail(cli::kExitFailed, s);
  progress.Done();
  std::printf("%s\n  from %s", Summary(**writer, fps).c_str(), o.source.spec.c_str());
  if (skipped > 0) std::printf(", %lld unreadable items skipped", static_cast<long long>(skipped));
  std::printf("\n");
  return std::nullopt;
}

cli::Outcome InspectTraceFile(const InspectOptions& o) {
  ProgressLine progress("inspect", "frames");
  auto stats = InspectTrace(
      o.path, [&](std::int64_t done, std::int64_t total) { progress.Update(done, total); });
  progress.Done();
  if (!stats.ok()) return Fail(cli::kExitBadInput, stats.status());
  if (o.json)
    std::cout << stats->ToJson().dump(2) << "\n";
  else
    std::cout << stats->ToText();
  return std::nullopt;
}

}  // namespace deepcut::trace
