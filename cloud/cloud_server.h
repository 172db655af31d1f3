// The cloud: a ZeroMQ ROUTER that serves any number of edges.
//
// The sockets, queue and threads around the TailService (cloud/tail_service.h),
// which decides what to answer. The thread that calls Run() owns the ROUTER
// socket. It checks each message (TailService::Check) and answers a bad one at
// once with an error reply; it sheds load with a "busy" reply when the work
// queue is full, or when the wait it foresees in the queue would outlast the
// request's deadline (TailService::Admit), so latency cannot grow without
// bound and the edge learns at once that it must answer locally. Admitted
// requests wait in one queue served by `threads` TailWorkers (each its own tail
// network and codec), up to `max_batch` requests per tail run: the socket
// thread's own, and `threads - 1` worker threads, which hand their replies back
// to the socket thread over inproc:// (a socket belongs to one thread). Work
// goes to an idle worker thread first; with none idle (always, for one thread)
// the socket thread serves a batch itself and replies directly, so a request
// crosses no thread at all: while it does, new messages wait in ZeroMQ's queue
// and are admitted after that batch.
//
// With a CURVE key pair the ROUTER is a CURVE server: every edge must know
// the server's public key, and the link is encrypted. With accepted edge keys
// as well, a ZAP handler (RFC 27) on its own thread, bound at
// inproc://zeromq.zap.01 in this server's context before the ROUTER binds,
// lets in only those keys; refusals are counted and logged at warn, at most
// once per key per minute.
//
// Every refusal (a malformed message, one of several frames or over the size
// limit, a request the model cannot serve, a payload that does not decode) gets
// an error reply carrying the request's seq whenever its first bytes hold one,
// is counted, and is logged at warn, rate-limited per kind (RefusalLog).
// ZeroMQ itself drops the connection of a peer that sends a frame over
// kMaxFrameBytesRead (the socket's ZMQ_MAXMSGSIZE), before the frame is
// buffered: that one cannot be answered (docs/protocol.md, "Size limits").
//
// Harvested frames (kind 3, docs/harvest.md) go to a harvest thread that
// writes them to the cloud's SQLite store and sends the acks back through the
// socket thread, so a commit never holds up a request.
//
// Graceful drain: when `stop` becomes true, Run() does not return at once.
// The server stops being ready (phase() kDraining; the metrics port's /ready
// says 503) and keeps serving for `drain_delay_s`, so that load balancers and
// Kubernetes see it leave before anything is refused; then it answers every
// new request with a "draining" reply (the edge sends it to another replica),
// answers what it had queued, sends the last replies (with a linger) and
// returns once no request has come for `drain_quiet_s` (the edges have all
// moved), at most `drain_timeout_s` after the delay.
//
// Ownership: Create() binds and starts the workers (and the ZAP and harvest
// threads); the destructor stops and joins them.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "cloud/refusal_log.h"
#include "cloud/tail_service.h"
#include "core/clock.h"
#include "core/status.h"
#include "harvest/sink.h"
#include "metrics/families.h"
#include "splitnet/manifest.h"
#include "splitnet/split_model.h"
#include "transport/protocol.h"

namespace deepcut::cloud {

// Frames up to this size are read and answered with an error when over the
// protocol's limit; a larger one makes ZeroMQ drop the connection unread, so
// that no peer can make the cloud buffer more than this per frame.
inline constexpr size_t kMaxFrameBytesRead = 8 * transport::kMaxMessageBytes;

struct CloudOptions {
  std::vector<std::string> listen{"tcp://127.0.0.1:5555"};  // endpoints to bind
  int threads = 2;                     // worker threads, each with its own tail network
  int max_batch = 16;                  // requests per tail run
  int max_queue = 256;                 // queued requests beyond which new ones get "busy"
  int top_k = 3;                       // scores returned per answer
  double stats_interval_s = 10.0;      // period of the info log line; 0: never
  double refusal_log_period_s = 10.0;  // refusals of one kind: logged at most this often
  // CURVE (Z85, 40 characters): the server's key pair; empty: plaintext.
  std::string curve_public_key;
  std::string curve_secret_key;
  // Edge public keys (Z85) let in; empty: any edge that knows the server's key.
  std::vector<std::string> curve_accepted_keys;
  // The cloud's harvest store (SQLite, docs/harvest.md); empty: harvested
  // frames are not acknowledged (the edges keep them and try again later).
  std::string harvest_db;
  // Graceful drain (above): serve on while not ready this long, then refuse
  // new requests with "draining" and finish the queue within the timeout.
  double drain_delay_s = 0.0;
  double drain_timeout_s = 10.0;
  // ... and once the queue is empty, close when no request came this long.
  double drain_quiet_s = 0.3;
};

// Distinct edge addresses counted one by one in CloudStats::by_edge; the rest
// are counted together, so that the metrics' cardinality stays bounded.
inline constexpr size_t kMaxEdgesCounted = 32;
inline constexpr const char* kOtherEdges = "other";

struct CloudStats {
  std::int64_t received = 0;
  std::int64_t answered = 0;
  std::int64_t rejected = 0;  // error replies
  std::int64_t busy = 0;      // shed on arrival: queue full, or hopeless (below)
  std::int64_t hopeless = 0;  // of `busy`: the queue ahead would outlast the deadline
  std::int64_t expired = 0;   // shed: the deadline passed while queued
  std::int64_t batches = 0;
  std::int64_t refused_keys = 0;  // CURVE handshakes refused by the ZAP handler
  std::int64_t draining = 0;      // "draining" replies (after SIGTERM)
  std::int64_t queue_depth = 0;   // requests waiting now
  std::int64_t bytes_in = 0;      // message bytes received (ZeroMQ framing not included)
  std::int64_t bytes_out = 0;     // message bytes sent
  harvest::SinkCounters harvest;  // harvested frames (with a harvest store)
  // Requests per batch, and each batch's time in the tail (seconds).
  metrics::Histogram batch_size{metrics::ExponentialBounds(1, 2, 11)};
  metrics::Histogram service_seconds{metrics::ExponentialBounds(0.0001, 2, 16)};
  // Requests received by edge address (at most kMaxEdgesCounted, then kOtherEdges).
  std::map<std::string, std::int64_t> by_edge;
};

enum class Phase { kServing, kDraining, kStopped };

class CloudServer {
 public:
  static Result<std::unique_ptr<CloudServer>> Create(CloudOptions options,
                                                     const splitnet::Manifest& manifest);
  ~CloudServer();
  CloudServer(const CloudServer&) = delete;
  CloudServer& operator=(const CloudServer&) = delete;

  // The endpoints actually bound (a `*` port resolved).
  const std::vector<std::string>& endpoints() const { return endpoints_; }
  // Serves until `stop` becomes true.
  // Serves until `stop` becomes true, then drains (above) and returns.
  void Run(const std::atomic<bool>& stop);
  CloudStats stats() const;
  // kServing: ready for new edges; kDraining: after `stop`; kStopped: Run returned.
  Phase phase() const { return phase_.load(); }

 private:
  struct Job {
    std::string identity;
    std::string peer;  // the edge's address, for the log
    TailJob job;       // checked and admitted by the socket thread
  };
  CloudServer(CloudOptions options, splitnet::Manifest manifest);
  Status Start();
  void WorkerLoop(int index);
  // Up to max_batch queued jobs; mutex_ held.
  std::vector<Job> TakeBatch();
  // Serves `batch` on `worker`, counts and logs it; the encoded replies, in order.
  std::vector<std::vector<std::uint8_t>> Serve(TailWorker& worker, std::vector<Job>& batch);
  // On the socket thread: hands waiting work to an idle worker thread, or, with
  // none idle, serves one batch itself and replies directly.
  void ServeInline(zmq::socket_t& router);
  Status StartZapHandler();
  void ZapLoop(zmq::socket_t& handler);
  // Reads every frame of one message and handles it; false if none was waiting.
  bool ReceiveOne(zmq::socket_t& router);
  // Queues a chunk for the harvest thread (socket thread).
  void HandleHarvest(const std::string& identity, std::span<const std::uint8_t> bytes);
  void HarvestLoop();
  void HandleRequest(zmq::socket_t& router, const std::string& identity, const std::string& peer,
                     std::span<const std::uint8_t> bytes);
  void Refuse(zmq::socket_t& router, const std::string& identity, const std::string& peer,
              const Refusal& refusal);
  void SendReply(zmq::socket_t& router, const std::string& identity,
                 const std::vector<std::uint8_t>& reply);
  // One pass of the socket loop: replies from the workers, new messages, an
  // inline batch. `wait_ms`: the longest it may block for a message.
  void Step(int wait_ms);
  // After `stop`: not ready, the delay, "draining" replies, the queue emptied.
  void DrainAndStop();
  void LogStats(CloudStats& last);
  // Counts a request from `peer` in stats_.by_edge; mutex_ held.
  void CountEdge(const std::string& peer);

  CloudOptions options_;
  splitnet::Manifest manifest_;
  TailService service_;
  RealClock clock_;
  RefusalLog refusals_;
  zmq::context_t context_{1};
  std::unique_ptr<zmq::socket_t> router_;
  std::unique_ptr<zmq::socket_t> results_;  // PULL, fed by the workers
  std::vector<std::string> endpoints_;
  std::unique_ptr<TailWorker> inline_worker_;  // the socket thread's own
  // Harvest chunks are stored by their own thread (a durable commit must not
  // hold up the socket thread's requests); its acks go back like the workers'
  // replies. The sink is that thread's alone.
  std::unique_ptr<harvest::HarvestSink> sink_;
  std::thread harvest_thread_;
  std::mutex harvest_mutex_;  // guards harvest_queue_, harvest_stop_
  std::condition_variable harvest_ready_;
  std::deque<std::pair<std::string, std::vector<std::uint8_t>>> harvest_queue_;
  bool harvest_stop_ = false;
  TimeUs harvest_off_logged_us_ = -1;
  std::vector<std::thread> workers_;   // threads - 1 more
  std::vector<Status> worker_status_;  // written once by each worker at start

  mutable std::mutex mutex_;  // guards queue_, stopping_, idle_workers_ and stats_
  std::condition_variable queue_ready_;
  std::deque<Job> queue_;
  bool stopping_ = false;
  int idle_workers_ = 0;  // worker threads waiting for work
  int in_service_ = 0;    // requests taken from the queue whose replies have not left
  std::atomic<Phase> phase_{Phase::kServing};
  bool refuse_new_ = false;     // socket thread only: reply "draining" to new requests
  TimeUs last_refused_us_ = 0;  // socket thread only: the last "draining" reply
  TimeUs next_stats_us_ = 0;
  std::atomic<std::int64_t> bytes_in_{0}, bytes_out_{0};
  // Recent worker time per request (batch time / batch size), EWMA; 0 until
  // the first batch. Admission uses it to foresee the wait in the queue.
  double service_us_per_request_ = 0.0;
  CloudStats stats_;
  std::atomic<int> workers_ready_{0};
  std::thread zap_thread_;  // owns the ZAP REP socket
  std::atomic<bool> zap_stop_{false};
};

}  // namespace deepcut::cloud
