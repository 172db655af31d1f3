// deepcut-trace: makes, records and inspects frame traces (docs/frame-trace.md).
//
//   deepcut-trace make --frames 3000 --fps 10 --seed 1 --out scenes.dcft
//   deepcut-trace record --source video:clip.avi --frames 600 --out clip.dcft
//   deepcut-trace inspect scenes.dcft [--json]
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <opencv2/videoio.hpp>

#include "cli/cli.h"
#include "core/clock.h"
#include "trace/fashion_mnist.h"
#include "trace/frame_source.h"
#include "trace/frame_trace.h"
#include "trace/scene_maker.h"
#include "trace/trace_stats.h"

namespace {

using namespace deepcut;

std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop = true; }

using cli::kExitBadInput;  // dataset, source or trace unreadable or malformed
using cli::kExitBadOption;
using cli::kExitFailed;  // writing the trace failed
using cli::kExitInterrupted;

struct MakeOptions {
  std::string dataset = "fashion-mnist";
  std::string split = "test";
  std::string fashion_mnist_dir = trace::kDefaultFashionMnistDir;
  std::string out;
  trace::SceneOptions scene;
};

struct RecordOptions {
  trace::SourceOptions source;
  std::string out;
  std::int64_t frames = -1;  // -1: the whole source (required for live sources)
  double fps = 10.0;         // capture time k / fps for file sources
  bool fps_given = false;    // else a video's own frame rate, when it has one
};

struct InspectOptions {
  std::string path;
  bool json = false;
};

// A counter line on stderr, redrawn at most 5 times a second, when it is a terminal.
class Progress {
 public:
  explicit Progress(std::string what) : what_(std::move(what)), on_(::isatty(STDERR_FILENO)) {}
  ~Progress() { Done(); }
  void Update(std::int64_t done, std::int64_t total) {
    if (!on_) return;
    const auto now = std::chrono::steady_clock::now();
    if (done != total && now - last_ < std::chrono::milliseconds(200)) return;
    last_ = now;
    if (total > 0)
      std::fprintf(stderr, "\r%s %lld / %lld frames", what_.c_str(), static_cast<long long>(done),
                   static_cast<long long>(total));
    else
      std::fprintf(stderr, "\r%s %lld frames", what_.c_str(), static_cast<long long>(done));
    drawn_ = true;
  }
  void Done() {
    if (drawn_) std::fprintf(stderr, "\n");
    drawn_ = false;
  }

 private:
  std::string what_;
  bool on_, drawn_ = false;
  std::chrono::steady_clock::time_point last_{};
};

std::string Summary(const trace::FrameTraceWriter& w, double fps) {
  char text[256];
  const double seconds = fps > 0 ? static_cast<double>(w.frames()) / fps : 0.0;
  std::snprintf(text, sizeof(text),
                "wrote %s: %lld frames, %.1f s at %.3g fps, %.1f kB (%.0f B/frame)",
                w.path().c_str(), static_cast<long long>(w.frames()), seconds, fps,
                static_cast<double>(w.bytes_written()) / 1000.0,
                w.frames() > 0 ? static_cast<double>(w.bytes_written()) / w.frames() : 0.0);
  return text;
}

int Make(const MakeOptions& o) {
  auto items = trace::LoadFashionMnist(o.fashion_mnist_dir, o.split);
  if (!items.ok()) {
    spdlog::error("{}", items.status().message());
    return kExitBadInput;
  }
  const std::int64_t item_count = items->count();
  auto maker = trace::SceneMaker::Create(std::move(*items), o.scene);
  if (!maker.ok()) {
    spdlog::error("{}", maker.status().message());
    return kExitBadOption;
  }
  trace::FrameTraceHeader header;
  header.fps = o.scene.fps;
  header.source = "scene:" + o.dataset + ":" + o.split;
  header.seed = static_cast<std::int64_t>(o.scene.seed & 0x7fffffffffffffffull);
  header.scene_starts_marked = true;
  header.classes = (*maker)->items().classes;
  header.params = (*maker)->Params();
  header.params["dataset"] = o.dataset;
  header.params["split"] = o.split;
  header.params["items"] = item_count;
  auto writer = trace::FrameTraceWriter::Create(o.out, header);
  if (!writer.ok()) {
    spdlog::error("--out: {}", writer.status().message());
    return kExitFailed;
  }
  Progress progress("make");
  std::int64_t scenes = 0;
  while (auto frame = (*maker)->Next()) {
    if (g_stop) {
      progress.Done();
      spdlog::error("interrupted; {} not written", o.out);
      return kExitInterrupted;
    }
    Status s = (*writer)->Append(frame->image, frame->capture_us, frame->label, frame->scene_start);
    if (!s.ok()) {
      progress.Done();
      spdlog::error("{}", s.message());
      return kExitFailed;
    }
    scenes += frame->scene_start ? 1 : 0;
    progress.Update(frame->index + 1, o.scene.frames);
  }
  if (Status s = (*writer)->Finish(); !s.ok()) {
    spdlog::error("{}", s.message());
    return kExitFailed;
  }
  progress.Done();
  std::printf(
      "%s\n  %lld items in view, %.1f frames each on average (seed %llu)\n",
      Summary(**writer, o.scene.fps).c_str(), static_cast<long long>(scenes),
      static_cast<double>(o.scene.frames) / static_cast<double>(std::max<std::int64_t>(1, scenes)),
      static_cast<unsigned long long>(o.scene.seed));
  return 0;
}

int Record(const RecordOptions& o) {
  auto source = trace::OpenSource(o.source);
  if (!source.ok()) {
    spdlog::error("--source: {}", source.status().message());
    return kExitBadInput;
  }
  const bool live = (*source)->IsLive();
  if (live && o.frames < 0) {
    spdlog::error("--frames: a live source ({}) needs a frame count", o.source.spec);
    return kExitBadOption;
  }
  trace::FrameTraceHeader header;
  header.source = o.source.spec;
  header.fps = live ? 0.0 : o.fps;
  if (!o.fps_given && o.source.spec.starts_with("video:")) {
    cv::VideoCapture video(o.source.spec.substr(6));
    const double video_fps = video.isOpened() ? video.get(cv::CAP_PROP_FPS) : 0.0;
    if (std::isfinite(video_fps) && video_fps > 0 && video_fps <= 1e6) header.fps = video_fps;
  }
  if (o.source.spec.starts_with("fashion-mnist:")) header.classes = trace::FashionMnistClasses();
  if (o.source.spec.starts_with("trace:")) {
    // A copy of a trace keeps its class names and nominal rate.
    if (auto original = trace::FrameTraceReader::Open(o.source.spec.substr(6)); original.ok()) {
      header.classes = (*original)->header().classes;
      if ((*original)->header().fps > 0) header.fps = (*original)->header().fps;
    }
  }
  auto writer = trace::FrameTraceWriter::Create(o.out, header);
  if (!writer.ok()) {
    spdlog::error("--out: {}", writer.status().message());
    return kExitFailed;
  }
  RealClock clock;
  std::int64_t expected = (*source)->Remaining();
  if (o.frames >= 0 && (expected < 0 || expected > o.frames)) expected = o.frames;
  Progress progress("record");
  TimeUs start_us = -1, last_us = 0;
  std::int64_t written = 0, skipped = 0, failures_in_a_row = 0;
  while (o.frames < 0 || written < o.frames) {
    if (g_stop) {
      progress.Done();
      spdlog::error("interrupted; {} not written", o.out);
      return kExitInterrupted;
    }
    auto next = (*source)->Next();
    if (!next.ok()) {
      // As the edge does: skip an unreadable item, give up on a source that keeps failing.
      spdlog::warn("skipping unreadable source item: {}", next.status().message());
      ++skipped;
      if (++failures_in_a_row >= 100) {
        progress.Done();
        spdlog::error("--source: failed 100 times in a row; {} not written", o.out);
        return kExitBadInput;
      }
      continue;
    }
    failures_in_a_row = 0;
    if (!next->has_value()) break;
    const trace::SourceFrame& f = **next;
    const TimeUs now_us = clock.NowUs();
    if (start_us < 0) start_us = now_us;
    TimeUs capture_us;
    if (f.capture_offset_us >= 0)
      capture_us = f.capture_offset_us;
    else if (live)
      capture_us = now_us - start_us;
    else
      capture_us = std::llround(static_cast<double>(written) * 1e6 / header.fps);
    capture_us = std::max(capture_us, last_us);
    Status s = (*writer)->Append(f.image, capture_us, f.label);
    if (!s.ok()) {
      progress.Done();
      spdlog::error("{}", s.message());
      return kExitFailed;
    }
    last_us = capture_us;
    ++written;
    progress.Update(written, expected);
  }
  double fps = header.fps;
  if (live && written > 1 && last_us > 0)
    fps = static_cast<double>(written - 1) * 1e6 / static_cast<double>(last_us);
  (*writer)->set_fps(fps);
  if (Status s = (*writer)->Finish(); !s.ok()) {
    spdlog::error("{}", s.message());
    return kExitFailed;
  }
  progress.Done();
  std::printf("%s\n  from %s", Summary(**writer, fps).c_str(), o.source.spec.c_str());
  if (skipped > 0) std::printf(", %lld unreadable items skipped", static_cast<long long>(skipped));
  std::printf("\n");
  return 0;
}

int Inspect(const InspectOptions& o) {
  Progress progress("inspect");
  auto stats = trace::InspectTrace(
      o.path, [&](std::int64_t done, std::int64_t total) { progress.Update(done, total); });
  progress.Done();
  if (!stats.ok()) {
    spdlog::error("{}", stats.status().message());
    return kExitBadInput;
  }
  if (o.json)
    std::cout << stats->ToJson().dump(2) << "\n";
  else
    std::cout << stats->ToText();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"DeepCut frame traces: make scene streams, record sources, inspect trace files"};
  app.require_subcommand(1);
  std::string log_level = "info";
  cli::AddLogLevel(app, log_level);

  MakeOptions make;
  auto* make_cmd = app.add_subcommand(
      "make", "a scene stream from a dataset: items that stay in view for a while, then change");
  make_cmd->add_option("--dataset", make.dataset, "image set")
      ->capture_default_str()
      ->check(CLI::IsMember({"fashion-mnist"}));
  make_cmd->add_option("--split", make.split, "test|train")
      ->capture_default_str()
      ->check(CLI::IsMember({"test", "train"}));
  make_cmd
      ->add_option("--fashion-mnist-dir", make.fashion_mnist_dir,
                   "where the Fashion-MNIST IDX files are")
      ->capture_default_str();
  make_cmd->add_option("--frames", make.scene.frames, "frames to make")
      ->capture_default_str()
      ->check(cli::Between(std::int64_t{1}, std::int64_t{100000000}));
  make_cmd->add_option("--fps", make.scene.fps, "frame rate; frame k is captured at k / fps s")
      ->capture_default_str()
      ->check(cli::Between(1e-3, 1e6));
  make_cmd->add_option("--seed", make.scene.seed, "random seed")->capture_default_str();
  make_cmd
      ->add_option("--mean-dwell-s", make.scene.mean_dwell_s,
                   "mean time an item stays in view (exponential), seconds")
      ->capture_default_str()
      ->check(cli::Between(1e-6, 1e6));
  make_cmd
      ->add_option("--max-shift-px", make.scene.max_shift_px,
                   "the item wanders within +-this many pixels")
      ->capture_default_str()
      ->check(cli::Between(0, 64));
  make_cmd->add_option("--noise-sigma", make.scene.noise_sigma, "pixel noise, grey levels")
      ->capture_default_str()
      ->check(cli::Between(0.0, 128.0));
  make_cmd->add_option("--out", make.out, "trace file to write")
      ->required()
      ->check(cli::OutputFile());

  RecordOptions record;
  auto* record_cmd = app.add_subcommand("record", "a trace of any edge source");
  record_cmd
      ->add_option("--source", record.source.spec,
                   "fashion-mnist:test|train, images:DIR, video:PATH, camera:N or trace:FILE")
      ->required();
  record_cmd
      ->add_option("--fashion-mnist-dir", record.source.fashion_mnist_dir,
                   "where the Fashion-MNIST IDX files are")
      ->capture_default_str();
  record_cmd->add_option("--frames", record.frames, "frames to record (-1: the whole source)")
      ->capture_default_str()
      ->check(cli::Between(std::int64_t{-1}, std::int64_t{100000000}));
  auto* record_fps =
      record_cmd
          ->add_option("--fps", record.fps,
                       "file sources: frame k is captured at k / fps s (default: a video's own "
                       "rate; live sources keep their real capture times)")
          ->capture_default_str()
          ->check(cli::Between(1e-3, 1e6));
  record_cmd->add_option("--out", record.out, "trace file to write")
      ->required()
      ->check(cli::OutputFile());

  InspectOptions inspect;
  auto* inspect_cmd = app.add_subcommand("inspect", "check a trace file and print what it holds");
  inspect_cmd->add_option("file", inspect.path, "trace file")->required();
  inspect_cmd->add_flag("--json", inspect.json, "print JSON instead of text");

  app.footer(
      "Exit codes: 0 ok, 2 bad option, 4 bad dataset, source or trace, 5 writing failed, 130 "
      "interrupted.");
  if (int code = cli::Parse(app, argc, argv); code >= 0) return code;
  spdlog::set_default_logger(spdlog::stderr_color_st("trace"));
  cli::SetUpLogging("trace", log_level);
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);

  if (make_cmd->parsed()) return Make(make);
  record.fps_given = record_fps->count() > 0;
  if (record_cmd->parsed()) return Record(record);
  return Inspect(inspect);
}
