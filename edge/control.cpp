#include "edge/control.h"

#include <sstream>

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "core/units.h"
#include "scheduler/policy.h"

namespace deepcut::edge {

namespace {

constexpr std::size_t kMaxCommandBytes = 256;
constexpr int kMaxCommandsPerPoll = 16;

}  // namespace

Result<std::unique_ptr<ControlServer>> ControlServer::Create(ControlOptions options,
                                                             EdgeRuntime& runtime, Clock& clock,
                                                             double initial_budget_bps,
                                                             StatusFn status) {
  std::unique_ptr<ControlServer> server(
      new ControlServer(runtime, clock, initial_budget_bps, std::move(status)));
  try {
    server->socket_ = std::make_unique<zmq::socket_t>(server->context_, zmq::socket_type::rep);
    server->socket_->set(zmq::sockopt::linger, 0);
    server->socket_->bind(options.endpoint);
    server->endpoint_ = server->socket_->get(zmq::sockopt::last_endpoint);
  } catch (const zmq::error_t& e) {
    return InvalidArgument("cannot listen for control on '" + options.endpoint + "': " + e.what());
  }
  return server;
}

std::string ControlServer::Handle(const std::string& line) {
  if (line.size() > kMaxCommandBytes) return "error: command longer than 256 bytes";
  std::istringstream in(line);
  std::string verb, arg, extra;
  in >> verb >> arg >> extra;
  if (!extra.empty())
    return "error: too many arguments (commands: budget RATE | harvest RATE | status)";
  if (verb == "harvest") {
    if (!harvester_) return "error: this edge does not harvest (start it with --harvest-db)";
    if (arg.empty()) return "error: harvest needs a budget, e.g. 'harvest 120/h'";
    harvest::HarvestBudget budget = harvester_->budget();
    if (Status parsed = harvest::ParseHarvestBudget(arg, budget); !parsed.ok())
      return "error: " + parsed.message();
    harvester_->SetBudget(budget, clock_.NowUs());
    spdlog::info("control: harvest budget set to {}", arg);
    return "ok harvest " + arg + " at " + std::to_string(clock_.NowUs() / 1e6);
  }
  if (verb == "budget") {
    if (arg.empty()) return "error: budget needs a rate, e.g. 'budget 20k'";
    auto bps = ParseBitRate(arg);
    if (!bps.ok()) return "error: " + bps.status().message();
    runtime_.SetBudget(*bps);
    budget_bps_ = *bps;
    changes_.push_back({clock_.NowUs(), *bps});
    spdlog::info("control: budget set to {:.0f} bit/s{}", *bps, *bps == 0 ? " (unlimited)" : "");
    return "ok budget " + std::to_string(static_cast<long long>(*bps)) + " at " +
           std::to_string(clock_.NowUs() / 1e6);
  }
  if (verb == "status" && arg.empty()) {
    nlohmann::json j{{"budget_bps", budget_bps_},
                     {"now_s", clock_.NowUs() / 1e6},
                     {"in_flight", runtime_.in_flight()},
                     {"offloads_sent", runtime_.counters().offloads_sent}};
    if (harvester_) {
      const auto& b = harvester_->budget();
      const auto c = harvester_->counters();
      const auto t = harvester_->totals();
      j["harvest"] = {{"frames_per_hour", b.frames_per_hour},
                      {"bytes_per_hour", b.bytes_per_hour},
                      {"kept", c.kept},
                      {"stored_frames", t.frames},
                      {"unsent", t.unsent},
                      {"items_uploaded", c.items_uploaded}};
    }
    if (status_) j["run"] = nlohmann::json::parse(status_(), nullptr, false);
    return "ok " + j.dump();
  }
  return "error: unknown command '" + line.substr(0, 40) +
         "' (commands: budget RATE | harvest RATE | status)";
}

void ControlServer::Poll() {
  for (int i = 0; i < kMaxCommandsPerPoll; ++i) {
    zmq::message_t msg;
    try {
      if (!socket_->recv(msg, zmq::recv_flags::dontwait)) return;
      // A REP socket must answer before it can read again, even a bad request.
      std::string line(msg.data<char>(), msg.size());
      while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
      const std::string reply = Handle(line);
      if (reply.rfind("error", 0) == 0) spdlog::warn("control: {}", reply);
      socket_->send(zmq::buffer(reply), zmq::send_flags::dontwait);
    } catch (const zmq::error_t& e) {
      spdlog::warn("control socket: {}", e.what());
      return;
    }
  }
}

}  // namespace deepcut::edge
