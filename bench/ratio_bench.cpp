// The three ratios of the benchmark suite, each measured side by side in one
// run (so machine noise hits both sides alike), printed as one JSON object:
//
//   edge_overhead     CPU time per frame of the whole edge pipeline (source,
//                     preprocess, head, exit, policy, codec, msgpack, ZeroMQ,
//                     reply handling, records) minus head+exit inference, divided
//                     by head+exit inference. Process CPU time, so ZeroMQ's I/O
//                     thread counts; the cloud is another process.
//   cloud_efficiency  frames/s a running deepcut-cloud serves to several
//                     loopback edges, divided by frames/s of bare tail inference
//                     on the same number of threads at the same batch size.
//   metrics_overhead  frames/s of a cloud serving --metrics-listen while scraped
//                     10 times a second, divided by its frames/s unscraped, in
//                     alternating slices under the same load.
//   loopback_rtt      p50/p99 of send -> reply for one request at a time, minus
//                     the cloud's own decode+tail time, beside a bare ZeroMQ
//                     DEALER/ROUTER echo of the same bytes.
//
// Usage: deepcut_ratio_bench --cloud-bin PATH --model DIR [--frames N] [--rounds R]
#include <arpa/inet.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>
#include <zmq.hpp>

#include "core/run_summary.h"
#include "edge/answer_log.h"
#include "edge/edge_runtime.h"
#include "edge/stream_driver.h"
#include "harvest/harvester.h"
#include "splitnet/feature_codec.h"
#include "splitnet/split_model.h"
#include "transport/protocol.h"
#include "transport/zmq_link.h"

namespace {

using namespace deepcut;
using nlohmann::json;

double ProcessCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}
double WallSeconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
// The one percentile definition (core/run_summary.h).
double Percentile(std::vector<double> v, double p) {
  return NearestRankPercentile(std::move(v), p);
}
void Log(const char* fmt, const std::string& s) {
  std::fprintf(stderr, fmt, s.c_str());
  std::fflush(stderr);
}

// A deepcut-cloud child process on a free loopback port.
class CloudProcess {
 public:
  CloudProcess(const std::string& bin, const std::string& model, int threads, int max_batch,
               std::vector<std::string> extra = {}) {
    ready_ = std::filesystem::temp_directory_path() / ("deepcut-bench-" + std::to_string(getpid()));
    std::filesystem::remove(ready_);
    pid_ = fork();
    if (pid_ == 0) {
      // The cloud's output goes nowhere: the bench's stdout is its report. (On
      // this sandbox a process whose stdout and stderr are both regular files
      // also runs its tail ~35% slower, for reasons outside DeepCut:
      // docs/benchmarks.md.)
      const int null_fd = ::open("/dev/null", O_WRONLY);
      if (null_fd >= 0) {
        ::dup2(null_fd, STDOUT_FILENO);
        ::dup2(null_fd, STDERR_FILENO);
        ::close(null_fd);
      }
      std::vector<std::string> args{bin,
                                    "--listen",
                                    "tcp://127.0.0.1:*",
                                    "--model",
                                    model,
                                    "--threads",
                                    std::to_string(threads),
                                    "--max-batch",
                                    std::to_string(max_batch),
                                    "--max-queue",
                                    "100000",
                                    "--stats-interval-s",
                                    "0",
                                    "--log-level",
                                    "warn",
                                    "--ready-file",
                                    ready_.string()};
      args.insert(args.end(), extra.begin(), extra.end());
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(bin.c_str(), argv.data());
      _exit(127);
    }
    for (int i = 0; i < 600 && endpoint_.empty(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      std::ifstream in(ready_);
      std::getline(in, endpoint_);
      std::getline(in, second_line_);  // with --metrics-listen: http://HOST:PORT
    }
    if (endpoint_.empty()) {
      std::fprintf(stderr, "bench: the cloud did not start\n");
      std::exit(1);
    }
  }
  ~CloudProcess() {
    kill(pid_, SIGTERM);
    waitpid(pid_, nullptr, 0);
    std::filesystem::remove(ready_);
  }
  const std::string& endpoint() const { return endpoint_; }
  const std::string& second_line() const { return second_line_; }
  // User+system CPU seconds the cloud process has used so far (/proc/PID/stat).
  double CpuSeconds() const {
    std::ifstream in("/proc/" + std::to_string(pid_) + "/stat");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::istringstream fields(text.substr(text.rfind(')') + 2));
    std::string field;
    double utime = 0, stime = 0;
    for (int i = 3; i <= 15 && fields >> field; ++i) {
      if (i == 14) utime = std::stod(field);
      if (i == 15) stime = std::stod(field);
    }
    return (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
  }

 private:
  pid_t pid_ = -1;
  std::filesystem::path ready_;
  std::string endpoint_, second_line_;
};

// Frames kept in memory, so reading them costs the same in every round; a
// slice [begin, end) of them, renumbered from `first_id`.
class MemorySource final : public trace::FrameSource {
 public:
  MemorySource(const std::vector<trace::SourceFrame>* frames, size_t begin = 0,
               size_t end = SIZE_MAX, std::int64_t first_id = -1)
      : frames_(frames), next_(begin), end_(std::min(end, frames->size())), id_(first_id) {}
  Result<std::optional<trace::SourceFrame>> Next() override {
    if (next_ >= end_) return std::optional<trace::SourceFrame>();
    trace::SourceFrame f = (*frames_)[next_++];  // a source hands out a copy too
    if (id_ >= 0) f.index = id_++;
    return std::optional<trace::SourceFrame>(std::move(f));
  }
  std::int64_t Remaining() const override { return static_cast<std::int64_t>(end_ - next_); }

 private:
  const std::vector<trace::SourceFrame>* frames_;
  size_t next_, end_;
  std::int64_t id_;
};

// A bare ZeroMQ ROUTER in a child process that sends each message back, after
// spinning for `busy_us` (0: at once): the same sockets and bytes as the cloud
// without DeepCut's code. With `answer`, it sends an ok reply to the request
// instead (its seq, class 0): a cloud that costs nothing, for measuring the
// edge alone. Spinning for the tail's time puts the same stretch
// of compute between receive and send, so that the wake-up costs after it
// (idle cores, cold caches) fall on both sides and the ratio sees only the
// runtime's own work.
class EchoProcess {
 public:
  explicit EchoProcess(double busy_us, bool answer = false) {
    const auto ready =
        std::filesystem::temp_directory_path() / ("deepcut-echo-" + std::to_string(::getpid()) +
                                                  "-" + std::to_string(static_cast<long>(busy_us)));
    std::filesystem::remove(ready);
    pid_ = fork();
    if (pid_ == 0) {
      zmq::context_t c(1);
      zmq::socket_t router(c, zmq::socket_type::router);
      router.bind("tcp://127.0.0.1:*");
      std::ofstream(ready) << router.get(zmq::sockopt::last_endpoint);
      for (;;) {
        zmq::message_t id, body;
        if (!router.recv(id) || !router.recv(body)) _exit(0);
        const double until = WallSeconds() + busy_us / 1e6;
        while (WallSeconds() < until) {
        }
        router.send(id, zmq::send_flags::sndmore);
        if (!answer) {
          router.send(body, zmq::send_flags::none);
          continue;
        }
        transport::Reply reply;
        reply.seq = transport::PeekRequestSeq(std::span(body.data<std::uint8_t>(), body.size()))
                        .value_or(0);
        reply.class_id = 0;
        reply.top = {{0, 1.0f}};
        router.send(zmq::buffer(transport::EncodeReply(reply)), zmq::send_flags::none);
      }
    }
    for (int i = 0; i < 400 && endpoint_.empty(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
      std::ifstream in(ready);
      std::getline(in, endpoint_);
    }
    std::filesystem::remove(ready);
  }
  ~EchoProcess() {
    kill(pid_, SIGTERM);
    waitpid(pid_, nullptr, 0);
  }
  const std::string& endpoint() const { return endpoint_; }

 private:
  pid_t pid_ = -1;
  std::string endpoint_;
};

json EdgeOverhead(const splitnet::Manifest& m, const std::vector<trace::SourceFrame>& frames,
                  const std::string& endpoint, int rounds, const std::string& policy_name) {
  auto model = std::move(splitnet::SplitModel::Load(m, {.tail = false})).value();
  auto policy = std::move(scheduler::MakePolicy({.name = policy_name})).value();
  RealClock clock;
  auto link = std::move(transport::ZmqLink::Create({.endpoint = endpoint}, clock)).value();
  auto log =
      std::move(edge::AnswerLog::Create(
                    {.jsonl_path = std::filesystem::temp_directory_path() / "deepcut-bench.jsonl"},
                    m.classes))
          .value();
  auto runtime =
      std::move(edge::EdgeRuntime::Create({.deadline_ms = 5000}, *model, *policy, *link, clock,
                                          [&](const Answer& a) { log->Record(a); }))
          .value();
  // Small chunks, alternating inference-only and whole pipeline on the same
  // frames, so a neighbour's load on this shared machine hits both sides alike.
  const size_t chunk = 50;
  double inference = 0, pipeline = 0, bare = 0;
  std::vector<double> chunk_ratios, bare_ratios;  // per chunk pair: robust to a neighbour's burst
  // ZeroMQ alone, in the edge's pattern: a DEALER sending one request per frame
  // to the same peer and taking the replies without waiting. Its cost is the
  // floor the runtime stands on: the I/O thread's hand-offs per message.
  zmq::context_t bare_context(1);
  zmq::socket_t bare_dealer(bare_context, zmq::socket_type::dealer);
  bare_dealer.set(zmq::sockopt::linger, 0);
  bare_dealer.connect(endpoint);
  const auto bare_request = transport::EncodeRequest(edge::OffloadRequest(
      m, m.default_rate_index,
      *splitnet::FeatureCodec().Encode(std::vector<float>(m.bottleneck.Elements(), 0.5f),
                                       m.bottleneck, m.rates[m.default_rate_index]),
      5000));
  std::int64_t id = 0;
  for (int r = 0; r < rounds; ++r) {
    for (size_t begin = 0; begin < frames.size(); begin += chunk) {
      const size_t end = std::min(frames.size(), begin + chunk);
      double t0 = ProcessCpuSeconds();
      for (size_t i = begin; i < end; ++i) {
        auto in = model->Preprocess(frames[i].image);
        auto z = model->RunHead(*in);
        if (!model->RunExit(*z).ok()) std::exit(1);
      }
      const double chunk_inference = ProcessCpuSeconds() - t0;
      inference += chunk_inference;
      // The whole pipeline: the run loop deepcut-edge runs, as fast as it goes.
      MemorySource slice(&frames, begin, end, id);
      t0 = ProcessCpuSeconds();
      if (!edge::RunStream(slice, *runtime, clock, {}, nullptr).ok()) std::exit(1);
      const double chunk_pipeline = ProcessCpuSeconds() - t0;
      pipeline += chunk_pipeline;
      chunk_ratios.push_back((chunk_pipeline - chunk_inference) / chunk_inference);
      if (policy_name != "never") {
        t0 = ProcessCpuSeconds();
        for (size_t i = begin; i < end; ++i) {
          bare_dealer.send(zmq::buffer(bare_request), zmq::send_flags::none);
          auto in = model->Preprocess(frames[i].image);
          auto z = model->RunHead(*in);
          if (!model->RunExit(*z).ok()) std::exit(1);
          zmq::message_t reply;
          while (bare_dealer.recv(reply, zmq::recv_flags::dontwait)) {
          }
        }
        zmq::message_t reply;
        while (bare_dealer.recv(reply, zmq::recv_flags::dontwait)) {
        }
        const double chunk_bare = ProcessCpuSeconds() - t0;
        bare += chunk_bare;
        bare_ratios.push_back((chunk_bare - chunk_inference) / chunk_inference);
      }
      id += static_cast<std::int64_t>(end - begin);
    }
    Log("bench: edge overhead round %s done\n", std::to_string(r + 1));
  }
  (void)log->Finish(log->Summary(id, 1, {}));
  const double n = static_cast<double>(frames.size()) * rounds;
  // The median over chunk pairs: one slow chunk on a shared machine (a
  // neighbour's burst, a page-cache flush) moves a sum but not the median.
  std::sort(chunk_ratios.begin(), chunk_ratios.end());
  std::sort(bare_ratios.begin(), bare_ratios.end());
  const double ratio = chunk_ratios[chunk_ratios.size() / 2];
  const double floor = bare_ratios.empty() ? 0.0 : bare_ratios[bare_ratios.size() / 2];
  return {{"inference_us_per_frame", 1e6 * inference / n},
          {"pipeline_us_per_frame", 1e6 * pipeline / n},
          {"ratio", ratio},
          {"ratio_of_totals", (pipeline - inference) / inference},
          {"chunk_pairs", chunk_ratios.size()},
          {"goal", "<= 0.05"},
          // What a bare DEALER costs in the same pattern, and the runtime beyond it.
          {"zeromq_floor_ratio", floor},
          {"zeromq_floor_us_per_frame", bare_ratios.empty() ? 0.0 : 1e6 * (bare - inference) / n},
          {"runtime_beyond_zeromq_ratio", ratio - floor},
          {"frames", frames.size()},
          {"chunk", chunk},
          {"policy", policy_name},
          {"rounds", rounds}};
}

// An add-on of the edge (recording, harvesting) against none: two runtimes on
// the same frames, chunk by chunk in turn. The ratio is the edge's own
// per-frame time (the run loop's wall time, the add-on's thread working beside
// it as in deployment); the CPU ratio counts every thread: after an add-on
// chunk, `flush` waits for its thread before the CPU clock stops.
struct AddOnRun {
  std::vector<double> wall_ratios, cpu_ratios;
  double wall[2] = {0, 0}, cpu[2] = {0, 0};
};
// An edge runtime offloading every frame to `endpoint`, with what it borrows.
struct BenchEdge {
  BenchEdge(const splitnet::Manifest& m, const std::string& endpoint, Clock& clock)
      : model(std::move(splitnet::SplitModel::Load(m, {.tail = false})).value()),
        policy(std::move(scheduler::MakePolicy({.name = "always"})).value()),
        link(std::move(transport::ZmqLink::Create({.endpoint = endpoint}, clock)).value()),
        runtime(std::move(edge::EdgeRuntime::Create({.deadline_ms = 5000}, *model, *policy, *link,
                                                    clock, [](const Answer&) {}))
                    .value()) {}
  std::unique_ptr<splitnet::SplitModel> model;
  std::unique_ptr<scheduler::OffloadPolicy> policy;
  std::unique_ptr<transport::ZmqLink> link;
  std::unique_ptr<edge::EdgeRuntime> runtime;
};
AddOnRun AddOnOverhead(const splitnet::Manifest& m, const std::vector<trace::SourceFrame>& frames,
                       const std::string& endpoint, int rounds, size_t chunk, const char* what,
                       const std::function<void(edge::EdgeRuntime&)>& attach,
                       const std::function<void()>& flush) {
  RealClock clock;
  BenchEdge sides[2] = {BenchEdge(m, endpoint, clock), BenchEdge(m, endpoint, clock)};
  attach(*sides[1].runtime);
  AddOnRun out;
  std::int64_t id = 0;
  for (int r = 0; r < rounds; ++r) {
    for (size_t begin = 0; begin < frames.size(); begin += chunk) {
      const size_t end = std::min(frames.size(), begin + chunk);
      double c[2], w[2];
      for (int k = 0; k < 2; ++k) {
        MemorySource slice(&frames, begin, end, id);
        const double c0 = ProcessCpuSeconds(), w0 = WallSeconds();
        if (!edge::RunStream(slice, *sides[k].runtime, clock, {}, nullptr).ok()) std::exit(1);
        w[k] = WallSeconds() - w0;
        // The add-on's work goes into this side's CPU time, not into the next chunk.
        if (k == 1) flush();
        c[k] = ProcessCpuSeconds() - c0;
        out.cpu[k] += c[k];
        out.wall[k] += w[k];
      }
      out.cpu_ratios.push_back((c[1] - c[0]) / c[0]);
      out.wall_ratios.push_back((w[1] - w[0]) / w[0]);
      id += static_cast<std::int64_t>(end - begin);
    }
    Log("bench: %s overhead round done\n", std::string(what) + " " + std::to_string(r + 1));
  }
  std::sort(out.cpu_ratios.begin(), out.cpu_ratios.end());
  std::sort(out.wall_ratios.begin(), out.wall_ratios.end());
  return out;
}

json AddOnJson(const AddOnRun& a, std::size_t frames, int rounds, const char* goal,
               const char* with) {
  const double n = static_cast<double>(frames) * rounds;
  return {{"ratio", a.wall_ratios[a.wall_ratios.size() / 2]},
          {"cpu_ratio", a.cpu_ratios[a.cpu_ratios.size() / 2]},
          {"goal", goal},
          {"plain_us_per_frame", 1e6 * a.wall[0] / n},
          {std::string(with) + "_us_per_frame", 1e6 * a.wall[1] / n},
          {"plain_cpu_us_per_frame", 1e6 * a.cpu[0] / n},
          {std::string(with) + "_cpu_us_per_frame", 1e6 * a.cpu[1] / n},
          {"chunk_pairs", a.wall_ratios.size()},
          {"frames", frames},
          {"rounds", rounds}};
}

// Recording (ML-EXray) every `every`-th frame against not recording.
json ExrayOverhead(const splitnet::Manifest& m, const std::vector<trace::SourceFrame>& frames,
                   const std::string& endpoint, int rounds, int every) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("deepcut-bench-exray-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  auto recorder =
      std::move(edge::ExrayRecorder::Create({.dir = dir.string(), .every = every}, m)).value();
  const auto run = AddOnOverhead(
      m, frames, endpoint, rounds, static_cast<size_t>(every) * 5, "recording",
      [&](edge::EdgeRuntime& r) { r.SetRecorder(recorder.get()); }, [&] { recorder->Flush(); });
  recorder->Close();
  const auto counters = recorder->counters();
  std::filesystem::remove_all(dir);
  json j = AddOnJson(run, frames.size(), rounds, "<= 0.10", "recording");
  j["every"] = every;
  j["records"] = counters.recorded;
  j["records_skipped"] = counters.skipped;
  return j;
}

// Harvesting (the harvest sampler scoring every answered frame, keeping about
// one in `one_in` into a real SQLite store) against none. Upload is off: the
// responder here does not acknowledge, and what an upload costs the edge is a
// Send per chunk while the link is idle.
json HarvestOverhead(const splitnet::Manifest& m, const std::vector<trace::SourceFrame>& frames,
                     const std::string& endpoint, int rounds, int one_in) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("deepcut-bench-harvest-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  // The budget that keeps one frame in `one_in` at this machine's frame rate:
  // a plain run's time per frame first.
  double frame_s;
  {
    RealClock clock;
    BenchEdge plain(m, endpoint, clock);
    MemorySource all(&frames, 0, frames.size(), 0);
    const double w0 = WallSeconds();
    if (!edge::RunStream(all, *plain.runtime, clock, {}, nullptr).ok()) std::exit(1);
    frame_s = (WallSeconds() - w0) / static_cast<double>(frames.size());
  }
  harvest::HarvesterOptions o;
  o.store_path = (dir / "edge.db").string();
  o.upload = false;
  o.sampler.kind = harvest::SamplerKind::kHarvest;
  o.sampler.budget.frames_per_hour = 3600.0 / (frame_s * one_in);
  o.sampler.budget.burst_s = 2.0;
  auto harvester = std::move(harvest::Harvester::Create(o, m)).value();
  const auto run = AddOnOverhead(
      m, frames, endpoint, rounds, static_cast<size_t>(one_in) * 5, "harvest",
      [&](edge::EdgeRuntime& r) { r.SetHarvester(harvester.get()); }, [&] { harvester->Flush(); });
  harvester->Close();
  const auto c = harvester->counters();
  std::filesystem::remove_all(dir);
  json j = AddOnJson(run, frames.size(), rounds, "<= 0.05", "harvesting");
  j["one_in"] = one_in;
  j["offered"] = c.offered;
  j["committed"] = c.committed;
  j["store_errors"] = c.store_errors;
  return j;
}

// Pre-encoded requests for real features at the default rate.
std::vector<std::vector<std::uint8_t>> Requests(const splitnet::Manifest& m,
                                                const std::vector<trace::SourceFrame>& frames,
                                                std::vector<std::vector<float>>* decoded) {
  auto model = std::move(splitnet::SplitModel::Load(m, {.exit = false, .tail = false})).value();
  splitnet::FeatureCodec codec;
  const auto& rate = m.rates[m.default_rate_index];
  std::vector<std::vector<std::uint8_t>> out;
  std::uint64_t seq = 1;
  for (const auto& f : frames) {
    auto z = *model->RunHead(*model->Preprocess(f.image));
    auto e = *codec.Encode(z, m.bottleneck, rate);
    if (decoded) decoded->push_back(*codec.Decode(e.coding, e.payload, m.bottleneck, rate));
    transport::Request r{.seq = static_cast<std::uint16_t>(seq++),
                         .model = transport::ModelTag(m.fingerprint),
                         .rate_index = m.default_rate_index,
                         .deadline_ms = 60000,
                         .coding = static_cast<int>(e.coding),
                         .payload = e.payload};
    out.push_back(transport::EncodeRequest(r));
  }
  return out;
}

// Edges that keep a cloud busy: `edges` DEALERs with `window` requests in
// flight each. Serve() measures one slice: replies answered per second.
struct ServedSlice {
  double seconds = 0, cpu_seconds = 0, replies = 0, batch_sum = 0;
  long batch_n = 0;
};
class LoadGenerator {
 public:
  LoadGenerator(const std::string& endpoint, const std::vector<std::vector<std::uint8_t>>& requests,
                int edges = 4, int window = 16)
      : requests_(requests), window_(window) {
    for (int e = 0; e < edges; ++e) {
      socks_.emplace_back(ctx_, zmq::socket_type::dealer);
      socks_.back().set(zmq::sockopt::linger, 0);
      socks_.back().connect(endpoint);
    }
    for (auto& s : socks_) items_.push_back({static_cast<void*>(s), 0, ZMQ_POLLIN, 0});
  }
  int edges() const { return static_cast<int>(socks_.size()); }
  int window() const { return window_; }
  // One slice of `seconds`; the first replies (0.1 s, the pipeline filling) and
  // those in flight at the end are not counted.
  ServedSlice Serve(const CloudProcess& cloud, double seconds) {
    ServedSlice out;
    int outstanding = 0;
    for (auto& sock : socks_)
      for (int w = 0; w < window_; ++w, ++outstanding) Send(sock);
    double start = 0, cpu_start = 0;
    const double warm_until = WallSeconds() + 0.1;
    bool sending = true;
    while (outstanding > 0) {
      zmq::poll(items_.data(), items_.size(), std::chrono::milliseconds(100));
      for (auto& sock : socks_) {
        zmq::message_t msg;
        while (sock.recv(msg, zmq::recv_flags::dontwait)) {
          --outstanding;
          auto reply = transport::DecodeReply(std::span(msg.data<std::uint8_t>(), msg.size()));
          if (sending && start > 0 && reply.ok() && reply->status == transport::ReplyStatus::kOk) {
            ++out.replies;
            out.batch_sum += reply->batch_size;
            ++out.batch_n;
          }
          if (sending) {
            Send(sock);
            ++outstanding;
          }
        }
      }
      const double now = WallSeconds();
      if (start == 0 && now >= warm_until) {
        start = now;
        cpu_start = cloud.CpuSeconds();
      }
      if (sending && start > 0 && now - start >= seconds) {
        out.seconds = now - start;
        out.cpu_seconds = cloud.CpuSeconds() - cpu_start;
        sending = false;  // drain what is in flight, uncounted
      }
    }
    return out;
  }

 private:
  void Send(zmq::socket_t& sock) {
    sock.send(zmq::buffer(requests_[next_++ % requests_.size()]), zmq::send_flags::none);
  }
  const std::vector<std::vector<std::uint8_t>>& requests_;
  int window_;
  zmq::context_t ctx_{1};
  std::vector<zmq::socket_t> socks_;
  std::vector<zmq::pollitem_t> items_;
  size_t next_ = 0;
};

json CloudEfficiency(const std::string& cloud_bin, const std::string& model_dir,
                     const splitnet::Manifest& m, const std::vector<trace::SourceFrame>& frames,
                     int threads, double seconds, int rounds) {
  std::vector<std::vector<float>> features;
  auto requests = Requests(m, frames, &features);
  double served_time = 0, bare_time = 0, batch_sum = 0;
  double served_cpu = 0, served_frames = 0, bare_cpu = 0, bare_frames = 0;
  long batch_n = 0;
  CloudProcess cloud(cloud_bin, model_dir, threads, 16);
  LoadGenerator load(cloud.endpoint(), requests);
  // The bare side's networks, loaded and warmed once (a load inside a slice
  // would be counted as inference time).
  std::vector<std::unique_ptr<splitnet::SplitModel>> bare_models;
  for (int t = 0; t < threads; ++t) {
    bare_models.push_back(
        std::move(splitnet::SplitModel::Load(m, {.head = false, .exit = false})).value());
    if (!bare_models.back()->RunTail({features[0]}).ok()) std::exit(1);
  }
  // Short alternating slices (served, then bare), so load from neighbours on
  // this shared machine hits both sides alike.
  const int slices = rounds * 4;
  const double slice = seconds / 4;
  for (int r = 0; r < slices; ++r) {
    const ServedSlice served = load.Serve(cloud, slice);
    served_time += served.seconds;
    served_cpu += served.cpu_seconds;
    served_frames += served.replies;
    batch_sum += served.batch_sum;
    batch_n += served.batch_n;
    // Bare tail inference: the same threads, the batch size the cloud used.
    const int batch = std::max(1, static_cast<int>(std::lround(batch_sum / std::max(1L, batch_n))));
    std::atomic<long> done{0};
    std::vector<std::thread> workers;
    const double t0 = WallSeconds(), cpu0 = ProcessCpuSeconds(), until = t0 + slice;
    for (int t = 0; t < threads; ++t) {
      workers.emplace_back([&, t] {
        cv::setNumThreads(1);
        splitnet::SplitModel* model = bare_models[t].get();
        std::vector<std::vector<float>> b;
        size_t i = t * 997;
        while (WallSeconds() < until) {
          b.clear();
          for (int k = 0; k < batch; ++k) b.push_back(features[i++ % features.size()]);
          if (!model->RunTail(b).ok()) std::exit(1);
          done += batch;
        }
      });
    }
    for (auto& w : workers) w.join();
    bare_time += WallSeconds() - t0;
    bare_cpu += ProcessCpuSeconds() - cpu0;
    bare_frames += done;
  }
  Log("bench: cloud efficiency %s\n", "done");
  const double served_fps = served_frames / served_time, bare_fps = bare_frames / bare_time;
  return {{"served_fps", served_fps},
          {"bare_tail_fps", bare_fps},
          {"ratio", served_fps / bare_fps},
          {"goal", ">= 0.9"},
          // Frames per CPU-second of the whole cloud process (socket thread, workers,
          // ZeroMQ I/O) vs of bare tail threads: immune to the load generator
          // sharing the machine's cores with the cloud.
          {"served_frames_per_cpu_second", served_frames / std::max(1e-9, served_cpu)},
          {"bare_frames_per_cpu_second", bare_frames / std::max(1e-9, bare_cpu)},
          {"cpu_ratio",
           (served_frames / std::max(1e-9, served_cpu)) / (bare_frames / std::max(1e-9, bare_cpu))},
          {"threads", threads},
          {"edges", load.edges()},
          {"window_per_edge", load.window()},
          {"mean_batch", batch_n ? batch_sum / batch_n : 0.0},
          {"slices", slices},
          {"seconds_per_slice", slice}};
}

// GET /metrics from `url` (http://HOST:PORT) and read it all; false if it failed.
bool Scrape(const std::string& url) {
  const auto colon = url.rfind(':');
  const std::string host = url.substr(7, colon - 7);
  const int port = std::stoi(url.substr(colon + 1));
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  inet_pton(AF_INET, host.c_str(), &address.sin_addr);
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
  const std::string request = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  ok = ok && ::write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size());
  char buffer[8192];
  ssize_t total = 0;
  for (ssize_t n; ok && (n = ::read(fd, buffer, sizeof buffer)) > 0;) total += n;
  ::close(fd);
  return ok && total > 0;
}

// One cloud serving --metrics-listen, under the same load in alternating
// slices: scraped every `scrape_interval_s` (far more often than Prometheus'
// usual 15 s) in one, not scraped in the next. What the metrics add on the
// request path (a few counters under the lock the stats already take) is in
// both slices; what a scrape costs (HTTP, collecting, rendering) is the
// difference. One process for both sides: two cloud processes measured side by
// side differ by up to 35% on this machine with nothing different between them.
json MetricsOverhead(const std::string& cloud_bin, const std::string& model_dir,
                     const splitnet::Manifest& m, const std::vector<trace::SourceFrame>& frames,
                     int threads, double seconds, int rounds, double scrape_interval_s) {
  auto requests = Requests(m, frames, nullptr);
  CloudProcess cloud(cloud_bin, model_dir, threads, 16, {"--metrics-listen", "127.0.0.1:0"});
  const std::string url = cloud.second_line();
  if (url.rfind("http://", 0) != 0) {
    std::fprintf(stderr, "bench: the cloud wrote no metrics address\n");
    std::exit(1);
  }
  LoadGenerator load(cloud.endpoint(), requests);
  std::atomic<bool> done{false}, scraping{false};
  std::atomic<long> scrapes{0}, failed{0};
  std::thread scraper([&] {
    while (!done.load()) {
      if (scraping.load()) (Scrape(url) ? scrapes : failed)++;
      std::this_thread::sleep_for(std::chrono::duration<double>(scrape_interval_s));
    }
  });
  double plain_frames = 0, plain_time = 0, scraped_frames = 0, scraped_time = 0;
  std::vector<double> ratios;
  const int slices = rounds * 4;
  const double slice = seconds / 4;
  for (int r = 0; r < slices; ++r) {
    // Alternating which goes first, so a trend in the machine's load hits both.
    ServedSlice a, b;
    for (int side = 0; side < 2; ++side) {
      const bool scraped = (side + r) % 2 == 1;
      scraping = scraped;
      (scraped ? b : a) = load.Serve(cloud, slice);
    }
    scraping = false;
    plain_frames += a.replies;
    plain_time += a.seconds;
    scraped_frames += b.replies;
    scraped_time += b.seconds;
    ratios.push_back((b.replies / b.seconds) / (a.replies / a.seconds));
  }
  done = true;
  scraper.join();
  Log("bench: metrics overhead %s\n", "done");
  const double plain_fps = plain_frames / plain_time, scraped_fps = scraped_frames / scraped_time;
  return {{"plain_fps", plain_fps},
          {"metrics_fps", scraped_fps},
          {"ratio", scraped_fps / plain_fps},
          {"median_slice_ratio", Percentile(ratios, 50)},
          {"goal", ">= 0.98"},
          {"scrapes", scrapes.load()},
          {"failed_scrapes", failed.load()},
          {"scrape_interval_s", scrape_interval_s},
          {"threads", threads},
          {"slices", slices},
          {"seconds_per_slice", slice}};
}

// One request at a time, `n` of them: the RTTs (us) and, from each reply, the
// cloud's own tail, queue and decode times (us).
struct PingTimes {
  std::vector<double> rtt, tail, queue, decode;
};
void PingPong(zmq::socket_t& sock, const std::vector<std::vector<std::uint8_t>>& requests, int n,
              size_t& next, PingTimes& t) {
  for (int i = 0; i < n; ++i) {
    const auto& req = requests[next++ % requests.size()];
    const double t0 = WallSeconds();
    sock.send(zmq::buffer(req), zmq::send_flags::none);
    zmq::message_t msg;
    if (!sock.recv(msg)) std::exit(1);
    t.rtt.push_back(1e6 * (WallSeconds() - t0));
    auto reply = transport::DecodeReply(std::span(msg.data<std::uint8_t>(), msg.size()));
    // Only the tail is the model's own work; queueing, decoding and wake-ups are runtime.
    t.tail.push_back(reply.ok() ? double(reply->tail_us) : 0.0);
    t.queue.push_back(reply.ok() ? double(reply->queue_us) : 0.0);
    t.decode.push_back(reply.ok() ? double(reply->decode_us) : 0.0);
  }
}

json LoopbackRtt(const std::string& cloud_bin, const std::string& model_dir,
                 const splitnet::Manifest& m, const std::vector<trace::SourceFrame>& frames,
                 int n) {
  auto requests = Requests(m, frames, nullptr);
  zmq::context_t ctx(1);
  auto dealer = [&](const std::string& endpoint) {
    zmq::socket_t sock(ctx, zmq::socket_type::dealer);
    sock.set(zmq::sockopt::linger, 0);
    sock.connect(endpoint);
    return sock;
  };
  CloudProcess cloud(cloud_bin, model_dir, 1, 1);
  zmq::socket_t to_cloud = dealer(cloud.endpoint());
  size_t next = 0;
  PingTimes warm, cloud_t, echo_t, busy_echo_t;
  PingPong(to_cloud, requests, 200, next, warm);  // warm up; learn the tail's time
  const double tail_us = Percentile(warm.tail, 50);
  EchoProcess echo(0), busy_echo(tail_us);
  zmq::socket_t to_echo = dealer(echo.endpoint()), to_busy = dealer(busy_echo.endpoint());
  PingPong(to_echo, requests, 200, next, warm);
  PingPong(to_busy, requests, 200, next, warm);
  // Interleaved rounds, so that the machine's moods fall on all three alike.
  const int rounds = 20, per_round = std::max(1, n / rounds);
  for (int r = 0; r < rounds; ++r) {
    PingPong(to_cloud, requests, per_round, next, cloud_t);
    PingPong(to_echo, requests, per_round, next, echo_t);
    PingPong(to_busy, requests, per_round, next, busy_echo_t);
  }
  std::vector<double> net, busy_net;
  for (size_t i = 0; i < cloud_t.rtt.size(); ++i) net.push_back(cloud_t.rtt[i] - cloud_t.tail[i]);
  for (double v : busy_echo_t.rtt) busy_net.push_back(v - tail_us);
  Log("bench: loopback round trip %s\n", "done");
  auto pp = [](const std::vector<double>& v) {
    return json{{"p50", Percentile(v, 50)}, {"p99", Percentile(v, 99)}};
  };
  return {{"requests", cloud_t.rtt.size()},
          {"rounds", rounds},
          {"rtt_us", pp(cloud_t.rtt)},
          {"cloud_tail_us", pp(cloud_t.tail)},
          {"cloud_queue_us", pp(cloud_t.queue)},
          {"cloud_decode_us", pp(cloud_t.decode)},
          {"rtt_minus_tail_us", pp(net)},
          {"bare_echo_us", pp(echo_t.rtt)},
          {"busy_echo_minus_busy_us", pp(busy_net)},
          {"echo_busy_us", tail_us},
          {"ratio_p50", Percentile(net, 50) / Percentile(busy_net, 50)},
          {"ratio_to_idle_echo_p50", Percentile(net, 50) / Percentile(echo_t.rtt, 50)},
          {"goal", "<= 1.5"},
          {"request_bytes", requests[0].size()}};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"DeepCut ratio benchmarks (edge overhead, cloud efficiency, loopback RTT)"};
  std::string cloud_bin, model_dir = "models/fmnist",
                         fmnist = deepcut::trace::kDefaultFashionMnistDir, only;
  std::string edge_policy = "always";
  int frames = 2000, rounds = 3, rtt_requests = 2000, threads = 1, edge_cv_threads = -1;
  double seconds = 3.0, scrape_interval_s = 0.1;
  app.add_option("--cloud-bin", cloud_bin, "deepcut-cloud executable")->required();
  app.add_option("--model", model_dir, "model package")->capture_default_str();
  app.add_option("--fashion-mnist-dir", fmnist)->capture_default_str();
  app.add_option("--frames", frames, "frames per edge-overhead round")->capture_default_str();
  app.add_option("--rounds", rounds, "alternating rounds per ratio")->capture_default_str();
  app.add_option("--seconds", seconds, "measured seconds per cloud round")->capture_default_str();
  app.add_option("--threads", threads, "cloud threads (the load generator needs a core too)")
      ->capture_default_str();
  app.add_option("--scrape-interval-s", scrape_interval_s,
                 "metrics-overhead: scrape the cloud's /metrics this often")
      ->capture_default_str();
  app.add_option("--rtt-requests", rtt_requests, "requests for the round trip")
      ->capture_default_str();
  app.add_option("--only", only,
                 "edge-overhead|cloud-efficiency|metrics-overhead|loopback-rtt|exray-overhead|"
                 "harvest-overhead");
  app.add_option("--edge-policy", edge_policy, "policy of the edge-overhead run")
      ->capture_default_str();
  app.add_option("--edge-cv-threads", edge_cv_threads,
                 "OpenCV threads on the edge side (-1: OpenCV's default)")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  auto manifest = deepcut::splitnet::LoadManifest(model_dir);
  if (!manifest.ok()) {
    std::cerr << manifest.status().message() << "\n";
    return 3;
  }
  auto source =
      deepcut::trace::OpenSource({.spec = "fashion-mnist:test", .fashion_mnist_dir = fmnist});
  if (!source.ok()) {
    std::cerr << source.status().message() << "\n";
    return 4;
  }
  std::vector<deepcut::trace::SourceFrame> mem;
  while (static_cast<int>(mem.size()) < frames) {
    auto f = (*source)->Next();
    if (!f.ok() || !f->has_value()) break;
    mem.push_back(**f);
  }
  spdlog::set_level(spdlog::level::warn);
  json report;
  // The cloud's ratios first: the edge's parallel inference leaves OpenCV's
  // thread pool (TBB) in this process, which then takes CPU from the cloud.
  if (only.empty() || only == "cloud-efficiency")
    report["cloud_efficiency"] =
        CloudEfficiency(cloud_bin, model_dir, *manifest, mem, threads, seconds, rounds);
  if (only.empty() || only == "metrics-overhead")
    report["metrics_overhead"] = MetricsOverhead(cloud_bin, model_dir, *manifest, mem, threads,
                                                 seconds, rounds, scrape_interval_s);
  if (only.empty() || only == "loopback-rtt")
    report["loopback_rtt"] = LoopbackRtt(cloud_bin, model_dir, *manifest, mem, rtt_requests);
  if (only.empty() || only == "edge-overhead") {
    if (edge_cv_threads >= 0) cv::setNumThreads(edge_cv_threads);
    // Offloading every frame (the network path included) to a responder that
    // costs nothing: a real cloud on the same two cores runs its tail only
    // during the pipeline's slices and slows the edge's inference there, which
    // is the machine's, not the runtime's. With the real cloud too, for scale.
    EchoProcess responder(0, /*answer=*/true);
    report["edge_overhead"] =
        EdgeOverhead(*manifest, mem, responder.endpoint(), rounds, edge_policy);
    report["edge_overhead_local"] =
        EdgeOverhead(*manifest, mem, responder.endpoint(), rounds, "never");
    CloudProcess cloud(cloud_bin, model_dir, 1, 16);
    report["edge_overhead_real_cloud"] =
        EdgeOverhead(*manifest, mem, cloud.endpoint(), rounds, edge_policy);
  }
  if (only.empty() || only == "exray-overhead") {
    EchoProcess responder(0, /*answer=*/true);
    report["exray_overhead"] = ExrayOverhead(*manifest, mem, responder.endpoint(), rounds, 30);
  }
  if (only.empty() || only == "harvest-overhead") {
    EchoProcess responder(0, /*answer=*/true);
    report["harvest_overhead"] = HarvestOverhead(*manifest, mem, responder.endpoint(), rounds, 30);
  }
  std::cout << report.dump(2) << std::endl;
  return 0;
}
