#include "network/net_trace.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/units.h"

namespace deepcut::network {

// A real trace lasts minutes; this bounds a hostile file's memory.
constexpr std::size_t kMaxOpportunities = 50'000'000;
constexpr std::int64_t kMaxTimestampMs = 1'000'000'000;  // ~11.6 days

TimeUs NetTrace::OpportunityUs(std::int64_t k) const {
  const std::int64_t n = static_cast<std::int64_t>(opportunities_us.size());
  return (k / n) * period_us + opportunities_us[k % n];
}

std::int64_t NetTrace::FirstAtOrAfter(TimeUs t_us) const {
  const std::int64_t n = static_cast<std::int64_t>(opportunities_us.size());
  // Loop L's last opportunity is at (L + 1) * period (the period is the last
  // timestamp), so a time on a period's end is served by the loop ending there.
  std::int64_t loop = t_us > 0 ? (t_us - 1) / period_us : 0;
  const TimeUs within = t_us - loop * period_us;
  auto it = std::lower_bound(opportunities_us.begin(), opportunities_us.end(), within);
  if (it == opportunities_us.end()) {
    ++loop;
    it = opportunities_us.begin();
  }
  return loop * n + (it - opportunities_us.begin());
}

double NetTrace::MeanBps() const {
  return static_cast<double>(opportunities_us.size()) * kPacketBytes * 8.0 /
         (static_cast<double>(period_us) / 1e6);
}

Result<NetTrace> ParseMahimahi(const std::string& text, const std::string& name) {
  NetTrace trace;
  trace.name = name;
  std::istringstream in(text);
  std::string line;
  std::int64_t line_no = 0, last_ms = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    auto bad = [&](const std::string& what) {
      return InvalidArgument(name + ":" + std::to_string(line_no) + ": " + what +
                             " (mahimahi traces hold one millisecond timestamp per line)");
    };
    std::int64_t ms = 0;
    for (char c : line) {
      if (c < '0' || c > '9') return bad("'" + line.substr(0, 40) + "' is not a whole number");
      ms = ms * 10 + (c - '0');
      if (ms > kMaxTimestampMs) return bad("timestamp too large");
    }
    if (ms < last_ms)
      return bad("timestamps go backwards (" + std::to_string(ms) + " after " +
                 std::to_string(last_ms) + ")");
    if (trace.opportunities_us.size() >= kMaxOpportunities) return bad("too many lines");
    trace.opportunities_us.push_back(ms * 1000);
    last_ms = ms;
  }
  if (trace.opportunities_us.empty()) return InvalidArgument(name + ": the trace is empty");
  if (last_ms <= 0)
    return InvalidArgument(name + ": the last timestamp must be > 0 (it is the loop period)");
  trace.period_us = last_ms * 1000;
  return trace;
}

Result<NetTrace> LoadMahimahi(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound("cannot open network trace " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ParseMahimahi(ss.str(), path);
}

Result<NetTrace> FixedRate(double bps) {
  if (!(bps > 0.0) || bps > 1e12) return InvalidArgument("link rate must be > 0 and finite");
  NetTrace trace;
  std::ostringstream name;
  name << "fixed " << bps / 1e6 << " Mbit/s";
  trace.name = name.str();
  // One opportunity per period; at least 1 us apart.
  trace.period_us = std::max<TimeUs>(1, static_cast<TimeUs>(kPacketBytes * 8.0 / bps * 1e6));
  trace.opportunities_us = {trace.period_us};
  return trace;
}

Result<NetTrace> OpenLink(const std::string& spec) {
  std::error_code ec;
  if (std::filesystem::is_regular_file(spec, ec)) return LoadMahimahi(spec);
  auto rate = ParseBitRate(spec);
  if (!rate.ok())
    return InvalidArgument("'" + spec + "' is neither a mahimahi trace file nor a bit rate");
  return FixedRate(*rate);
}

}  // namespace deepcut::network
