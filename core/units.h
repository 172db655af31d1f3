// Quantities users type: bit rates.
#pragma once

#include <string>

#include "core/status.h"

namespace deepcut {

// "200k", "1.5M", "2G", "64000", optionally followed by "bps" or "bit/s":
// bits per second. Refuses anything else with a message naming the text.
Result<double> ParseBitRate(const std::string& text);

}  // namespace deepcut
