// Offload policies: per frame, answer locally, reuse the cloud's last answer,
// or offload at some codec rate.
//
// A policy is a pure function of the DecisionContext plus its own state: no
// sockets, no models, no wall clock (time comes in the context), so it runs the
// same in the real edge, in virtual-time replay and in unit tests.
//
// Thread-safety: one policy object per edge stream, used from one thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/status.h"

namespace deepcut::scheduler {

enum class Action { kLocal, kReuse, kOffload };

struct Decision {
  Action action = Action::kLocal;
  int rate_index = -1;  // which codec rate, when offloading
};

// What the edge knows when it decides about one frame.
struct DecisionContext {
  std::int64_t frame_id = 0;
  TimeUs now_us = 0;
  TimeUs deadline_us = 0;
  float exit_confidence = 0.0f;  // max softmax of the exit
  float exit_error_rate = 1.0f;  // calibrated: measured error rate at that confidence
  int in_flight = 0;             // requests sent and not yet answered
  int max_in_flight = 0;
  int default_rate_index = 0;  // the rate the user asked for
};

class OffloadPolicy {
 public:
  virtual ~OffloadPolicy() = default;
  virtual const char* name() const = 0;
  virtual Decision Decide(const DecisionContext& context) = 0;
};

struct PolicyOptions {
  std::string name = "always";  // always | never
};

// The policy names this build offers, for --help and error messages.
std::vector<std::string> PolicyNames();
Result<std::unique_ptr<OffloadPolicy>> MakePolicy(const PolicyOptions& options);

}  // namespace deepcut::scheduler
