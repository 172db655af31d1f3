#include "scheduler/policy.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>
#include <map>
#include <random>

namespace deepcut::scheduler {

bool PreferReuse(double exit_error_rate, double reuse_probability, double cloud_accuracy) {
  return reuse_probability * cloud_accuracy > 1.0 - exit_error_rate;
}

double ExpectedCloudAccuracy(double exit_error, double rate_accuracy, double exit_accuracy) {
  if (!(exit_accuracy > 0.0 && exit_accuracy < 1.0)) return rate_accuracy;
  const double k = std::clamp((1.0 - rate_accuracy) / (1.0 - exit_accuracy), 0.0, 1.0);
  return 1.0 - k * exit_error;
}

namespace {

// A calibration bin that saw no error still errs sometimes: without a floor
// the gain of offloading such a frame would be exactly zero, whatever it costs.
constexpr double kMinErrorRate = 1e-3;

double DefaultCloudAccuracy(const DecisionContext& c) {
  if (c.default_rate_index >= 0 && c.default_rate_index < static_cast<int>(c.rates.size()))
    return c.rates[c.default_rate_index].cloud_accuracy;
  return 0.0;
}

double DefaultBytes(const DecisionContext& c) {
  if (c.default_rate_index >= 0 && c.default_rate_index < static_cast<int>(c.rates.size()))
    return std::max(1.0, c.rates[c.default_rate_index].wire_bytes);
  return 100.0;
}

// Offloads every frame at the default rate (the cloud's accuracy, full cost).
class AlwaysPolicy final : public OffloadPolicy {
 public:
  const char* name() const override { return "always"; }
  Decision Decide(const DecisionContext& c) override {
    return Decision{Action::kOffload, c.default_rate_index};
  }
};

// Never sends anything (edge-only: zero uplink bytes, the exit's accuracy).
class EdgeOnlyPolicy final : public OffloadPolicy {
 public:
  const char* name() const override { return "edge-only"; }
  Decision Decide(const DecisionContext&) override { return Decision{Action::kLocal, -1}; }
};

// What every budgeted policy shares: the budget controller, the link
// estimator, the scene detector and the fallback rule.
class BudgetedPolicy : public OffloadPolicy {
 public:
  explicit BudgetedPolicy(const PolicyOptions& options)
      : options_(options),
        budget_(WithBudget(options.budget, options.budget_bps)),
        estimator_(options.estimator),
        scene_(WithRange(options.scene, options.model)) {}

  void OnSent(std::uint64_t request_id, TimeUs now_us, std::int64_t wire_bytes) override {
    estimator_.OnSent(request_id, now_us, wire_bytes);
    budget_.Spend(wire_bytes, now_us);
    sent_accuracy_[request_id] = decided_cloud_accuracy_;
    last_sent_us_ = now_us;
    Sent(now_us);
  }

  // Only from a bucket at least `kSpareFill` full: the budget the offloads
  // have left unspent for a while, not what the next one needs.
  bool SpareBytes(std::int64_t bytes, TimeUs now_us) override {
    if (budget_.Unlimited()) return true;
    return budget_.Fill(now_us) >= kSpareFill && budget_.CanSpend(bytes, now_us);
  }
  void OnOtherSent(std::int64_t bytes, TimeUs now_us) override {
    budget_.SpendOther(bytes, now_us);
  }
  static constexpr double kSpareFill = 0.75;

  void OnOutcome(const Feedback& f) override {
    switch (f.outcome) {
      case Outcome::kAnswered:
      case Outcome::kLate:
        estimator_.OnReply(f.request_id, f.now_us, f.server_us);
        // Answers can arrive out of order; the newest frame's is the reference.
        if (f.frame_id > last_answered_frame_ && !f.features.empty()) {
          last_answered_frame_ = f.frame_id;
          scene_.ObserveCloudAnswer(f.features, f.class_id);
          if (auto it = sent_accuracy_.find(f.request_id); it != sent_accuracy_.end())
            reference_accuracy_ = it->second;
        }
        sent_accuracy_.erase(f.request_id);
        break;
      case Outcome::kLost:
        // A late answer may still follow and become the reference.
        estimator_.OnLost(f.request_id, f.now_us);
        break;
      case Outcome::kBusy:
      case Outcome::kError:
        estimator_.OnLost(f.request_id, f.now_us);
        sent_accuracy_.erase(f.request_id);
        break;
    }
    // Bounded: requests whose replies never come are forgotten eventually.
    while (sent_accuracy_.size() > 1024) sent_accuracy_.erase(sent_accuracy_.begin());
  }

  void SetBudget(double budget_bps, TimeUs now_us) override {
    budget_.SetBudget(budget_bps, now_us);
  }
  const SceneDetector* scene() const override { return &scene_; }
  const BandwidthEstimator* estimator() const override { return &estimator_; }

 protected:
  virtual void Sent(TimeUs /*now_us*/) {}

  // Called by Decide with this frame's expected cloud accuracy at the chosen
  // rate, remembered for the reference if the frame is sent.
  void NoteDecision(const DecisionContext& c, int rate_index) {
    const int r = rate_index >= 0 ? rate_index : c.default_rate_index;
    const double rate_accuracy =
        r >= 0 && r < static_cast<int>(c.rates.size()) ? c.rates[r].cloud_accuracy : 0.0;
    decided_cloud_accuracy_ = ExpectedCloudAccuracy(std::max<double>(c.exit_error_rate, 0.0),
                                                    rate_accuracy, options_.model.exit_accuracy);
  }

  // P(the cloud's last answer still holds for this frame); 0 without one.
  double ReuseProbability(const DecisionContext& c) const {
    if (!c.has_cloud_answer || !scene_.HasReference() || c.features.empty()) return 0.0;
    return scene_.ReuseProbability(scene_.Distance(c.features));
  }
  // The expected accuracy of that answer on its own frame.
  double ReferenceAccuracy(const DecisionContext& c) const {
    return reference_accuracy_ >= 0 ? reference_accuracy_ : DefaultCloudAccuracy(c);
  }

  // The shared fallback rule for a frame that is not offloaded.
  Decision Fallback(const DecisionContext& c, double p_reuse) const {
    if (p_reuse > 0.0 && PreferReuse(c.exit_error_rate, p_reuse, ReferenceAccuracy(c)))
      return Decision{Action::kReuse, -1};
    return Decision{Action::kLocal, -1};
  }
  Decision Fallback(const DecisionContext& c) const { return Fallback(c, ReuseProbability(c)); }

  // The user's rate if the link can bring its answer back in time, else the
  // most accurate cheaper one that can; -1 if none can, or if the bucket
  // cannot pay for it (the budget is no reason to send a worse answer: wait
  // for the tokens).
  int RateThatFits(const DecisionContext& c) {
    const int d = c.default_rate_index;
    const double default_bytes = DefaultBytes(c);
    std::vector<int> order;
    for (int r = 0; r < static_cast<int>(c.rates.size()); ++r)
      if (r == d || (options_.choose_rate && c.rates[r].wire_bytes < default_bytes))
        order.push_back(r);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
      if ((a == d) != (b == d)) return a == d;
      return c.rates[a].cloud_accuracy > c.rates[b].cloud_accuracy;
    });
    // The prediction learns only from replies: when nothing is out and
    // nothing went for a while, send anyway (a probe), or a bad spell could
    // keep it pessimistic for ever.
    const bool probe = c.in_flight == 0 && c.now_us - last_sent_us_ >= options_.probe_interval_us;
    const double time_left = static_cast<double>(c.deadline_us - c.now_us);
    for (int r : order) {
      const auto bytes = static_cast<std::int64_t>(std::ceil(std::max(1.0, c.rates[r].wire_bytes)));
      if (!probe &&
          estimator_.PredictLatencyUs(bytes, c.now_us) > options_.deadline_fraction * time_left)
        continue;
      if (!budget_.Unlimited() && !budget_.CanSpend(bytes, c.now_us)) return -1;
      return r;
    }
    return -1;
  }

  // DeepCut's and the learned policy's shared end: a frame with `score` (per
  // byte, > 0 worth sending) goes at the rate that fits if it clears the price
  // and the window is open; otherwise the fallback rule answers it.
  Decision DecideByScore(const DecisionContext& c, double score, double p_reuse) {
    const int best = score > 0.0 ? RateThatFits(c) : -1;
    const double bytes = best >= 0 ? std::max(1.0, c.rates[best].wire_bytes) : DefaultBytes(c);
    const bool go = Pass(best >= 0 ? score : 0.0, bytes, 1e-12, c);
    NoteDecision(c, best);
    if (go && best >= 0 && WindowOpen(c)) return Decision{Action::kOffload, best};
    return Fallback(c, p_reuse);
  }

  bool WindowOpen(const DecisionContext& c) const {
    return c.max_in_flight <= 0 || c.in_flight < c.max_in_flight;
  }

  // With a budget: the frame passes if its score clears the controller's price
  // and the bucket holds its bytes. Without: if it clears `threshold`.
  bool Pass(double score, double bytes, double threshold, const DecisionContext& c) {
    if (budget_.Unlimited()) return score >= threshold;
    budget_.ObserveScore(score, c.now_us);
    return score > 0.0 && score >= budget_.Price() &&
           budget_.CanSpend(static_cast<std::int64_t>(std::ceil(bytes)), c.now_us);
  }

  static BudgetOptions WithBudget(BudgetOptions b, double bps) {
    b.budget_bps = bps;
    return b;
  }
  static SceneOptions WithRange(SceneOptions s, const ModelFacts& m) {
    s.value_min = m.value_min;
    s.value_max = m.value_max;
    s.channels = m.channels;
    return s;
  }

  PolicyOptions options_;
  BudgetController budget_;
  BandwidthEstimator estimator_;
  SceneDetector scene_;
  std::int64_t last_answered_frame_ = -1;
  double decided_cloud_accuracy_ = 0.0;
  double reference_accuracy_ = -1.0;  // expected accuracy of the reference's answer
  TimeUs last_sent_us_ = std::numeric_limits<TimeUs>::min() / 2;
  std::map<std::uint64_t, double> sent_accuracy_;
};

// Every k-th frame, or with a budget every 8 * bytes / budget seconds.
class PeriodicPolicy final : public BudgetedPolicy {
 public:
  using BudgetedPolicy::BudgetedPolicy;
  const char* name() const override { return "periodic"; }
  Decision Decide(const DecisionContext& c) override {
    ++frames_since_;
    bool due;
    const double bytes = DefaultBytes(c);
    if (budget_.Unlimited()) {
      due = frames_since_ >= options_.period_frames;
    } else {
      interval_us_ = static_cast<TimeUs>(8.0 * bytes / budget_.budget_bps() * 1e6);
      due = next_due_us_ < 0 || c.now_us >= next_due_us_;
      due = due && budget_.CanSpend(static_cast<std::int64_t>(std::ceil(bytes)), c.now_us);
    }
    NoteDecision(c, c.default_rate_index);
    if (due && WindowOpen(c)) return Decision{Action::kOffload, c.default_rate_index};
    return Fallback(c);
  }

 private:
  // The schedule advances by whole intervals, so frame times that do not
  // divide the interval do not slow it down; after a gap it restarts.
  void Sent(TimeUs now_us) override {
    frames_since_ = 0;
    next_due_us_ = next_due_us_ < 0 || now_us - next_due_us_ > interval_us_
                       ? now_us + interval_us_
                       : next_due_us_ + interval_us_;
  }
  int frames_since_ = std::numeric_limits<int>::max() / 2;
  TimeUs next_due_us_ = -1;
  TimeUs interval_us_ = 0;
};

// Each frame with probability p: fixed, or what the budget affords (the
// controller's price over uniform random scores lets that fraction through).
class RandomPolicy final : public BudgetedPolicy {
 public:
  explicit RandomPolicy(const PolicyOptions& o) : BudgetedPolicy(o), rng_(o.seed) {}
  const char* name() const override { return "random"; }
  Decision Decide(const DecisionContext& c) override {
    const double u = uniform_(rng_);
    const double bytes = DefaultBytes(c);
    bool go;
    if (options_.random_probability > 0.0) {
      go = u < options_.random_probability &&
           (budget_.Unlimited() ||
            budget_.CanSpend(static_cast<std::int64_t>(std::ceil(bytes)), c.now_us));
    } else {
      // Unlimited and no p given: one frame in ten.
      go = Pass(1.0 - u, bytes, 0.9, c);
    }
    NoteDecision(c, c.default_rate_index);
    if (go && WindowOpen(c)) return Decision{Action::kOffload, c.default_rate_index};
    return Fallback(c);
  }

 private:
  std::mt19937_64 rng_;
  std::uniform_real_distribution<double> uniform_{0.0, 1.0};
};

// The frames the exit is least sure of (calibrated error rate).
class ConfidencePolicy final : public BudgetedPolicy {
 public:
  using BudgetedPolicy::BudgetedPolicy;
  const char* name() const override { return "confidence"; }
  Decision Decide(const DecisionContext& c) override {
    // Calibrated error rates come in bins; the raw confidence breaks the ties.
    const double score = std::max<double>(c.exit_error_rate, kMinErrorRate) +
                         1e-4 * (1.0 - static_cast<double>(c.exit_confidence));
    bool go = budget_.Unlimited() ? c.exit_confidence < options_.confidence_threshold
                                  : Pass(score, DefaultBytes(c), 0.0, c);
    NoteDecision(c, c.default_rate_index);
    if (go && WindowOpen(c)) return Decision{Action::kOffload, c.default_rate_index};
    return Fallback(c);
  }
};

// Glimpse/Reducto-like: the frames whose thumbnail changed most since the
// last frame sent.
class FrameDiffPolicy final : public BudgetedPolicy {
 public:
  using BudgetedPolicy::BudgetedPolicy;
  const char* name() const override { return "framediff"; }
  bool WantsPixels() const override { return true; }
  Decision Decide(const DecisionContext& c) override {
    double diff = 1.0;  // nothing sent yet: maximal change
    if (!sent_pixels_.empty() && sent_pixels_.size() == c.pixels.size()) {
      double sum = 0.0;
      for (size_t i = 0; i < c.pixels.size(); ++i) sum += std::abs(c.pixels[i] - sent_pixels_[i]);
      diff = sum / std::max<size_t>(1, c.pixels.size());
    }
    candidate_.assign(c.pixels.begin(), c.pixels.end());
    const bool go = Pass(diff, DefaultBytes(c), options_.framediff_threshold, c);
    NoteDecision(c, c.default_rate_index);
    if (go && WindowOpen(c)) return Decision{Action::kOffload, c.default_rate_index};
    return Fallback(c);
  }

 private:
  void Sent(TimeUs) override { sent_pixels_ = candidate_; }
  std::vector<float> sent_pixels_, candidate_;
};

// The DeepCut policy: expected accuracy gain per byte against the price.
//
// The gain of offloading is P(cloud right) - P(fallback right) on this frame;
// the cloud is right with ExpectedCloudAccuracy(e, a_r, a_exit), e the
// calibrated exit error at this confidence; the fallback with
// max(1 - e, p_reuse * a_ref), p_reuse what the scene detector says of the
// cloud's last answer at this distance and a_ref that answer's own expected
// accuracy (so resending an unchanged scene gains nothing). (Adding an
// estimate of the answer's later value, its reuse by the rest of the scene,
// was tried and lowered accuracy on 10,000-frame scene traces: 90.88% ->
// 90.20..90.24% at 10% of always-offload's bytes; it sent too many frames at
// scene changes.)
class DeepCutPolicy final : public BudgetedPolicy {
 public:
  using BudgetedPolicy::BudgetedPolicy;
  const char* name() const override { return "deepcut"; }
  Decision Decide(const DecisionContext& c) override {
    const double e = std::max<double>(c.exit_error_rate, kMinErrorRate);
    const double p_reuse = ReuseProbability(c);
    double fallback_right = std::max(1.0 - e, p_reuse * ReferenceAccuracy(c));
    // With scene fusion the fallback is the scene's pooled answer: worth as
    // much as its (overconfident, log-pooled) posterior says, discounted.
    if (c.fused)
      fallback_right = std::max(fallback_right, options_.fusion_trust * c.fused_confidence +
                                                    (1.0 - options_.fusion_trust) * (1.0 - e));
    const double gain =
        ExpectedCloudAccuracy(e, DefaultCloudAccuracy(c), options_.model.exit_accuracy) -
        fallback_right;
    return DecideByScore(c, gain >= options_.min_gain ? gain / DefaultBytes(c) : 0.0, p_reuse);
  }
};

// The learned policy (after Chinchali et al., RSS 2019): a small network
// (scheduler/policy_net.h) scores each frame from what the edge knows; the
// budget controller ranks the positive scores per byte against its price, as
// it does DeepCut's, so the knob holds whatever the network learnt. Trained
// by deepcut-train-policy in the virtual-time replay.
class LearnedPolicy final : public BudgetedPolicy {
 public:
  LearnedPolicy(const PolicyOptions& options, std::shared_ptr<const PolicyNet> net)
      : BudgetedPolicy(options), net_(std::move(net)) {}
  const char* name() const override { return "learned"; }
  Decision Decide(const DecisionContext& c) override {
    const double out = net_->Score(State(c).Values());
    return DecideByScore(c, out > 0.0 ? out / DefaultBytes(c) : 0.0, ReuseProbability(c));
  }

 private:
  LearnedState State(const DecisionContext& c) {
    if (last_frame_us_ >= 0 && c.now_us > last_frame_us_)
      frame_interval_s_ = 0.9 * frame_interval_s_ + 0.1 * (c.now_us - last_frame_us_) / 1e6;
    last_frame_us_ = c.now_us;
    LearnedState s;
    const double e = std::max<double>(c.exit_error_rate, kMinErrorRate);
    s.exit_error = e;
    s.expected_cloud =
        ExpectedCloudAccuracy(e, DefaultCloudAccuracy(c), options_.model.exit_accuracy);
    s.fused_confidence = c.fused ? c.fused_confidence : 1.0 - e;
    s.scene_exit_frames = c.fused ? std::log1p(c.fused_exit_frames) / std::log(64.0) : 0.0;
    s.scene_cloud_frames = c.fused ? std::min(c.fused_cloud_frames, 4) / 4.0 : 0.0;
    s.reuse_probability = ReuseProbability(c);
    s.since_offload = std::min(5.0, (c.now_us - last_sent_us_) / 1e6) / 5.0;
    s.bucket_fill = budget_.Unlimited() ? 1.0 : budget_.Fill(c.now_us);
    const double default_bytes = DefaultBytes(c);
    s.budget_share =
        budget_.Unlimited()
            ? 1.0
            : std::min(1.0, budget_.budget_bps() / 8.0 * frame_interval_s_ / default_bytes);
    const double time_left = std::max(1.0, static_cast<double>(c.deadline_us - c.now_us));
    const auto latency =
        estimator_.PredictLatencyUs(static_cast<std::int64_t>(std::ceil(default_bytes)), c.now_us);
    s.latency_share = std::min(2.0, latency / time_left) / 2.0;
    s.in_flight_share =
        c.max_in_flight > 0 ? static_cast<double>(c.in_flight) / c.max_in_flight : 0.0;
    return s;
  }
  std::shared_ptr<const PolicyNet> net_;
  TimeUs last_frame_us_ = -1;
  double frame_interval_s_ = 0.1;
};

// Plays a fixed plan (the oracle's), with the shared fallback rule under a
// frozen scene calibration.
class PlanPolicy final : public OffloadPolicy {
 public:
  PlanPolicy(std::vector<int> plan, const SceneDetector& scene, const ModelFacts& model)
      : plan_(std::move(plan)), scene_(scene), model_(model) {}
  const char* name() const override { return "oracle"; }
  Decision Decide(const DecisionContext& c) override {
    if (c.frame_id >= 0 && c.frame_id < static_cast<std::int64_t>(plan_.size()) &&
        plan_[c.frame_id] >= 0) {
      const int r = plan_[c.frame_id];
      if (r < static_cast<int>(c.rates.size()))
        accuracy_by_frame_[c.frame_id] =
            ExpectedCloudAccuracy(std::max<double>(c.exit_error_rate, 0.0),
                                  c.rates[r].cloud_accuracy, model_.exit_accuracy);
      return Decision{Action::kOffload, r};
    }
    if (c.has_cloud_answer && scene_.HasReference() && !c.features.empty()) {
      const double p = scene_.ReuseProbability(scene_.Distance(c.features));
      if (PreferReuse(c.exit_error_rate, p, reference_accuracy_))
        return Decision{Action::kReuse, -1};
    }
    return Decision{Action::kLocal, -1};
  }
  void OnOutcome(const Feedback& f) override {
    if ((f.outcome == Outcome::kAnswered || f.outcome == Outcome::kLate) &&
        f.frame_id > last_answered_frame_ && !f.features.empty()) {
      last_answered_frame_ = f.frame_id;
      scene_.SetReference(f.features, f.class_id);  // no learning: the calibration stays frozen
      reference_accuracy_ = accuracy_by_frame_[f.frame_id];
    }
  }
  const SceneDetector* scene() const override { return &scene_; }

 private:
  std::vector<int> plan_;
  SceneDetector scene_;
  ModelFacts model_;
  std::map<std::int64_t, double> accuracy_by_frame_;
  double reference_accuracy_ = 0.0;
  std::int64_t last_answered_frame_ = -1;
};

}  // namespace

std::vector<std::string> PolicyNames() {
  return {"deepcut",  "learned", "edge-only",  "always",
          "periodic", "random",  "confidence", "framediff"};
}

Result<std::unique_ptr<OffloadPolicy>> MakePolicy(const PolicyOptions& o) {
  if (o.period_frames < 1) return InvalidArgument("period must be >= 1 frame");
  if (o.random_probability < 0.0 || o.random_probability > 1.0)
    return InvalidArgument("random probability must be in [0, 1]");
  if (!(o.deadline_fraction > 0.0 && o.deadline_fraction <= 1.0))
    return InvalidArgument("deadline fraction must be in (0, 1]");
  if (!std::isfinite(o.budget_bps)) return InvalidArgument("budget must be finite");
  std::unique_ptr<OffloadPolicy> p;
  if (o.name == "always") p = std::make_unique<AlwaysPolicy>();
  if (o.name == "never" || o.name == "edge-only") p = std::make_unique<EdgeOnlyPolicy>();
  if (o.name == "periodic") p = std::make_unique<PeriodicPolicy>(o);
  if (o.name == "random") p = std::make_unique<RandomPolicy>(o);
  if (o.name == "confidence") p = std::make_unique<ConfidencePolicy>(o);
  if (o.name == "framediff") p = std::make_unique<FrameDiffPolicy>(o);
  if (o.name == "deepcut") p = std::make_unique<DeepCutPolicy>(o);
  if (o.name == "learned") {
    if (!o.learned)
      return InvalidArgument(
          "the learned policy needs its weights (the package's policy.json, or --policy-weights)");
    p = std::make_unique<LearnedPolicy>(o, o.learned);
  }
  if (p) return p;
  std::string known;
  for (const auto& n : PolicyNames()) known += (known.empty() ? "" : ", ") + n;
  if (o.name == "oracle")
    return InvalidArgument(
        "the oracle needs hindsight over a whole trace; it runs only in "
        "deepcut-replay (known here: " +
        known + ")");
  return InvalidArgument("unknown policy '" + o.name + "' (known: " + known + ")");
}

PolicyChoice ParsePolicyChoice(const std::string& spelled) {
  static const std::string kSuffix = "+fusion";
  if (spelled.size() > kSuffix.size() &&
      spelled.compare(spelled.size() - kSuffix.size(), kSuffix.size(), kSuffix) == 0)
    return {spelled.substr(0, spelled.size() - kSuffix.size()), true};
  return {spelled, spelled == "deepcut" || spelled == "learned"};
}

std::unique_ptr<OffloadPolicy> MakePlanPolicy(std::vector<int> plan, const SceneDetector& scene,
                                              const ModelFacts& model) {
  return std::make_unique<PlanPolicy>(std::move(plan), scene, model);
}

}  // namespace deepcut::scheduler
