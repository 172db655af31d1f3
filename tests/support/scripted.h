// Shared test fixtures: the committed model package, and a scripted link and
// policy for driving the edge runtime deterministically in virtual time.
#pragma once

#include <gtest/gtest.h>

#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "scheduler/policy.h"
#include "transport/cloud_link.h"
#include "transport/protocol.h"

namespace deepcut::test_support {

// The committed, trained package (models/fmnist), which the tests run on.
inline const char* ModelDir() { return DEEPCUT_MODEL_DIR; }

// A link whose replies are produced by a test-supplied function, delivered
// after a fixed delay, in virtual time.
class ScriptedLink final : public transport::CloudLink {
 public:
  using Responder =
      std::function<std::optional<std::vector<std::uint8_t>>(const transport::Request&)>;
  ScriptedLink(VirtualClock& clock, TimeUs delay_us, Responder responder)
      : clock_(clock), delay_us_(delay_us), responder_(std::move(responder)) {}
  Status Send(std::span<const std::uint8_t> message) override {
    if (refuse) return Unavailable("scripted: no cloud");
    auto r = transport::DecodeRequest(message);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    sent.push_back(*r);
    sent_bytes += message.size();
    if (auto reply = responder_(*r)) queue_.push_back({clock_.NowUs() + delay_us_, *reply});
    return Status::Ok();
  }
  std::optional<std::vector<std::uint8_t>> Receive(TimeUs until_us) override {
    if (!lost.empty()) return std::nullopt;  // as MultiLink: the caller sends them again
    if (!queue_.empty() && queue_.front().first <= until_us) {
      clock_.SleepUntilUs(queue_.front().first);
      auto bytes = queue_.front().second;
      queue_.pop_front();
      return bytes;
    }
    clock_.SleepUntilUs(until_us);
    return std::nullopt;
  }
  void Reconnect() override {
    ++reconnects;
    queue_.clear();
  }
  std::size_t WireBytes(std::size_t n) const override { return transport::ZmtpFrameBytes(n); }
  std::vector<std::uint16_t> TakeLost() override { return std::exchange(lost, {}); }

  bool refuse = false;
  std::vector<std::uint16_t> lost;  // what TakeLost reports next
  int reconnects = 0;
  std::vector<transport::Request> sent;
  std::size_t sent_bytes = 0;

 private:
  VirtualClock& clock_;
  TimeUs delay_us_;
  Responder responder_;
  std::deque<std::pair<TimeUs, std::vector<std::uint8_t>>> queue_;
};

inline std::vector<std::uint8_t> OkReply(const transport::Request& r, int class_id) {
  transport::Reply reply;
  reply.seq = r.seq;
  reply.class_id = class_id;
  reply.top = {{class_id, 0.99f}};
  return transport::EncodeReply(reply);
}

class ScriptedPolicy final : public scheduler::OffloadPolicy {
 public:
  explicit ScriptedPolicy(std::function<scheduler::Decision(const scheduler::DecisionContext&)> f)
      : decide_(std::move(f)) {}
  const char* name() const override { return "scripted"; }
  scheduler::Decision Decide(const scheduler::DecisionContext& c) override {
    contexts.push_back(c);
    return decide_(c);
  }
  void OnSent(std::uint64_t id, TimeUs, std::int64_t bytes) override {
    sent.emplace_back(id, bytes);
  }
  void OnOutcome(const scheduler::Feedback& f) override {
    outcomes.push_back({f.frame_id, f.outcome, f.class_id, f.features.size()});
  }
  void SetBudget(double budget_bps, TimeUs now_us) override {
    budgets.emplace_back(budget_bps, now_us);
  }
  struct Seen {
    std::int64_t frame;
    scheduler::Outcome outcome;
    int class_id;
    size_t features;
  };
  std::vector<scheduler::DecisionContext> contexts;
  std::vector<std::pair<std::uint64_t, std::int64_t>> sent;
  std::vector<Seen> outcomes;
  std::vector<std::pair<double, TimeUs>> budgets;

 private:
  std::function<scheduler::Decision(const scheduler::DecisionContext&)> decide_;
};

}  // namespace deepcut::test_support
