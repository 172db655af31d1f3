#include "scheduler/policy.h"

namespace deepcut::scheduler {
namespace {

// Offloads every frame at the default rate (the cloud's accuracy, full cost).
class AlwaysPolicy final : public OffloadPolicy {
 public:
  const char* name() const override { return "always"; }
  Decision Decide(const DecisionContext& c) override {
    return Decision{Action::kOffload, c.default_rate_index};
  }
};

// Never sends anything (edge-only: zero uplink bytes, the exit's accuracy).
class NeverPolicy final : public OffloadPolicy {
 public:
  const char* name() const override { return "never"; }
  Decision Decide(const DecisionContext&) override { return Decision{Action::kLocal, -1}; }
};

}  // namespace

std::vector<std::string> PolicyNames() { return {"always", "never"}; }

Result<std::unique_ptr<OffloadPolicy>> MakePolicy(const PolicyOptions& options) {
  if (options.name == "always") return std::unique_ptr<OffloadPolicy>(new AlwaysPolicy());
  if (options.name == "never" || options.name == "edge-only")
    return std::unique_ptr<OffloadPolicy>(new NeverPolicy());
  std::string known;
  for (const auto& n : PolicyNames()) known += (known.empty() ? "" : ", ") + n;
  return InvalidArgument("unknown policy '" + options.name + "' (known: " + known + ")");
}

}  // namespace deepcut::scheduler
