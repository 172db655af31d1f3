// deepcut-trace's three commands (docs/frame-trace.md): make a scene stream
// from a dataset, record any source, inspect a trace file. Its main.cpp only
// declares the flags that fill these options.
//
// Each prints a summary on stdout; failures come back with their exit code: a
// bad option (2), a dataset, source or trace that cannot be read (4), writing
// that failed (5), or an interruption (130). A trace is written to a temporary
// file and renamed at the end, so a failed or interrupted run leaves none.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "cli/cli.h"
#include "trace/fashion_mnist.h"
#include "trace/frame_source.h"
#include "trace/scene_maker.h"

namespace deepcut::trace {

struct MakeOptions {
  std::string dataset = "fashion-mnist";
  std::string split = "test";
  std::string fashion_mnist_dir = kDefaultFashionMnistDir;
  std::string out;
  SceneOptions scene;
};

struct RecordOptions {
  SourceOptions source;
  std::string out;
  std::int64_t frames = -1;  // -1: the whole source (required for live sources)
  double fps = 10.0;         // capture time k / fps for file sources
  bool fps_given = false;    // else a video's own frame rate, when it has one
};

struct InspectOptions {
  std::string path;
  bool json = false;
};

cli::Outcome MakeTrace(const MakeOptions& options, const std::atomic<bool>& stop);
cli::Outcome RecordTrace(const RecordOptions& options, const std::atomic<bool>& stop);
cli::Outcome InspectTraceFile(const InspectOptions& options);

}  // namespace deepcut::trace
