// The record of how one frame was answered. Every frame that enters the edge
// produces exactly one Answer.
#pragma once

#include <cstdint>
#include <string>

#include "core/clock.h"

namespace deepcut {

enum class Route {
  kLocal,  // the edge's exit classifier
  kReuse,  // the cloud's last answer, reused for an unchanged scene
  kCloud,  // the cloud's answer to this frame, in time
};

const char* RouteName(Route route);

// Why a frame got the route it got; "policy" is the ordinary case.
enum class Reason {
  kPolicy,            // the scheduler chose this route
  kDeadlineMissed,    // offloaded, but no reply by the deadline: exit's answer
  kCloudUnavailable,  // offload wanted, but no cloud connected / send refused
  kCloudError,        // the cloud replied with an error status: exit's answer
  kCloudBusy,         // the cloud shed the request: exit's answer
  kWindowFull,        // offload wanted, but too many requests in flight
};

const char* ReasonName(Reason reason);

struct Answer {
  std::int64_t frame_id = 0;
  int label = -1;  // ground truth if known, else -1
  int class_id = -1;
  float confidence = 0.0f;  // of the answer that was delivered
  Route route = Route::kLocal;
  Reason reason = Reason::kPolicy;
  bool offloaded = false;         // a request for this frame was sent
  std::string rate;               // codec rate name if offloaded
  std::int64_t uplink_bytes = 0;  // bytes sent for this frame, message headers included
  TimeUs capture_us = 0;
  TimeUs answer_us = 0;
  TimeUs deadline_us = 0;
  // Scene fusion: how many frames' exit and cloud posteriors the answer pooled
  // (both 0: it is one frame's own answer).
  int evidence_exit = 0;
  int evidence_cloud = 0;
  TimeUs LatencyUs() const { return answer_us - capture_us; }
  bool Correct() const { return label >= 0 && label == class_id; }
};

}  // namespace deepcut
