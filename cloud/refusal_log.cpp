#include "cloud/refusal_log.h"

#include <spdlog/spdlog.h>

namespace deepcut::cloud {

void RefusalLog::Note(const std::string& kind, const std::string& peer, const std::string& reason) {
  std::lock_guard<std::mutex> lock(mutex_);
  Kind& k = kinds_[kind];
  k.total++;
  k.since_logged++;
  k.last_peer = peer;
  k.last_reason = reason;
  const TimeUs now = clock_.NowUs();
  if (!k.logged) {
    spdlog::warn("refused a request ({}) from {}: {}", kind, peer, reason);
    k.logged = true;
    k.logged_us = now;
    k.since_logged = 0;
    return;
  }
  if (now - k.logged_us >= static_cast<TimeUs>(period_s_ * 1e6)) LogPending(kind, k, now);
}

void RefusalLog::Flush() {
  std::lock_guard<std::mutex> lock(mutex_);
  const TimeUs now = clock_.NowUs();
  for (auto& [kind, k] : kinds_)
    if (k.since_logged > 0 && now - k.logged_us >= static_cast<TimeUs>(period_s_ * 1e6))
      LogPending(kind, k, now);
}

std::int64_t RefusalLog::total(const std::string& kind) const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = kinds_.find(kind);
  return it == kinds_.end() ? 0 : it->second.total;
}

void RefusalLog::LogPending(const std::string& kind, Kind& k, TimeUs now) {
  spdlog::warn("refused {} more request(s) ({}) in the last {:.0f} s; latest from {}: {}",
               k.since_logged, kind, (now - k.logged_us) / 1e6, k.last_peer, k.last_reason);
  k.logged_us = now;
  k.since_logged = 0;
}

}  // namespace deepcut::cloud
