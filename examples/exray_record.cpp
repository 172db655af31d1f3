// Recording the edge's layers through the C++ API (docs/exray.md): the same as
//   deepcut-edge --model models/fmnist --cloud ENDPOINT --exray-out DIR --exray-every 30
// Then: build/exray/deepcut-exray validate --log DIR --reference models/fmnist --out report.json
//
//   build/examples/deepcut_example_exray tcp://127.0.0.1:5555 /tmp/exray-log
#include <cstdio>

#include "edge/edge_app.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s CLOUD_ENDPOINT NEW_LOG_DIR\n", argv[0]);
    return 2;
  }
  deepcut::edge::EdgeAppOptions o;
  o.cloud_endpoint = argv[1];
  o.model_dir = "models/fmnist";
  o.source.spec = "fashion-mnist:test";
  o.stream.max_frames = 300;
  o.exray.dir = argv[2];  // the recording: these two lines
  o.exray.every = 30;
  return deepcut::cli::Finish(deepcut::edge::RunEdgeApp(o, deepcut::cli::StopOnSignals()));
}
