// Refused requests, visible at the default log level without flooding it.
//
// The first refusal of each kind is logged at warn at once, with the peer and
// the reason; later ones of that kind at most once per `period_s`, as a count
// with the latest reason. Flush() (called from the server's periodic tick) logs
// what is pending once the period is over, so a burst that stops is still told.
// Kinds are few and fixed by the caller ("malformed", "multipart", ...), so the
// memory is bounded whatever the peers send.
//
// Thread-safety: all methods may be called from any thread.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include "core/clock.h"

namespace deepcut::cloud {

class RefusalLog {
 public:
  RefusalLog(const Clock& clock, double period_s) : clock_(clock), period_s_(period_s) {}

  void Note(const std::string& kind, const std::string& peer, const std::string& reason);
  void Flush();
  std::int64_t total(const std::string& kind) const;

 private:
  struct Kind {
    bool logged = false;
    TimeUs logged_us = 0;
    std::int64_t since_logged = 0;  // refusals not yet in a log line
    std::int64_t total = 0;
    std::string last_peer, last_reason;
  };
  void LogPending(const std::string& kind, Kind& k, TimeUs now);  // mutex_ held

  const Clock& clock_;
  const double period_s_;
  mutable std::mutex mutex_;  // guards kinds_
  std::map<std::string, Kind> kinds_;
};

}  // namespace deepcut::cloud
