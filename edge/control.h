// The edge's control endpoint: the live bandwidth knob.
//
// A ZeroMQ REP socket bound at `endpoint` takes one-line text commands
// (docs/control.md):
//   budget RATE   set the uplink budget (bit/s, suffixes k/M/G; 0: unlimited)
//   harvest RATE  set the harvest storage budget (e.g. 120/h, 2/min, 5MB/h;
//                 docs/harvest.md), with a harvester
//   status        the current budgets, frames answered and bytes sent, as JSON
// and answers each with one line: "ok ..." or "error: <what is wrong>". A bad
// command changes nothing. Every change is remembered with its time on the
// edge's clock, so the run's record shows when the knob moved.
//
// Poll() is called by the thread that drives the runtime (between frames and
// while it waits), so the knob needs no locks in the runtime.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "core/clock.h"
#include "core/status.h"
#include "edge/edge_runtime.h"

namespace deepcut::edge {

struct ControlOptions {
  std::string endpoint;  // e.g. tcp://127.0.0.1:5601 or ipc:///tmp/edge.ctl
};

struct BudgetChange {
  TimeUs at_us = 0;
  double budget_bps = 0.0;
};

class ControlServer {
 public:
  // Reports what "status" returns besides the budget (frames, bytes...).
  using StatusFn = std::function<std::string()>;
  static Result<std::unique_ptr<ControlServer>> Create(ControlOptions options, EdgeRuntime& runtime,
                                                       Clock& clock, double initial_budget_bps,
                                                       StatusFn status = {});
  // Handles every command waiting, without blocking.
  void Poll();
  // The endpoint actually bound (a `*` port resolved).
  const std::string& endpoint() const { return endpoint_; }
  const std::vector<BudgetChange>& changes() const { return changes_; }
  double budget_bps() const { return budget_bps_; }
  // The reply to one command line (public for tests).
  std::string Handle(const std::string& line);
  // Makes the "harvest" command act on `harvester` (borrowed).
  void SetHarvester(harvest::Harvester* harvester) { harvester_ = harvester; }

 private:
  ControlServer(EdgeRuntime& runtime, Clock& clock, double budget_bps, StatusFn status)
      : runtime_(runtime), clock_(clock), budget_bps_(budget_bps), status_(std::move(status)) {}

  EdgeRuntime& runtime_;
  Clock& clock_;
  double budget_bps_;
  StatusFn status_;
  zmq::context_t context_{1};
  std::unique_ptr<zmq::socket_t> socket_;
  std::string endpoint_;
  std::vector<BudgetChange> changes_;
  harvest::Harvester* harvester_ = nullptr;
};

}  // namespace deepcut::edge
