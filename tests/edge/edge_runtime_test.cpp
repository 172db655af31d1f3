// EdgeRuntime in virtual time against a scripted link: the deadline, late,
// busy, error, malformed, window-full and unavailable paths, deterministically.
// (The real sockets are exercised by cloud_server tests and the end-to-end tests.)
#include "edge/edge_runtime.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>

#include <chrono>
#include <deque>
#include <functional>
#include <nlohmann/json.hpp>
#include <thread>

#include "edge/control.h"
#include "support/scripted.h"
#include "transport/protocol.h"

namespace deepcut::edge {
using test_support::OkReply;
using test_support::ScriptedLink;
using test_support::ScriptedPolicy;
}  // namespace deepcut::edge

namespace deepcut::edge {
namespace {

class EdgeRuntimeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto m = splitnet::LoadManifest(test_support::ModelDir());
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    manifest_ = *m;
    auto model = splitnet::SplitModel::Load(manifest_, {.head = true, .exit = true, .tail = false});
    ASSERT_TRUE(model.ok()) << model.status().ToString();
    model_ = std::move(model).value();
  }
  trace::SourceFrame Frame(std::int64_t index, int label = 3) {
    trace::SourceFrame f;
    f.index = index;
    f.label = label;
    f.image = cv::Mat(28, 28, CV_8UC1, cv::Scalar(static_cast<double>(index * 37 % 255)));
    return f;
  }
  // Runs `n` frames, one every `period_us` of virtual time, and drains.
  std::vector<Answer> Run(ScriptedLink& link, const std::string& policy_name, int n,
                          TimeUs period_us, EdgeOptions options = {}) {
    auto policy = scheduler::MakePolicy({.name = policy_name});
    EXPECT_TRUE(policy.ok());
    return RunWith(link, **policy, n, period_us, options);
  }
  std::vector<Answer> RunWith(ScriptedLink& link, scheduler::OffloadPolicy& policy, int n,
                              TimeUs period_us, EdgeOptions options = {}) {
    std::vector<Answer> answers;
    auto created = EdgeRuntime::Create(options, *model_, policy, link, clock_,
                                       [&](const Answer& a) { answers.push_back(a); });
    EXPECT_TRUE(created.ok()) << created.status().ToString();
    if (!created.ok()) return answers;
    EdgeRuntime& runtime = **created;
    for (int i = 0; i < n; ++i) {
      EXPECT_TRUE(runtime.ProcessFrame(Frame(i), clock_.NowUs()).ok());
      runtime.PumpUntil(clock_.NowUs() + period_us);
    }
    runtime.Drain();
    EXPECT_EQ(runtime.in_flight(), 0);
    // Let replies that come after their deadline arrive, to count them.
    runtime.PumpUntil(clock_.NowUs() + 1'000'000);
    counters_ = runtime.counters();
    rates_ = runtime.rate_info();
    return answers;
  }
  static void ExpectOneAnswerEach(const std::vector<Answer>& answers, int n) {
    ASSERT_EQ(static_cast<int>(answers.size()), n);
    std::vector<int> seen(n, 0);
    for (const auto& a : answers) seen.at(a.frame_id)++;
    for (int i = 0; i < n; ++i) EXPECT_EQ(seen[i], 1) << "frame " << i;
  }

  VirtualClock clock_{1'000'000};
  splitnet::Manifest manifest_;
  std::unique_ptr<splitnet::SplitModel> model_;
  EdgeCounters counters_;
  std::vector<scheduler::RateInfo> rates_;
};

TEST_F(EdgeRuntimeTest, CloudAnswersInTime) {
  ScriptedLink link(clock_, 5'000, [](const transport::Request& r) { return OkReply(r, 7); });
  auto answers = Run(link, "always", 20, 10'000);
  ExpectOneAnswerEach(answers, 20);
  for (const auto& a : answers) {
    EXPECT_EQ(a.route, Route::kCloud);
    EXPECT_EQ(a.class_id, 7);
    EXPECT_TRUE(a.offloaded);
    EXPECT_EQ(a.LatencyUs(), 5'000);  // virtual time: exactly the link delay
    EXPECT_GT(a.uplink_bytes, 0);
  }
  EXPECT_EQ(link.sent.size(), 20u);
  std::int64_t total = 0;
  for (const auto& a : answers) total += a.uplink_bytes;
  EXPECT_EQ(static_cast<std::size_t>(total),
            link.sent_bytes + 20 * 2);  // + ZMTP short-frame headers
  // Sequence numbers are unique and increasing.
  for (size_t i = 1; i < link.sent.size(); ++i) EXPECT_GT(link.sent[i].seq, link.sent[i - 1].seq);
}

// The wire carries the sequence number modulo 2^16; replies still find their
// frames across the wrap, with several requests in flight.
TEST_F(EdgeRuntimeTest, SequenceNumbersWrapOnTheWire) {
  int n = 0;
  ScriptedLink link(clock_, 30'000, [&](const transport::Request& r) {
    return OkReply(r, static_cast<int>(n++ % 10));
  });
  auto answers = Run(link, "always", 30, 5'000, EdgeOptions{.first_sequence_number = 65'520});
  ExpectOneAnswerEach(answers, 30);
  for (const auto& a : answers) {
    EXPECT_EQ(a.route, Route::kCloud);
    EXPECT_EQ(a.class_id, a.frame_id % 10);  // each frame got its own reply
  }
  EXPECT_EQ(link.sent.front().seq, 65'520);
  EXPECT_EQ(link.sent.back().seq, (65'520 + 29) % 65'536);
}

TEST_F(EdgeRuntimeTest, LateRepliesFallBackToTheExitByTheDeadline) {
  // Replies take 300 ms; the deadline is 200 ms.
  ScriptedLink link(clock_, 300'000, [](const transport::Request& r) { return OkReply(r, 7); });
  // One frame every 30 ms keeps fewer than max_in_flight pending.
  auto answers = Run(link, "always", 10, 30'000, EdgeOptions{.reconnect_after_misses = 1000});
  ExpectOneAnswerEach(answers, 10);
  for (const auto& a : answers) {
    EXPECT_EQ(a.route, Route::kLocal);
    EXPECT_EQ(a.reason, Reason::kDeadlineMissed);
    EXPECT_LE(a.answer_us, a.deadline_us);
  }
  EXPECT_EQ(counters_.replies_late, 10);
}

TEST_F(EdgeRuntimeTest, NoReplyAtAllReconnectsAndStillAnswersEveryFrame) {
  ScriptedLink link(clock_, 1'000, [](const transport::Request&) { return std::nullopt; });
  auto answers = Run(link, "always", 12, 50'000,
                     EdgeOptions{.reconnect_after_misses = 3, .reconnect_quiet_ms = 0});
  ExpectOneAnswerEach(answers, 12);
  for (const auto& a : answers) EXPECT_EQ(a.reason, Reason::kDeadlineMissed);
  EXPECT_EQ(link.reconnects, 4);
}

TEST_F(EdgeRuntimeTest, SilenceAloneTriggersAReconnect) {
  // No reply ever: 3 misses are not enough until 1 s has passed without a word.
  ScriptedLink link(clock_, 1'000, [](const transport::Request&) { return std::nullopt; });
  auto answers = Run(link, "always", 60, 50'000, EdgeOptions{.reconnect_after_misses = 3});
  ExpectOneAnswerEach(answers, 60);
  // 3 s of frames: a reconnect about once a second, not one per 3 misses (20).
  EXPECT_GE(link.reconnects, 2);
  EXPECT_LE(link.reconnects, 3);
}

TEST_F(EdgeRuntimeTest, ASlowButAliveCloudIsNotReconnected) {
  // Every reply comes, but 300 ms later, past the 200 ms deadline: each frame
  // is a miss, yet the cloud is heard from all the time, so the connection
  // (and the replies on it) is kept.
  ScriptedLink link(clock_, 300'000, [](const transport::Request& r) { return OkReply(r, 7); });
  auto answers = Run(link, "always", 100, 30'000);
  ExpectOneAnswerEach(answers, 100);
  EXPECT_EQ(link.reconnects, 0);
  EXPECT_EQ(counters_.replies_late, 100);
}

TEST_F(EdgeRuntimeTest, BusyErrorAndMalformedRepliesFallBack) {
  int n = 0;
  ScriptedLink link(clock_, 2'000,
                    [&](const transport::Request& r) -> std::optional<std::vector<std::uint8_t>> {
                      switch (n++ % 3) {
                        case 0: {
                          transport::Reply busy;
                          busy.seq = r.seq;
                          busy.status = transport::ReplyStatus::kBusy;
                          return transport::EncodeReply(busy);
                        }
                        case 1: {
                          transport::Reply error;
                          error.seq = r.seq;
                          error.status = transport::ReplyStatus::kError;
                          error.message = "scripted";
                          return transport::EncodeReply(error);
                        }
                        default:
                          return std::vector<std::uint8_t>{0xc1, 0x00};  // not msgpack
                      }
                    });
  auto answers = Run(link, "always", 9, 20'000, EdgeOptions{.reconnect_after_misses = 1000});
  ExpectOneAnswerEach(answers, 9);
  std::map<Reason, int> reasons;
  for (const auto& a : answers) {
    EXPECT_EQ(a.route, Route::kLocal);
    reasons[a.reason]++;
  }
  EXPECT_EQ(reasons[Reason::kCloudBusy], 3);
  EXPECT_EQ(reasons[Reason::kCloudError], 3);
  EXPECT_EQ(reasons[Reason::kDeadlineMissed], 3);  // malformed replies are ignored
  EXPECT_EQ(counters_.replies_malformed, 3);
}

TEST_F(EdgeRuntimeTest, UnavailableCloudAnswersLocallyAtOnce) {
  ScriptedLink link(clock_, 1'000, [](const transport::Request& r) { return OkReply(r, 1); });
  link.refuse = true;
  auto answers = Run(link, "always", 5, 10'000);
  ExpectOneAnswerEach(answers, 5);
  for (const auto& a : answers) {
    EXPECT_EQ(a.reason, Reason::kCloudUnavailable);
    EXPECT_EQ(a.uplink_bytes, 0);
    EXPECT_EQ(a.LatencyUs(), 0);
  }
}

TEST_F(EdgeRuntimeTest, FullWindowAnswersLocally) {
  // Frames every 1 ms, replies after 50 ms, at most 4 in flight.
  ScriptedLink link(clock_, 50'000, [](const transport::Request& r) { return OkReply(r, 2); });
  auto answers = Run(link, "always", 20, 1'000, EdgeOptions{.max_in_flight = 4});
  ExpectOneAnswerEach(answers, 20);
  int cloud = 0, window = 0;
  for (const auto& a : answers) {
    cloud += a.route == Route::kCloud;
    window += a.reason == Reason::kWindowFull;
  }
  EXPECT_EQ(cloud + window, 20);
  EXPECT_GT(window, 0);
  EXPECT_LE(static_cast<int>(link.sent.size()), 4 + 20 / 50 * 4 + 4);
}

TEST_F(EdgeRuntimeTest, NeverPolicySendsNothing) {
  ScriptedLink link(clock_, 1'000, [](const transport::Request& r) { return OkReply(r, 1); });
  auto answers = Run(link, "never", 5, 10'000);
  ExpectOneAnswerEach(answers, 5);
  EXPECT_TRUE(link.sent.empty());
  for (const auto& a : answers) EXPECT_EQ(a.route, Route::kLocal);
}

TEST_F(EdgeRuntimeTest, RefusesUnknownRate) {
  ScriptedLink link(clock_, 1'000, [](const transport::Request&) { return std::nullopt; });
  auto policy = scheduler::MakePolicy({.name = "always"});
  auto runtime = EdgeRuntime::Create(EdgeOptions{.rate = "nope"}, *model_, **policy, link, clock_,
                                     [](const Answer&) {});
  ASSERT_FALSE(runtime.ok());
  EXPECT_NE(runtime.status().message().find("nope"), std::string::npos);
  EXPECT_FALSE(scheduler::MakePolicy({.name = "bogus"}).ok());
}

}  // namespace
}  // namespace deepcut::edge

namespace deepcut::edge {
namespace {

// A policy that follows a script per frame and records what it is told.
class RuntimePolicyTest : public EdgeRuntimeTest {};

// Frame 0 goes to the cloud; the others reuse its answer, and say so.
TEST_F(RuntimePolicyTest, ReuseDeliversTheCloudsLastAnswer) {
  ScriptedLink link(clock_, 5'000, [](const transport::Request& r) { return OkReply(r, 4); });
  ScriptedPolicy policy([](const scheduler::DecisionContext& c) {
    if (c.frame_id == 0) return scheduler::Decision{scheduler::Action::kOffload, 0};
    return scheduler::Decision{scheduler::Action::kReuse, -1};
  });
  auto answers = RunWith(link, policy, 5, 10'000);
  ExpectOneAnswerEach(answers, 5);
  EXPECT_EQ(answers[0].route, Route::kCloud);
  for (int i = 1; i < 5; ++i) {
    EXPECT_EQ(answers[i].route, Route::kReuse) << i;
    EXPECT_EQ(answers[i].class_id, 4);
    EXPECT_FALSE(answers[i].offloaded);
    EXPECT_EQ(answers[i].uplink_bytes, 0);
  }
  // The policy saw the features, a cloud answer to reuse, and every rate's bytes and accuracy.
  ASSERT_EQ(policy.contexts.size(), 5u);
  EXPECT_EQ(policy.contexts[0].features.size(),
            static_cast<size_t>(manifest_.bottleneck.Elements()));
  EXPECT_FALSE(policy.contexts[0].has_cloud_answer);
  EXPECT_TRUE(policy.contexts[1].has_cloud_answer);
  ASSERT_EQ(rates_.size(), manifest_.rates.size());
  for (size_t r = 0; r < rates_.size(); ++r) {
    EXPECT_GT(rates_[r].wire_bytes, 10.0) << r;
    EXPECT_GT(rates_[r].cloud_accuracy, 0.5) << r;
  }
  ASSERT_EQ(policy.outcomes.size(), 1u);
  EXPECT_EQ(policy.outcomes[0].outcome, scheduler::Outcome::kAnswered);
  EXPECT_EQ(policy.outcomes[0].class_id, 4);
  EXPECT_EQ(policy.outcomes[0].features, static_cast<size_t>(manifest_.bottleneck.Elements()));
  ASSERT_EQ(policy.sent.size(), 1u);
  EXPECT_EQ(policy.sent[0].second, answers[0].uplink_bytes);
}

// Reuse asked for before any cloud answer exists: the exit answers.
TEST_F(RuntimePolicyTest, ReuseWithoutACloudAnswerFallsBackToTheExit) {
  ScriptedLink link(clock_, 5'000, [](const transport::Request& r) { return OkReply(r, 4); });
  ScriptedPolicy policy([](const scheduler::DecisionContext&) {
    return scheduler::Decision{scheduler::Action::kReuse, -1};
  });
  auto answers = RunWith(link, policy, 3, 10'000);
  ExpectOneAnswerEach(answers, 3);
  for (const auto& a : answers) EXPECT_EQ(a.route, Route::kLocal);
}

// A reply after the deadline: the frame keeps its fallback, the policy hears
// kLost then kLate, and the late answer is what later frames reuse.
TEST_F(RuntimePolicyTest, LateReplyRefreshesTheReuseCache) {
  ScriptedLink link(clock_, 300'000, [](const transport::Request& r) { return OkReply(r, 9); });
  ScriptedPolicy policy([](const scheduler::DecisionContext& c) {
    if (c.frame_id == 0) return scheduler::Decision{scheduler::Action::kOffload, 0};
    return scheduler::Decision{scheduler::Action::kReuse, -1};
  });
  EdgeOptions options;
  options.deadline_ms = 100;
  auto answers = RunWith(link, policy, 6, 100'000, options);  // frames every 100 ms
  ExpectOneAnswerEach(answers, 6);
  EXPECT_EQ(answers[0].route, Route::kLocal);
  EXPECT_EQ(answers[0].reason, Reason::kDeadlineMissed);
  // The reply lands at 300 ms, as frame 3 is captured: frames 1-2 had nothing
  // to reuse, frames 3-5 reuse it.
  for (int i = 1; i <= 2; ++i) EXPECT_EQ(answers[i].route, Route::kLocal) << i;
  for (int i = 3; i <= 5; ++i) {
    EXPECT_EQ(answers[i].route, Route::kReuse) << i;
    EXPECT_EQ(answers[i].class_id, 9);
  }
  ASSERT_EQ(policy.outcomes.size(), 2u);
  EXPECT_EQ(policy.outcomes[0].outcome, scheduler::Outcome::kLost);
  EXPECT_EQ(policy.outcomes[1].outcome, scheduler::Outcome::kLate);
  EXPECT_EQ(policy.outcomes[1].class_id, 9);
}

// Busy and error replies reach the policy as such.
TEST_F(RuntimePolicyTest, BusyAndErrorOutcomes) {
  int n = 0;
  ScriptedLink link(clock_, 5'000, [&](const transport::Request& r) {
    transport::Reply reply;
    reply.seq = r.seq;
    reply.status = n++ % 2 ? transport::ReplyStatus::kBusy : transport::ReplyStatus::kError;
    reply.message = "scripted";
    return std::optional(transport::EncodeReply(reply));
  });
  ScriptedPolicy policy([](const scheduler::DecisionContext&) {
    return scheduler::Decision{scheduler::Action::kOffload, 0};
  });
  auto answers = RunWith(link, policy, 4, 10'000);
  ExpectOneAnswerEach(answers, 4);
  ASSERT_EQ(policy.outcomes.size(), 4u);
  EXPECT_EQ(policy.outcomes[0].outcome, scheduler::Outcome::kError);
  EXPECT_EQ(policy.outcomes[1].outcome, scheduler::Outcome::kBusy);
}

// The harvest knob: with a harvester the command sets its budget, bad ones
// change nothing; without one it is refused.
TEST_F(RuntimePolicyTest, ControlHarvestCommandSetsTheStorageBudget) {
  ScriptedPolicy policy([](const scheduler::DecisionContext&) { return scheduler::Decision{}; });
  ScriptedLink link(clock_, 1000, [](const transport::Request&) { return std::nullopt; });
  auto runtime = EdgeRuntime::Create({}, *model_, policy, link, clock_, [](const Answer&) {});
  ASSERT_TRUE(runtime.ok());
  auto control = ControlServer::Create({.endpoint = "tcp://127.0.0.1:*"}, **runtime, clock_, 0.0);
  ASSERT_TRUE(control.ok());
  auto& c = **control;
  EXPECT_EQ(c.Handle("harvest 30/h").rfind("error: this edge does not harvest", 0), 0u);
  const auto db = std::filesystem::temp_directory_path() /
                  ("deepcut-ctl-harvest-" + std::to_string(::getpid()) + ".db");
  harvest::HarvesterOptions o;
  o.store_path = db.string();
  auto h = harvest::Harvester::Create(o, model_->manifest());
  ASSERT_TRUE(h.ok()) << h.status().message();
  c.SetHarvester(h->get());
  EXPECT_EQ(c.Handle("harvest 30/min").rfind("ok harvest 30/min", 0), 0u);
  EXPECT_DOUBLE_EQ((*h)->budget().frames_per_hour, 1800.0);
  for (const char* bad : {"harvest", "harvest abc", "harvest -1/h", "harvest 5/week"})
    EXPECT_EQ(c.Handle(bad).rfind("error: ", 0), 0u) << bad;
  EXPECT_DOUBLE_EQ((*h)->budget().frames_per_hour, 1800.0);
  auto j = nlohmann::json::parse(c.Handle("status").substr(3));
  EXPECT_EQ(j["harvest"]["frames_per_hour"], 1800.0);
  h->reset();
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(db.string() + suffix);
}

// The live knob: commands reach the policy, bad ones change nothing.
TEST_F(RuntimePolicyTest, ControlCommandsSetTheBudgetAndRefuseBadInput) {
  ScriptedPolicy policy([](const scheduler::DecisionContext&) { return scheduler::Decision{}; });
  ScriptedLink link(clock_, 1000, [](const transport::Request&) { return std::nullopt; });
  auto runtime = EdgeRuntime::Create({}, *model_, policy, link, clock_, [](const Answer&) {});
  ASSERT_TRUE(runtime.ok());
  auto control = ControlServer::Create({.endpoint = "tcp://127.0.0.1:*"}, **runtime, clock_, 4000.0,
                                       [] { return std::string(R"({"answered":3})"); });
  ASSERT_TRUE(control.ok()) << control.status().ToString();
  auto& c = **control;

  clock_.AdvanceUs(5'000'000);
  EXPECT_EQ(c.Handle("budget 20k").rfind("ok budget 20000", 0), 0u);
  ASSERT_EQ(policy.budgets.size(), 1u);
  EXPECT_EQ(policy.budgets[0].first, 20000.0);
  EXPECT_EQ(policy.budgets[0].second, clock_.NowUs());
  ASSERT_EQ(c.changes().size(), 1u);
  EXPECT_EQ(c.changes()[0].at_us, clock_.NowUs());
  EXPECT_EQ(c.budget_bps(), 20000.0);

  for (const char* bad :
       {"budget", "budget fast", "budget -3k", "budget 1k 2k", "frobnicate", "", "status now"}) {
    EXPECT_EQ(c.Handle(bad).rfind("error: ", 0), 0u) << bad;
  }
  EXPECT_EQ(c.Handle(std::string(300, 'x')).rfind("error: ", 0), 0u);
  EXPECT_EQ(policy.budgets.size(), 1u) << "a bad command changed the budget";
  EXPECT_EQ(c.budget_bps(), 20000.0);

  const std::string status = c.Handle("status");
  ASSERT_EQ(status.rfind("ok ", 0), 0u);
  auto j = nlohmann::json::parse(status.substr(3));
  EXPECT_EQ(j["budget_bps"], 20000.0);
  EXPECT_EQ(j["run"]["answered"], 3);

  // The same over the socket: a REQ client, answered by Poll().
  zmq::context_t context;
  zmq::socket_t req(context, zmq::socket_type::req);
  req.set(zmq::sockopt::linger, 0);
  req.connect(c.endpoint());
  ASSERT_TRUE(req.send(zmq::buffer(std::string("budget 0\n")), zmq::send_flags::none));
  zmq::message_t reply;
  for (int i = 0; i < 2000 && !req.recv(reply, zmq::recv_flags::dontwait); ++i) {
    c.Poll();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(reply.to_string().rfind("ok budget 0", 0), 0u) << reply.to_string();
  ASSERT_EQ(policy.budgets.size(), 2u);
  EXPECT_EQ(policy.budgets[1].first, 0.0);
}

}  // namespace
}  // namespace deepcut::edge

namespace deepcut::edge {
namespace {

// A replica that says "draining": the same request goes out again at once and
// its answer is the frame's only one; the bytes of both sends are counted.
TEST_F(EdgeRuntimeTest, ADrainingReplyIsSentAgainAndAnsweredOnce) {
  std::map<std::uint16_t, int> seen;
  ScriptedLink link(clock_, 2'000, [&](const transport::Request& r) {
    if (seen[r.seq]++ == 0) {
      transport::Reply draining;
      draining.seq = r.seq;
      draining.status = transport::ReplyStatus::kDraining;
      draining.message = "draining";
      return std::optional(transport::EncodeReply(draining));
    }
    return std::optional(OkReply(r, 4));
  });
  auto answers = Run(link, "always", 20, 30'000);
  ExpectOneAnswerEach(answers, 20);
  for (const auto& a : answers) {
    EXPECT_EQ(a.route, Route::kCloud);
    EXPECT_EQ(a.class_id, 4);
  }
  EXPECT_EQ(counters_.replies_draining, 20);
  EXPECT_EQ(counters_.resent, 20);
  EXPECT_EQ(counters_.replies_in_time, 20);
  ASSERT_EQ(link.sent.size(), 40u);
  // The second send carries the same seq and less time left.
  EXPECT_EQ(link.sent[0].seq, link.sent[1].seq);
  EXPECT_LT(link.sent[1].deadline_ms, link.sent[0].deadline_ms);
  std::int64_t bytes = 0;
  for (const auto& a : answers) bytes += a.uplink_bytes;
  EXPECT_EQ(bytes, static_cast<std::int64_t>(link.sent_bytes + 2 * link.sent.size()));
}

// Requests the link reports lost (their replica dropped the connection) are
// sent again; one that keeps failing is answered locally at its deadline.
TEST_F(EdgeRuntimeTest, LostRequestsAreSentAgain) {
  std::map<std::uint16_t, int> seen;
  ScriptedLink* self = nullptr;
  ScriptedLink link(clock_, 2'000,
                    [&](const transport::Request& r) -> std::optional<std::vector<std::uint8_t>> {
                      if (seen[r.seq]++ == 0) {
                        self->lost.push_back(r.seq);  // went to a replica that vanished
                        return std::nullopt;
                      }
                      return OkReply(r, 2);
                    });
  self = &link;
  auto answers = Run(link, "always", 10, 30'000);
  ExpectOneAnswerEach(answers, 10);
  for (const auto& a : answers) EXPECT_EQ(a.route, Route::kCloud);
  EXPECT_EQ(counters_.resent, 10);
}

TEST_F(EdgeRuntimeTest, ARequestLostAgainAndAgainIsSentAFewTimesThenAnsweredLocally) {
  ScriptedLink* self = nullptr;
  ScriptedLink link(clock_, 2'000,
                    [&](const transport::Request& r) -> std::optional<std::vector<std::uint8_t>> {
                      self->lost.push_back(r.seq);
                      return std::nullopt;
                    });
  self = &link;
  EdgeOptions options{.max_resends = 2, .reconnect_after_misses = 1000};
  auto answers = Run(link, "always", 5, 300'000, options);
  ExpectOneAnswerEach(answers, 5);
  for (const auto& a : answers) {
    EXPECT_EQ(a.route, Route::kLocal);
    EXPECT_EQ(a.reason, Reason::kDeadlineMissed);
  }
  EXPECT_EQ(counters_.resent, 10);
  EXPECT_EQ(link.sent.size(), 15u);
}

}  // namespace
}  // namespace deepcut::edge
