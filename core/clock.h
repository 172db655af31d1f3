// Injected time. Everything that reads the time or waits takes a Clock&, so the
// edge runtime and the scheduler run unchanged in real time and in virtual time
// (replay, tests).
//
// Thread-safety: RealClock is stateless. VirtualClock is safe to read from any
// thread; Advance/SetNow are meant for the single thread that drives a replay.
#pragma once

#include <atomic>
#include <cstdint>

namespace deepcut {

// Microseconds on a monotonic time line; the origin is the clock's own.
using TimeUs = std::int64_t;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual TimeUs NowUs() const = 0;
  // Blocks (real) or jumps (virtual) until NowUs() >= t.
  virtual void SleepUntilUs(TimeUs t) = 0;
};

// std::chrono::steady_clock.
class RealClock final : public Clock {
 public:
  TimeUs NowUs() const override;
  void SleepUntilUs(TimeUs t) override;
};

// A clock that moves only when told to.
class VirtualClock final : public Clock {
 public:
  explicit VirtualClock(TimeUs start_us = 0) : now_us_(start_us) {}
  TimeUs NowUs() const override { return now_us_.load(std::memory_order_acquire); }
  void SleepUntilUs(TimeUs t) override;
  void AdvanceUs(TimeUs delta_us) { now_us_.fetch_add(delta_us, std::memory_order_acq_rel); }

 private:
  std::atomic<TimeUs> now_us_;
};

}  // namespace deepcut
