#include "edge/stream_driver.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace deepcut::edge {

constexpr int kMaxConsecutiveSourceErrors = 100;
// Frames of a trace without capture times come at 10 frames/s.
constexpr TimeUs kDefaultFrameIntervalUs = 100'000;

Result<StreamResult> RunStream(trace::FrameSource& source, EdgeRuntime& runtime, Clock& clock,
                               const StreamOptions& options, const std::atomic<bool>* stop,
                               const std::function<void()>& on_tick) {
  StreamResult result;
  result.started_us = clock.NowUs();
  const bool real_time = options.fps > 0.0;
  const TimeUs period_us = real_time ? static_cast<TimeUs>(1e6 / options.fps) : 0;
  TimeUs next_capture_us = result.started_us;
  TimeUs first_offset_us = -1;  // the first frame's recorded capture time
  int consecutive_errors = 0;
  while (options.max_frames < 0 || result.frames_in < options.max_frames) {
    if (stop && stop->load()) break;
    if (on_tick) on_tick();
    if (real_time) {
      runtime.PumpUntil(next_capture_us);
      next_capture_us += period_us;
    } else if (!options.capture_times && !source.IsLive()) {
      runtime.WaitForSlot();
    }
    auto next = source.Next();
    if (!next.ok() && !options.skip_unreadable) {
      runtime.Drain();  // what was sent still gets its answer
      return next.status();
    }
    if (!next.ok()) {
      spdlog::warn("skipping unreadable source item: {}", next.status().message());
      ++result.frames_skipped;
      // A source that fails again and again (a broken camera) ends the run.
      if (++consecutive_errors >= kMaxConsecutiveSourceErrors) {
        runtime.Drain();
        return Unavailable("source failed " + std::to_string(consecutive_errors) +
                           " times in a row: " + next.status().message());
      }
      continue;
    }
    consecutive_errors = 0;
    if (!next->has_value()) break;
    TimeUs capture_us = clock.NowUs();
    if (options.capture_times && !real_time) {
      const trace::SourceFrame& frame = **next;
      const TimeUs offset_us = frame.capture_offset_us >= 0 ? frame.capture_offset_us
                                                            : frame.index * kDefaultFrameIntervalUs;
      if (first_offset_us < 0) first_offset_us = offset_us;
      const TimeUs at_us = result.started_us + offset_us - first_offset_us;
      runtime.PumpUntil(at_us);
      capture_us = std::max(at_us, clock.NowUs());
    }
    if (Status processed = runtime.ProcessFrame(**next, capture_us); !processed.ok()) {
      runtime.Drain();
      return processed;
    }
    ++result.frames_in;
    // Handle whatever replies are already here without waiting.
    runtime.PumpUntil(clock.NowUs());
  }
  runtime.Drain();
  result.finished_us = clock.NowUs();
  return result;
}

}  // namespace deepcut::edge
