// One line of progress on stderr for long work (making a trace, a run over a
// dataset, an evaluation): "what [#####.....] 1200 / 3000 frames  detail",
// redrawn in place at most 5 times a second and once at the end. It draws only
// when on (by default: when stderr is a terminal), so logs and CI output stay
// clean; callers print milestones or a summary line instead.
//
// Thread-safety: one thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace deepcut {

class ProgressLine {
 public:
  ProgressLine(std::string what, std::string unit, bool on = StderrIsTerminal());
  ~ProgressLine() { Done(); }
  ProgressLine(const ProgressLine&) = delete;
  ProgressLine& operator=(const ProgressLine&) = delete;

  // `total` < 0: unknown (no bar). `detail` follows the count.
  void Update(std::int64_t done, std::int64_t total, const std::string& detail = "");
  // Ends the line (if one was drawn).
  void Done();
  static bool StderrIsTerminal();

 private:
  std::string what_, unit_;
  bool on_, drawn_ = false;
  std::chrono::steady_clock::time_point last_{};
};

}  // namespace deepcut
