// The DP, for one lambda. best_in[i] is the best (correct - lambda * bytes)
// over frames 0..i-1 among plans whose frames before i are all accounted for:
// either no offload yet (all answered by the exit) or a last offload (j, r)
// with j < i and frames j+1..i-1 answered by the fallback rule from j. Frame
// j's own offload at rate r starts from best_in[j]; it is then pushed forward
// once, adding the fallback's correct answers frame by frame, into every
// best_in[i] for i > j (and best_in[frames], the whole trace). O(frames^2 *
// rates). States carry (correct, bytes, secondary key) so that ties are
// broken exactly (by default: fewer bytes).
//
// The sweep (SolveOracle): lambda = 0 first (the most correct answers, the
// fewest bytes among those); if that does not fit, lambda is a fraction p / q
// compared exactly in integers (q * correct - p * bytes), because the plans
// that matter tie exactly at the breakpoints: the slope between a plan over
// the budget and one within it either reveals a hull vertex in between or
// proves there is none. A bisection on a real lambda cannot land on a
// breakpoint, so where many offloads are worth exactly the same per byte
// (equal gains at equal sizes) it jumps from all of them to none and can
// leave most of the budget unused (the two-scene case in the tests).
//
// At the breakpoint every plan between the two ends ties; a secondary key
// (more bytes on offloads before a split frame, fewer after) walks from one
// end to the other as the split moves, and the split is bisected for the most
// bytes that fit.
#include "scheduler/oracle.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <string>

namespace deepcut::scheduler {

namespace {

constexpr int kMaxChordSteps = 200;  // a safety net: each step finds a new hull vertex

// The input with the reuse rule tabulated once and correctness precomputed.
struct Table {
  int frames = 0;
  int rates = 0;
  std::vector<int> allowed;            // rate indices that may be offloaded
  bool expected = false;               // values, not labels (the expected oracle)
  std::vector<int> local_ok;           // [i] exit right (or its value)
  std::vector<int> cloud_ok;           // [j * rates + r] cloud right on its own frame (or value)
  std::vector<std::uint8_t> reuse;     // row j: reuse(i, j) for i = j+1 .. frames-1
  std::vector<std::size_t> row_start;  // [j] where row j starts in `reuse`
  bool Reuse(int i, int j) const { return reuse[row_start[j] + (i - j - 1)]; }
};

Status Validate(const OracleInput& in) {
  auto size_error = [](const char* field, std::size_t got, std::size_t want, const char* what) {
    return InvalidArgument("oracle: " + std::string(field) + " has " + std::to_string(got) +
                           " entries, expected " + what + " = " + std::to_string(want));
  };
  if (in.frames < 0) return InvalidArgument("oracle: frames must be >= 0");
  if (in.rates < 1) return InvalidArgument("oracle: rates must be >= 1");
  const std::size_t frames = static_cast<std::size_t>(in.frames);
  const std::size_t cells = frames * static_cast<std::size_t>(in.rates);
  if (in.labels.size() != frames) return size_error("labels", in.labels.size(), frames, "frames");
  if (in.local_class.size() != frames)
    return size_error("local_class", in.local_class.size(), frames, "frames");
  if (in.cloud_class.size() != cells)
    return size_error("cloud_class", in.cloud_class.size(), cells, "frames * rates");
  if (in.bytes.size() != cells)
    return size_error("bytes", in.bytes.size(), cells, "frames * rates");
  for (std::size_t k = 0; k < cells; ++k)
    if (in.bytes[k] < 0)
      return InvalidArgument("oracle: bytes[" + std::to_string(k) + "] is negative");
  for (int r : in.allowed_rates)
    if (r < 0 || r >= in.rates)
      return InvalidArgument("oracle: allowed_rates holds " + std::to_string(r) +
                             ", outside [0, rates = " + std::to_string(in.rates) + ")");
  if (in.frames > 1 && !in.reuse) return InvalidArgument("oracle: reuse is not set");
  const bool expected = !in.local_value.empty() || !in.cloud_value.empty() || !in.item.empty();
  if (expected) {
    if (in.local_value.size() != frames)
      return size_error("local_value", in.local_value.size(), frames, "frames");
    if (in.cloud_value.size() != cells)
      return size_error("cloud_value", in.cloud_value.size(), cells, "frames * rates");
    if (in.item.size() != frames) return size_error("item", in.item.size(), frames, "frames");
    for (int v : in.local_value)
      if (v < 0 || v > kValueScale)
        return InvalidArgument("oracle: a local value is outside [0, 1]");
    for (int v : in.cloud_value)
      if (v < 0 || v > kValueScale)
        return InvalidArgument("oracle: a cloud value is outside [0, 1]");
  }
  // The sweep multiplies byte totals by answer counts in 64-bit integers.
  const std::int64_t scale = in.local_value.empty() ? 1 : kValueScale;
  const std::int64_t limit =
      std::numeric_limits<std::int64_t>::max() / 4 / ((in.frames + 1) * scale);
  std::int64_t total = 0;
  for (int i = 0; i < in.frames; ++i) {
    total += *std::max_element(in.bytes.begin() + std::int64_t{i} * in.rates,
                               in.bytes.begin() + std::int64_t{i + 1} * in.rates);
    if (total > limit) return InvalidArgument("oracle: bytes add up to more than it can count");
  }
  return Status::Ok();
}

Table Tabulate(const OracleInput& in) {
  Table t;
  t.frames = in.frames;
  t.rates = in.rates;
  if (in.allowed_rates.empty()) {
    for (int r = 0; r < in.rates; ++r) t.allowed.push_back(r);
  } else {
    t.allowed = in.allowed_rates;
    std::sort(t.allowed.begin(), t.allowed.end());
    t.allowed.erase(std::unique(t.allowed.begin(), t.allowed.end()), t.allowed.end());
  }
  t.expected = !in.local_value.empty();
  t.local_ok.resize(in.frames);
  t.cloud_ok.resize(in.cloud_class.size());
  for (int i = 0; i < in.frames; ++i) {
    t.local_ok[i] = t.expected ? in.local_value[i] : in.local_class[i] == in.labels[i];
    for (int r = 0; r < in.rates; ++r) {
      const int cell = i * in.rates + r;
      t.cloud_ok[cell] = t.expected ? in.cloud_value[cell] : in.cloud_class[cell] == in.labels[i];
    }
  }
  t.row_start.resize(in.frames + 1, 0);
  for (int j = 0; j < in.frames; ++j)
    t.row_start[j + 1] = t.row_start[j] + static_cast<std::size_t>(in.frames - 1 - j);
  t.reuse.resize(t.row_start[in.frames]);
  for (int j = 0; j < in.frames; ++j)
    for (int i = j + 1; i < in.frames; ++i) t.reuse[t.row_start[j] + (i - j - 1)] = in.reuse(i, j);
  return t;
}

// What reusing offload `cell` (of frame j) is worth at frame i: right or not
// (hindsight), or the offload's value if the same item is still in view.
inline int ReuseValue(const OracleInput& in, const Table& t, int i, int j, int cell) {
  if (t.expected) return in.item[i] == in.item[j] ? t.cloud_ok[cell] : 0;
  return in.cloud_class[cell] == in.labels[i];
}

// The fallback rule's answer for every frame of a plan, and its totals.
OraclePlan Complete(const OracleInput& in, const Table& t, std::vector<int> rate, double lambda) {
  OraclePlan plan;
  plan.lambda = lambda;
  plan.rate = std::move(rate);
  plan.answer.resize(in.frames);
  int last = -1;
  for (int i = 0; i < in.frames; ++i) {
    if (plan.rate[i] >= 0) {
      const int cell = i * in.rates + plan.rate[i];
      plan.answer[i] = in.cloud_class[cell];
      plan.bytes += in.bytes[cell];
      last = i;
      plan.correct += t.cloud_ok[cell];
    } else if (last >= 0 && t.Reuse(i, last)) {
      const int cell = last * in.rates + plan.rate[last];
      plan.answer[i] = in.cloud_class[cell];
      plan.correct += ReuseValue(in, t, i, last, cell);
    } else {
      plan.answer[i] = in.local_class[i];
      plan.correct += t.local_ok[i];
    }
  }
  return plan;
}

// A DP objective: Better(dc, db, ds) says whether a candidate that differs
// from the incumbent by dc correct answers, db bytes and ds in the secondary
// key wins; Secondary(j, bytes) is an offload's secondary key.
struct RealLambda {  // correct - lambda * bytes; ties: fewer bytes
  double lambda;
  bool Better(std::int64_t dc, std::int64_t db, std::int64_t ds) const {
    const double gain = static_cast<double>(dc) - lambda * static_cast<double>(db);
    return gain > 0.0 || (gain == 0.0 && ds > 0);
  }
  std::int64_t Secondary(int /*j*/, std::int64_t bytes) const { return -bytes; }
};

// lambda = numerator / denominator exactly (q * correct - p * bytes); ties:
// more bytes on offloads at frames < split, fewer on the rest. split = 0
// is "fewer bytes".
struct RationalLambda {
  std::int64_t numerator;
  std::int64_t denominator;
  int split = 0;
  bool Better(std::int64_t dc, std::int64_t db, std::int64_t ds) const {
    const std::int64_t gain = denominator * dc - numerator * db;
    return gain > 0 || (gain == 0 && ds > 0);
  }
  std::int64_t Secondary(int j, std::int64_t bytes) const { return j < split ? bytes : -bytes; }
};

template <typename Objective>
OraclePlan Solve(const OracleInput& in, const Table& t, const Objective& objective, double lambda) {
  const int n = t.frames;
  const int rates = t.rates;
  // best_in[i] as (correct, bytes, secondary) and the offload it came from (-1: none).
  std::vector<std::int64_t> in_correct(n + 1, 0), in_bytes(n + 1, 0), in_secondary(n + 1, 0);
  std::vector<int> from_frame(n + 1, -1), from_rate(n + 1, -1);
  for (int i = 0; i < n; ++i) in_correct[i + 1] = in_correct[i] + t.local_ok[i];

  for (int j = 0; j < n; ++j) {
    const std::uint8_t* reuse_row = t.reuse.data() + t.row_start[j];  // [i - j - 1]
    for (int r : t.allowed) {
      const int cell = j * rates + r;
      const std::int64_t base_correct = in_correct[j] + t.cloud_ok[cell];
      const std::int64_t base_bytes = in_bytes[j] + in.bytes[cell];
      const std::int64_t base_secondary = in_secondary[j] + objective.Secondary(j, in.bytes[cell]);
      std::int64_t fallback_correct = 0;  // frames j+1 .. i-1
      for (int i = j + 1; i <= n; ++i) {
        const std::int64_t correct = base_correct + fallback_correct;
        if (objective.Better(correct - in_correct[i], base_bytes - in_bytes[i],
                             base_secondary - in_secondary[i])) {
          in_correct[i] = correct;
          in_bytes[i] = base_bytes;
          in_secondary[i] = base_secondary;
          from_frame[i] = j;
          from_rate[i] = r;
        }
        if (i < n)
          fallback_correct += reuse_row[i - j - 1] ? ReuseValue(in, t, i, j, cell) : t.local_ok[i];
      }
    }
  }
  std::vector<int> rate(n, -1);
  for (int i = n; from_frame[i] >= 0;) {
    const int j = from_frame[i];
    rate[j] = from_rate[i];
    i = j;
  }
  return Complete(in, t, std::move(rate), lambda);
}

OraclePlan SolveRational(const OracleInput& in, const Table& t, std::int64_t numerator,
                         std::int64_t denominator, int split = 0) {
  return Solve(in, t, RationalLambda{numerator, denominator, split},
               static_cast<double>(numerator) / static_cast<double>(denominator));
}

// More correct, then fewer bytes.
bool Preferred(const OraclePlan& a, const OraclePlan& b) {
  return a.correct > b.correct || (a.correct == b.correct && a.bytes < b.bytes);
}

}  // namespace

Result<OraclePlan> SolveOracleForLambda(const OracleInput& input, double lambda) {
  RETURN_IF_ERROR(Validate(input));
  if (!(lambda >= 0.0) || !std::isfinite(lambda))
    return InvalidArgument("oracle: lambda must be finite and >= 0");
  return Solve(input, Tabulate(input), RealLambda{lambda}, lambda);
}

Result<OraclePlan> SolveOracle(const OracleInput& input, std::int64_t byte_budget) {
  RETURN_IF_ERROR(Validate(input));
  if (byte_budget < 0) return InvalidArgument("oracle: byte_budget must be >= 0");
  const Table table = Tabulate(input);
  // lambda = 0: the most correct answers, with the fewest bytes among those.
  OraclePlan lo = SolveRational(input, table, 0, 1);
  if (lo.bytes <= byte_budget) return lo;

  // Above (frames + 1) / min_bytes an offload of b > 0 bytes costs more than
  // the at most `frames` answers it can change (in value units): only
  // zero-byte offloads remain.
  std::int64_t min_bytes = 0;
  for (int j = 0; j < input.frames; ++j)
    for (int r : table.allowed) {
      const std::int64_t b = input.bytes[j * input.rates + r];
      if (b > 0 && (min_bytes == 0 || b < min_bytes)) min_bytes = b;
    }
  const std::int64_t scale = table.expected ? kValueScale : 1;
  OraclePlan hi = SolveRational(input, table, (input.frames + 1) * scale, min_bytes);

  // Chord steps: at the slope between lo (over budget) and hi (within), the DP
  // either finds a plan above the chord (a hull vertex in between, which
  // replaces lo or hi) or none, and then lo-hi is the hull edge across the budget.
  std::int64_t numerator = 0, denominator = 1;
  for (int step = 0; step < kMaxChordSteps; ++step) {
    numerator = lo.correct - hi.correct;
    denominator = lo.bytes - hi.bytes;
    const std::int64_t g = std::gcd(numerator, denominator);
    if (g > 1) {
      numerator /= g;
      denominator /= g;
    }
    OraclePlan middle = SolveRational(input, table, numerator, denominator);
    if (denominator * middle.correct - numerator * middle.bytes <=
        denominator * hi.correct - numerator * hi.bytes)
      break;
    (middle.bytes <= byte_budget ? hi : lo) = std::move(middle);
  }
  hi.lambda = static_cast<double>(numerator) / static_cast<double>(denominator);
  if (hi.bytes == byte_budget) return hi;

  // The plans tied at this lambda run from hi's bytes to lo's. Preferring more
  // bytes on frames before a split (fewer after) walks from one to the other;
  // bisect the split for the most bytes that fit.
  OraclePlan best = std::move(hi);
  int fits = 0, over = input.frames;
  while (over - fits > 1) {
    const int split = fits + (over - fits) / 2;
    OraclePlan plan = SolveRational(input, table, numerator, denominator, split);
    if (plan.bytes <= byte_budget) {
      fits = split;
      if (Preferred(plan, best)) best = std::move(plan);
    } else {
      over = split;
    }
  }
  return best;
}

}  // namespace deepcut::scheduler
