#include "core/units.h"

#include <cctype>
#include <cmath>
#include <stdexcept>

namespace deepcut {

Result<double> ParseBitRate(const std::string& text) {
  std::string s;
  for (char ch : text)
    if (!std::isspace(static_cast<unsigned char>(ch))) s += ch;
  auto bad = [&] {
    return InvalidArgument("'" + text +
                           "' is not a bit rate (examples: 64000, 200k, 1.5M, 2G, 500kbps)");
  };
  if (s.empty()) return bad();
  for (const char* unit : {"bit/s", "bps", "b/s"}) {
    const std::string u(unit);
    if (s.size() > u.size() && s.compare(s.size() - u.size(), u.size(), u) == 0) {
      s.resize(s.size() - u.size());
      break;
    }
  }
  double scale = 1.0;
  switch (s.empty() ? '\0' : s.back()) {
    case 'k':
    case 'K':
      scale = 1e3;
      break;
    case 'M':
      scale = 1e6;
      break;
    case 'G':
    case 'g':
      scale = 1e9;
      break;
    default:
      break;
  }
  if (scale != 1.0) s.pop_back();
  if (s.empty()) return bad();
  size_t used = 0;
  double value;
  try {
    value = std::stod(s, &used);
  } catch (const std::exception&) {
    return bad();
  }
  if (used != s.size() || !std::isfinite(value) || value < 0.0) return bad();
  return value * scale;
}

}  // namespace deepcut
