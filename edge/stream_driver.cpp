#include "edge/stream_driver.h"

#include <spdlog/spdlog.h>

namespace deepcut::edge {

constexpr int kMaxConsecutiveSourceErrors = 100;

Result<StreamResult> RunStream(trace::FrameSource& source, EdgeRuntime& runtime, Clock& clock,
                               const StreamOptions& options, const std::atomic<bool>* stop,
                               const std::function<void()>& on_tick) {
  StreamResult result;
  result.started_us = clock.NowUs();
  const bool real_time = options.fps > 0.0;
  const TimeUs period_us = real_time ? static_cast<TimeUs>(1e6 / options.fps) : 0;
  TimeUs next_capture_us = result.started_us;
  int consecutive_errors = 0;
  while (options.max_frames < 0 || result.frames_in < options.max_frames) {
    if (stop && stop->load()) break;
    if (on_tick) on_tick();
    if (real_time) {
      runtime.PumpUntil(next_capture_us);
      next_capture_us += period_us;
    } else if (!source.IsLive()) {
      runtime.WaitForSlot();
    }
    auto next = source.Next();
    if (!next.ok()) {
      spdlog::warn("skipping unreadable source item: {}", next.status().message());
      ++result.frames_skipped;
      // A source that fails again and again (a broken camera) ends the run.
      if (++consecutive_errors >= kMaxConsecutiveSourceErrors)
        return Unavailable("source failed " + std::to_string(consecutive_errors) +
                           " times in a row: " + next.status().message());
      continue;
    }
    consecutive_errors = 0;
    if (!next->has_value()) break;
    RETURN_IF_ERROR(runtime.ProcessFrame(**next, clock.NowUs()));
    ++result.frames_in;
    // Handle whatever replies are already here without waiting.
    runtime.PumpUntil(clock.NowUs());
  }
  runtime.Drain();
  result.finished_us = clock.NowUs();
  return result;
}

}  // namespace deepcut::edge
