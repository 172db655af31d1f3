// One frame through an edge runtime built from the installed DeepCut: a
// package loaded, the edge-only policy, a ZeroMQ link (never used), one answer.
//   consumer MODEL_DIR
#include <cstdio>

#include <opencv2/core.hpp>

#include "core/clock.h"
#include "edge/edge_runtime.h"
#include "scheduler/policy.h"
#include "splitnet/manifest.h"
#include "splitnet/split_model.h"
#include "transport/zmq_link.h"

int main(int argc, char** argv) {
  using namespace deepcut;
  if (argc != 2) {
    std::fprintf(stderr, "usage: consumer MODEL_DIR\n");
    return 2;
  }
  auto manifest = splitnet::LoadManifest(argv[1]);
  if (!manifest.ok()) return std::fprintf(stderr, "%s\n", manifest.status().message().c_str()), 1;
  auto model = splitnet::SplitModel::Load(*manifest, {.tail = false});
  auto policy = scheduler::MakePolicy({.name = "edge-only"});
  VirtualClock clock(0);
  auto link = transport::ZmqLink::Create({.endpoint = "tcp://127.0.0.1:1"}, clock);
  if (!model.ok() || !policy.ok() || !link.ok()) return 1;
  int answers = 0, class_id = -1;
  auto runtime =
      edge::EdgeRuntime::Create({}, **model, **policy, **link, clock, [&](const Answer& a) {
        ++answers;
        class_id = a.class_id;
      });
  if (!runtime.ok()) return 1;
  trace::SourceFrame frame;
  frame.index = 0;
  frame.image = cv::Mat(28, 28, CV_8UC1, cv::Scalar(90));
  if (!(*runtime)->ProcessFrame(frame, 0).ok()) return 1;
  (*runtime)->Drain();
  std::printf("consumer: %d answer, class %d (%s)\n", answers, class_id,
              class_id >= 0 ? manifest->classes[class_id].c_str() : "?");
  return answers == 1 && class_id >= 0 ? 0 : 1;
}
