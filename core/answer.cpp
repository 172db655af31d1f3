#include "core/answer.h"

namespace deepcut {

const char* RouteName(Route route) {
  switch (route) {
    case Route::kLocal:
      return "local";
    case Route::kReuse:
      return "reuse";
    case Route::kCloud:
      return "cloud";
  }
  return "unknown";
}

const char* ReasonName(Reason reason) {
  switch (reason) {
    case Reason::kPolicy:
      return "policy";
    case Reason::kDeadlineMissed:
      return "deadline-missed";
    case Reason::kCloudUnavailable:
      return "cloud-unavailable";
    case Reason::kCloudError:
      return "cloud-error";
    case Reason::kCloudBusy:
      return "cloud-busy";
    case Reason::kWindowFull:
      return "window-full";
  }
  return "unknown";
}

}  // namespace deepcut
