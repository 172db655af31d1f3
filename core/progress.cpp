#include "core/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

namespace deepcut {

ProgressLine::ProgressLine(std::string what, std::string unit, bool on)
    : what_(std::move(what)), unit_(std::move(unit)), on_(on) {}

bool ProgressLine::StderrIsTerminal() { return ::isatty(STDERR_FILENO) != 0; }

void ProgressLine::Update(std::int64_t done, std::int64_t total, const std::string& detail) {
  if (!on_) return;
  const auto now = std::chrono::steady_clock::now();
  if (done != total && drawn_ && now - last_ < std::chrono::milliseconds(200)) return;
  last_ = now;
  std::string line = "\r" + what_ + " ";
  if (total > 0) {
    constexpr int kWidth = 30;
    const double fraction = std::clamp(static_cast<double>(done) / total, 0.0, 1.0);
    std::string bar(static_cast<size_t>(fraction * kWidth), '#');
    bar.resize(kWidth, '.');
    line += "[" + bar + "] " + std::to_string(done) + " / " + std::to_string(total);
  } else {
    line += std::to_string(done);
  }
  line += " " + unit_;
  if (!detail.empty()) line += "  " + detail;
  std::fputs(line.c_str(), stderr);
  std::fflush(stderr);
  drawn_ = true;
}

void ProgressLine::Done() {
  if (drawn_) std::fputc('\n', stderr);
  drawn_ = false;
}

}  // namespace deepcut
