#include "core/clock.h"

#include <chrono>
#include <thread>

namespace deepcut {

TimeUs RealClock::NowUs() const {
  using namespace std::chrono;
  return duration_cast<microseconds>(steady_clock::now().time_since_epoch()).count();
}

void RealClock::SleepUntilUs(TimeUs t) {
  TimeUs now = NowUs();
  if (t > now) std::this_thread::sleep_for(std::chrono::microseconds(t - now));
}

void VirtualClock::SleepUntilUs(TimeUs t) {
  TimeUs now = now_us_.load(std::memory_order_acquire);
  while (t > now && !now_us_.compare_exchange_weak(now, t, std::memory_order_acq_rel)) {
  }
}

}  // namespace deepcut
