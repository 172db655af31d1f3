// Network capacity traces: when the link may deliver a 1500-byte packet.
//
// Mahimahi format (../shared/traces/net/README.md): one line per delivery
// opportunity, the number on it the time in milliseconds from the start;
// several packets in one millisecond repeat the line; the trace loops, its
// period being the last timestamp. A fixed rate is a generated trace with
// evenly spaced opportunities.
//
// Thread-safety: a NetTrace is an immutable value once built.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/status.h"

namespace deepcut::network {

inline constexpr std::int64_t kPacketBytes = 1500;

struct NetTrace {
  std::string name;                      // file name or "fixed 2 Mbit/s"
  std::vector<TimeUs> opportunities_us;  // within one period, non-decreasing
  TimeUs period_us = 0;                  // the trace repeats after this long (> 0)

  // Time of opportunity `k` of the looped trace (k >= 0 counts across loops).
  TimeUs OpportunityUs(std::int64_t k) const;
  // Index of the first opportunity at or after `t_us` (t_us >= 0).
  std::int64_t FirstAtOrAfter(TimeUs t_us) const;
  // Mean capacity over one period, bit/s.
  double MeanBps() const;
};

// Reads a mahimahi trace; refuses anything that is not one non-negative integer
// per line in non-decreasing order, with the line number, or an empty trace.
Result<NetTrace> LoadMahimahi(const std::string& path);
// Parses mahimahi text (for tests and fuzzing); `name` is used in messages.
Result<NetTrace> ParseMahimahi(const std::string& text, const std::string& name);
// Evenly spaced opportunities at `bps` (> 0).
Result<NetTrace> FixedRate(double bps);
// "FILE" (a mahimahi trace) or a rate like "2M" (see ParseBitRate
// for the suffixes): whichever `spec` is. A spec that is neither an existing
// file nor a rate is refused.
Result<NetTrace> OpenLink(const std::string& spec);

}  // namespace deepcut::network
