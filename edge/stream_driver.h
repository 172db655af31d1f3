// Drives frames from a source through an EdgeRuntime.
//
// With fps > 0 frames are captured in real time at that rate (a live camera
// always is); replies are handled while waiting for the next capture, and an
// offload is skipped (local answer) when the in-flight window is full. With
// fps == 0 a file source is read as fast as the pipeline allows (an evaluation
// run): the driver waits for a free slot in the window instead of skipping.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>

#include "core/clock.h"
#include "core/status.h"
#include "edge/edge_runtime.h"
#include "trace/frame_source.h"

namespace deepcut::edge {

struct StreamOptions {
  double fps = 0.0;              // 0: as fast as the pipeline allows
  std::int64_t max_frames = -1;  // -1: the whole source
};

struct StreamResult {
  std::int64_t frames_in = 0;       // frames handed to the runtime
  std::int64_t frames_skipped = 0;  // unreadable source items (logged, not answered)
  TimeUs started_us = 0, finished_us = 0;
};

// Stops early (still draining what is in flight) when `stop` becomes true.
// `on_tick`, if set, runs between frames on the driving thread (the control
// endpoint's poll).
Result<StreamResult> RunStream(trace::FrameSource& source, EdgeRuntime& runtime, Clock& clock,
                               const StreamOptions& options, const std::atomic<bool>* stop,
                               const std::function<void()>& on_tick = {});

}  // namespace deepcut::edge
