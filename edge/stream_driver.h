// The run loop: drives frames from a source through an EdgeRuntime, on any
// Clock. deepcut-edge runs it on the real clock and a ZeroMQ link; the replay
// on a virtual clock and a simulated link: one loop for both.
//
// Pacing, one of:
//  - fps > 0: frames are captured in real time at that rate (a live camera
//    always is); replies are handled while waiting for the next capture, and an
//    offload is skipped (local answer) when the in-flight window is full;
//  - capture_times: each frame is processed at its recorded capture time (a
//    frame trace; frames without one come at 10 frames/s), measured from the
//    run's start; in between, replies and deadlines are handled; a full window
//    is skipped, as in real time (the replay);
//  - otherwise a file source is read as fast as the pipeline allows (an
//    evaluation run): the driver waits for a free slot in the window instead of
//    skipping.
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
  double fps = 0.0;              // > 0: capture at this rate; 0: see capture_times
  bool capture_times = false;    // pace frames at their recorded capture times
  std::int64_t max_frames = -1;  // -1: the whole source
  // An unreadable source item is logged and skipped (a camera glitch), unless
  // this is false: then it ends the run with its error (a corrupt trace in an
  // evaluation).
  bool skip_unreadable = true;
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
