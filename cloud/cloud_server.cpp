#include "cloud/cloud_server.h"

#include <spdlog/spdlog.h>
#include <opencv2/core.hpp>

#include <algorithm>
#include <cmath>
#include <future>
#include <map>
#include <set>

#include "splitnet/feature_codec.h"
#include "splitnet/split_model.h"
#include "transport/curve_keys.h"
#include "transport/protocol.h"

namespace deepcut::cloud {
namespace {

constexpr const char* kResultsEndpoint = "inproc://deepcut-cloud-results";
// Where libzmq looks for the ZAP handler of a context (RFC 27).
constexpr const char* kZapEndpoint = "inproc://zeromq.zap.01";
constexpr const char* kZapDomain = "deepcut";
// A refused key is logged at most once per this period (with a count).
constexpr TimeUs kRefusalLogPeriodUs = 60'000'000;

std::string Z85Of(const zmq::message_t& key) {
  char text[transport::kCurveKeyZ85Chars + 1] = {};
  if (key.size() != 32 || !zmq_z85_encode(text, key.data<std::uint8_t>(), 32)) return "(malformed)";
  return text;
}

// The edge's address as ZeroMQ saw it (TCP), for the log.
std::string PeerOf(zmq::message_t& message) {
  const char* address = zmq_msg_gets(message.handle(), "Peer-Address");
  return address ? address : "?";
}

}  // namespace

CloudServer::CloudServer(CloudOptions options, splitnet::Manifest manifest)
    : options_(std::move(options)),
      manifest_(std::move(manifest)),
      service_(
          manifest_,
          {.top_k = options_.top_k, .max_queue = options_.max_queue, .workers = options_.threads}),
      refusals_(clock_, options_.refusal_log_period_s) {}

CloudServer::~CloudServer() {
  zap_stop_ = true;
  if (zap_thread_.joinable()) zap_thread_.join();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  queue_ready_.notify_all();
  for (auto& t : workers_) t.join();
  {
    std::lock_guard<std::mutex> lock(harvest_mutex_);
    harvest_stop_ = true;
  }
  harvest_ready_.notify_all();
  if (harvest_thread_.joinable()) harvest_thread_.join();
  if (results_) results_->close();
  if (router_) router_->close();
}

Result<std::unique_ptr<CloudServer>> CloudServer::Create(CloudOptions options,
                                                         const splitnet::Manifest& manifest) {
  if (options.threads < 1 || options.threads > 256)
    return InvalidArgument("threads must be 1..256");
  if (options.max_batch < 1) return InvalidArgument("max batch must be >= 1");
  if (options.max_queue < 1) return InvalidArgument("max queue must be >= 1");
  if (options.listen.empty()) return InvalidArgument("no endpoint to listen on");
  if (options.curve_public_key.empty() != options.curve_secret_key.empty())
    return InvalidArgument("CURVE needs both the server's public and secret key");
  if (!options.curve_accepted_keys.empty() && options.curve_secret_key.empty())
    return InvalidArgument("accepted edge keys need the server's CURVE key pair");
  if (!options.curve_secret_key.empty()) {
    RETURN_IF_ERROR(transport::RequireCurve());
    RETURN_IF_ERROR(transport::CheckZ85Key(options.curve_public_key));
    RETURN_IF_ERROR(transport::CheckZ85Key(options.curve_secret_key));
    for (const auto& key : options.curve_accepted_keys)
      RETURN_IF_ERROR(transport::CheckZ85Key(key));
  }
  std::unique_ptr<harvest::HarvestSink> sink;
  if (!options.harvest_db.empty()) {
    ASSIGN_OR_RETURN(sink, harvest::HarvestSink::Open(options.harvest_db, manifest));
  }
  std::unique_ptr<CloudServer> server(new CloudServer(std::move(options), manifest));
  server->sink_ = std::move(sink);
  RETURN_IF_ERROR(server->Start());
  return server;
}

Status CloudServer::Start() {
  // The handler must be there before the first edge can connect.
  if (!options_.curve_accepted_keys.empty()) RETURN_IF_ERROR(StartZapHandler());
  try {
    results_ = std::make_unique<zmq::socket_t>(context_, zmq::socket_type::pull);
    results_->bind(kResultsEndpoint);
    router_ = std::make_unique<zmq::socket_t>(context_, zmq::socket_type::router);
    router_->set(zmq::sockopt::linger, 0);
    // A reply to an edge that went away is dropped, not an error.
    router_->set(zmq::sockopt::router_mandatory, 0);
    router_->set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(kMaxFrameBytesRead));
    if (!options_.curve_secret_key.empty()) {
      router_->set(zmq::sockopt::curve_server, 1);
      router_->set(zmq::sockopt::curve_publickey, options_.curve_public_key);
      router_->set(zmq::sockopt::curve_secretkey, options_.curve_secret_key);
      router_->set(zmq::sockopt::zap_domain, kZapDomain);
    }
  } catch (const zmq::error_t& e) {
    return Internal(std::string("cannot set up the ROUTER socket: ") + e.what());
  }
  try {
    for (const auto& endpoint : options_.listen) {
      router_->bind(endpoint);
      endpoints_.push_back(router_->get(zmq::sockopt::last_endpoint));
    }
  } catch (const zmq::error_t& e) {
    return InvalidArgument("cannot listen on " + options_.listen.back() + ": " + e.what());
  }
  // Each worker runs its tail single-threaded; parallelism is across workers.
  cv::setNumThreads(1);
  // The socket thread serves too (`inline_worker_`): with one thread nothing is
  // handed over at all; the other threads take batches when they are idle.
  ASSIGN_OR_RETURN(inline_worker_, TailWorker::Create(manifest_));
  const int others = options_.threads - 1;
  worker_status_.assign(others, Status::Ok());
  for (int i = 0; i < others; ++i) workers_.emplace_back([this, i] { WorkerLoop(i); });
  while (workers_ready_.load() < others) std::this_thread::yield();
  for (const auto& s : worker_status_)
    if (!s.ok()) return s;
  if (sink_) harvest_thread_ = std::thread([this] { HarvestLoop(); });
  return Status::Ok();
}

Status CloudServer::StartZapHandler() {
  std::promise<Status> bound;
  auto ready = bound.get_future();
  zap_thread_ = std::thread([this, &bound] {
    zmq::socket_t handler(context_, zmq::socket_type::rep);
    try {
      handler.set(zmq::sockopt::linger, 0);
      handler.bind(kZapEndpoint);
    } catch (const zmq::error_t& e) {
      bound.set_value(Internal(std::string("cannot start the ZAP handler: ") + e.what()));
      return;
    }
    bound.set_value(Status::Ok());  // `bound` is not touched after this
    ZapLoop(handler);
    handler.close();
  });
  return ready.get();
}

void CloudServer::ZapLoop(zmq::socket_t& handler) {
  // Keys as the 32 bytes the ZAP request carries.
  std::set<std::string> accepted;
  for (const auto& z85 : options_.curve_accepted_keys) {
    std::uint8_t key[32];
    if (zmq_z85_decode(key, z85.c_str())) accepted.emplace(reinterpret_cast<char*>(key), 32);
  }
  struct Refusals {
    bool logged = false;
    TimeUs logged_us = 0;
    std::int64_t since_logged = 0;  // refusals not yet in a log line
  };
  std::map<std::string, Refusals> refusals;  // by Z85 key; only this thread touches it
  zmq::pollitem_t item{static_cast<void*>(handler), 0, ZMQ_POLLIN, 0};
  while (!zap_stop_.load()) {
    try {
      zmq::poll(&item, 1, std::chrono::milliseconds(100));
      if (!(item.revents & ZMQ_POLLIN)) continue;
      std::vector<zmq::message_t> request;
      zmq::message_t part;
      while (handler.recv(part, zmq::recv_flags::dontwait)) {
        const bool more = part.more();
        if (request.size() < 16) request.push_back(std::move(part));
        if (!more) break;
      }
      if (request.empty()) continue;
      // RFC 27: version, request id, domain, address, identity, mechanism, credentials.
      const bool well_formed = request.size() >= 6 && request[0].to_string_view() == "1.0";
      const bool curve = well_formed && request[5].to_string_view() == "CURVE" &&
                         request.size() == 7 && request[6].size() == 32;
      const bool allowed = curve && accepted.count(request[6].to_string()) > 0;
      const std::string key = curve ? Z85Of(request[6]) : "";
      std::string status = allowed ? "200" : well_formed ? "400" : "500";
      std::string text = allowed ? "OK" : curve ? "key not accepted" : "not a CURVE request";
      if (allowed) {
        spdlog::debug("accepted edge key {} from {}", key, request[3].to_string());
      } else {
        {
          std::lock_guard<std::mutex> lock(mutex_);
          stats_.refused_keys++;
        }
        if (refusals.size() > 4096) refusals.clear();  // bounded, whatever connects
        Refusals& r = refusals[key];
        const TimeUs now = clock_.NowUs();
        r.since_logged++;
        const std::string address = request.size() > 3 ? request[3].to_string() : "?";
        if (!r.logged || now - r.logged_us >= kRefusalLogPeriodUs) {
          if (!r.logged)
            spdlog::warn("refused edge key {} from {}: {}", key.empty() ? "(none)" : key, address,
                         text);
          else
            spdlog::warn("refused edge key {} from {}: {} times in the last {} s", key, address,
                         r.since_logged, (now - r.logged_us) / 1'000'000);
          r.logged = true;
          r.logged_us = now;
          r.since_logged = 0;
        }
      }
      // Reply: version, request id, status code, status text, user id, metadata.
      const std::string request_id = request.size() > 1 ? request[1].to_string() : "";
      handler.send(zmq::buffer(std::string_view("1.0")), zmq::send_flags::sndmore);
      handler.send(zmq::buffer(request_id), zmq::send_flags::sndmore);
      handler.send(zmq::buffer(status), zmq::send_flags::sndmore);
      handler.send(zmq::buffer(text), zmq::send_flags::sndmore);
      handler.send(zmq::buffer(allowed ? key : std::string()), zmq::send_flags::sndmore);
      handler.send(zmq::message_t(), zmq::send_flags::none);
    } catch (const zmq::error_t& e) {
      if (e.num() == ETERM) break;
      if (e.num() != EINTR) spdlog::warn("ZAP handler: {}", e.what());
    }
  }
}

std::vector<CloudServer::Job> CloudServer::TakeBatch() {
  std::vector<Job> batch;
  while (!queue_.empty() && static_cast<int>(batch.size()) < options_.max_batch) {
    batch.push_back(std::move(queue_.front()));
    queue_.pop_front();
  }
  in_service_ += static_cast<int>(batch.size());
  return batch;
}

std::vector<std::vector<std::uint8_t>> CloudServer::Serve(TailWorker& worker,
                                                          std::vector<Job>& batch) {
  std::vector<TailJob> jobs;
  jobs.reserve(batch.size());
  for (Job& job : batch) jobs.push_back(std::move(job.job));
  ServedBatch served = worker.Serve(jobs, clock_, options_.top_k);
  // Counted before the replies leave, so whoever holds a reply sees it counted.
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.batches++;
    stats_.batch_size.Observe(static_cast<double>(batch.size()));
    stats_.service_seconds.Observe(served.busy_us / 1e6);
    if (served.answered > 0) {
      const double per_request = static_cast<double>(served.busy_us) / served.answered;
      service_us_per_request_ = service_us_per_request_ == 0.0
                                    ? per_request
                                    : 0.9 * service_us_per_request_ + 0.1 * per_request;
    }
    for (Served outcome : served.outcomes) {
      stats_.answered += outcome == Served::kAnswered;
      stats_.expired += outcome == Served::kExpired;
      stats_.rejected += outcome == Served::kRejected;
    }
  }
  std::vector<std::vector<std::uint8_t>> replies;
  for (size_t i = 0; i < batch.size(); ++i) {
    if (served.outcomes[i] == Served::kRejected)
      refusals_.Note("payload", batch[i].peer, served.replies[i].message);
    replies.push_back(transport::EncodeReply(served.replies[i]));
  }
  return replies;
}

void CloudServer::WorkerLoop(int index) {
  auto worker = TailWorker::Create(manifest_);
  if (!worker.ok()) {
    worker_status_[index] = worker.status();
    workers_ready_++;
    return;
  }
  zmq::socket_t push(context_, zmq::socket_type::push);
  push.connect(kResultsEndpoint);
  workers_ready_++;

  for (;;) {
    std::vector<Job> batch;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      ++idle_workers_;
      queue_ready_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      --idle_workers_;
      if (stopping_) break;
      batch = TakeBatch();
    }
    const auto replies = Serve(**worker, batch);
    // A batch's replies go to the socket thread as one multipart message
    // [identity, reply, identity, reply, ...]: one wake-up per batch, not per frame.
    for (size_t i = 0; i < batch.size(); ++i) {
      push.send(zmq::buffer(batch[i].identity), zmq::send_flags::sndmore);
      push.send(zmq::buffer(replies[i]),
                i + 1 < batch.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
    }
    std::lock_guard<std::mutex> lock(mutex_);
    in_service_ -= static_cast<int>(batch.size());
  }
  push.close();
}

void CloudServer::SendReply(zmq::socket_t& router, const std::string& identity,
                            const std::vector<std::uint8_t>& reply) {
  try {
    bytes_out_ += static_cast<std::int64_t>(reply.size());
    router.send(zmq::buffer(identity), zmq::send_flags::sndmore | zmq::send_flags::dontwait);
    router.send(zmq::buffer(reply), zmq::send_flags::dontwait);
  } catch (const zmq::error_t& e) {
    spdlog::debug("reply dropped: {}", e.what());
  }
}

void CloudServer::Refuse(zmq::socket_t& router, const std::string& identity,
                         const std::string& peer, const Refusal& refusal) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.received++;
    CountEdge(peer);
    if (refusal.reply.status == transport::ReplyStatus::kBusy) {
      stats_.busy++;
      stats_.hopeless += refusal.reply.message != "queue full";
    } else if (refusal.reply.status == transport::ReplyStatus::kDraining) {
      stats_.draining++;
    } else {
      stats_.rejected++;
    }
  }
  // Shedding is an ordinary outcome under load, counted, not logged per request.
  if (refusal.reply.status == transport::ReplyStatus::kError)
    refusals_.Note(refusal.kind, peer, refusal.reply.message);
  SendReply(router, identity, transport::EncodeReply(refusal.reply));
}

void CloudServer::HandleHarvest(const std::string& identity, std::span<const std::uint8_t> bytes) {
  if (!sink_) {
    const TimeUs now = clock_.NowUs();
    if (harvest_off_logged_us_ < 0 || now - harvest_off_logged_us_ >= 60'000'000) {
      spdlog::warn("an edge uploads harvested frames, but this cloud keeps none (--harvest-db)");
      harvest_off_logged_us_ = now;
    }
    return;
  }
  {
    std::lock_guard<std::mutex> lock(harvest_mutex_);
    // Each edge has one chunk in flight: a long queue is many edges or a stuck
    // store; beyond it a chunk is dropped unanswered and its edge sends it again.
    if (harvest_queue_.size() >= 1024) return;
    harvest_queue_.emplace_back(identity, std::vector<std::uint8_t>(bytes.begin(), bytes.end()));
  }
  harvest_ready_.notify_one();
}

void CloudServer::HarvestLoop() {
  zmq::socket_t push(context_, zmq::socket_type::push);
  push.connect(kResultsEndpoint);
  for (;;) {
    std::pair<std::string, std::vector<std::uint8_t>> job;
    {
      std::unique_lock<std::mutex> lock(harvest_mutex_);
      harvest_ready_.wait(lock, [&] { return harvest_stop_ || !harvest_queue_.empty(); });
      if (harvest_stop_) break;
      job = std::move(harvest_queue_.front());
      harvest_queue_.pop_front();
    }
    const auto ack = sink_->Receive(job.second);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stats_.harvest = sink_->counters();
    }
    if (!ack) continue;
    push.send(zmq::buffer(job.first), zmq::send_flags::sndmore);
    push.send(zmq::buffer(transport::EncodeHarvestAck(*ack)), zmq::send_flags::none);
  }
  push.close();
}

void CloudServer::HandleRequest(zmq::socket_t& router, const std::string& identity,
                                const std::string& peer, std::span<const std::uint8_t> bytes) {
  if (transport::PeekKind(bytes) == transport::kKindHarvestChunk) {
    HandleHarvest(identity, bytes);
    return;
  }
  auto checked = service_.Check(bytes);
  if (auto* refusal = std::get_if<Refusal>(&checked)) {
    Refuse(router, identity, peer, *refusal);
    return;
  }
  auto& request = std::get<transport::Request>(checked);
  if (refuse_new_) {
    last_refused_us_ = clock_.NowUs();
    Refuse(
        router, identity, peer,
        Refusal{"draining", transport::Reply{.seq = request.seq,
                                             .status = transport::ReplyStatus::kDraining,
                                             .message = "draining: the cloud is shutting down"}});
    return;
  }
  std::optional<Refusal> busy;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    const TimeUs now = clock_.NowUs();
    busy = service_.Admit(request, now, queue_.size(), service_us_per_request_);
    if (!busy) {
      stats_.received++;
      CountEdge(peer);
      const TimeUs expires = TailService::ExpiresUs(request, now);
      queue_.push_back(Job{identity, peer, TailJob{std::move(request), now, expires}});
      return;
    }
  }
  Refuse(router, identity, peer, *busy);
}

bool CloudServer::ReceiveOne(zmq::socket_t& router) {
  // ZeroMQ hands over a message's frames all at once, so none of these reads
  // blocks once the first has come; every frame is read, whatever their
  // number, so that the next message starts where it should.
  zmq::message_t identity, body, part;
  if (!router.recv(identity, zmq::recv_flags::dontwait)) return false;
  size_t frames = 0;
  bool more = identity.more();
  while (more) {
    zmq::message_t& into = frames == 0 ? body : part;
    (void)router.recv(into);
    more = into.more();
    ++frames;
  }
  const std::string id = identity.to_string();
  const std::string peer = PeerOf(frames > 0 ? body : identity);
  bytes_in_ += static_cast<std::int64_t>(body.size());
  const std::span<const std::uint8_t> bytes(body.data<std::uint8_t>(), body.size());
  if (frames != 1) {
    Refuse(router, id, peer, service_.RefuseFrames(bytes, frames));
    return true;
  }
  HandleRequest(router, id, peer, bytes);
  return true;
}

void CloudServer::Step(int wait_ms) {
  zmq::pollitem_t items[] = {{static_cast<void*>(*router_), 0, ZMQ_POLLIN, 0},
                             {static_cast<void*>(*results_), 0, ZMQ_POLLIN, 0}};
  try {
    // Waiting work: look at the sockets without blocking, then serve.
    bool work_waiting;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      work_waiting = !queue_.empty();
    }
    zmq::poll(items, 2, std::chrono::milliseconds(work_waiting ? 0 : wait_ms));
    // Replies first: they finish work already paid for.
    while (items[1].revents & ZMQ_POLLIN) {
      zmq::message_t identity, reply;
      if (!results_->recv(identity, zmq::recv_flags::dontwait)) break;
      for (;;) {
        (void)results_->recv(reply);
        const bool more = reply.more();
        bytes_out_ += static_cast<std::int64_t>(reply.size());
        router_->send(identity, zmq::send_flags::sndmore | zmq::send_flags::dontwait);
        router_->send(reply, zmq::send_flags::dontwait);
        if (!more) break;
        (void)results_->recv(identity);
      }
    }
    for (int i = 0; i < 256 && (items[0].revents & ZMQ_POLLIN); ++i)
      if (!ReceiveOne(*router_)) break;
    ServeInline(*router_);
  } catch (const zmq::error_t& e) {
    if (e.num() == ETERM) return;
    if (e.num() != EINTR) spdlog::warn("socket error: {}", e.what());
  }
  refusals_.Flush();
}

void CloudServer::LogStats(CloudStats& last) {
  if (options_.stats_interval_s <= 0 || clock_.NowUs() < next_stats_us_) return;
  CloudStats s = stats();
  spdlog::info("served {} (+{}), errors {}, busy {}, expired {}, mean batch {:.1f}", s.answered,
               s.answered - last.answered, s.rejected, s.busy, s.expired,
               s.batches ? double(s.answered) / s.batches : 0.0);
  last = s;
  next_stats_us_ += static_cast<TimeUs>(options_.stats_interval_s * 1e6);
}

void CloudServer::Run(const std::atomic<bool>& stop) {
  next_stats_us_ = clock_.NowUs() + static_cast<TimeUs>(options_.stats_interval_s * 1e6);
  CloudStats last;
  while (!stop.load()) {
    Step(100);
    LogStats(last);
  }
  DrainAndStop();
}

void CloudServer::DrainAndStop() {
  phase_ = Phase::kDraining;
  const TimeUs started = clock_.NowUs();
  const TimeUs refuse_at = started + static_cast<TimeUs>(options_.drain_delay_s * 1e6);
  const TimeUs give_up = refuse_at + static_cast<TimeUs>(options_.drain_timeout_s * 1e6);
  spdlog::info("draining: not ready; serving {:.1f} s more, then refusing new requests",
               options_.drain_delay_s);
  auto busy = [this] {
    std::lock_guard<std::mutex> lock(mutex_);
    return !queue_.empty() || in_service_ > 0;
  };
  // The delay: serve as usual while whoever probes readiness notices.
  while (clock_.NowUs() < refuse_at) Step(10);
  refuse_new_ = true;
  // Every request that comes now is answered "draining"; the queue is served.
  // The socket stays open until the edges have stopped sending (none for
  // drain_quiet_s): each has had a "draining" reply and moved on its own,
  // while its old connection still held, rather than finding it closed.
  last_refused_us_ = clock_.NowUs();
  const auto quiet_us = static_cast<TimeUs>(options_.drain_quiet_s * 1e6);
  while ((busy() || clock_.NowUs() - last_refused_us_ < quiet_us) && clock_.NowUs() < give_up)
    Step(5);
  // The workers' last replies may still be on their way to this thread.
  for (int i = 0; i < 3; ++i) Step(5);
  std::int64_t dropped = 0;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    dropped = static_cast<std::int64_t>(queue_.size());
  }
  const CloudStats s = stats();
  spdlog::info("drained in {:.2f} s: {} draining replies, {} requests left unanswered",
               (clock_.NowUs() - started) / 1e6, s.draining, dropped);
  // The replies sent last must leave before the socket closes.
  try {
    router_->set(zmq::sockopt::linger, 1000);
  } catch (const zmq::error_t&) {
  }
  phase_ = Phase::kStopped;
}

void CloudServer::ServeInline(zmq::socket_t& router) {
  std::vector<Job> batch;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (queue_.empty()) return;
    // An idle worker thread takes it: the socket thread stays free for the
    // sockets. None idle (or none at all): the socket thread serves a batch.
    if (idle_workers_ > 0) {
      queue_ready_.notify_one();
      return;
    }
    batch = TakeBatch();
  }
  const auto replies = Serve(*inline_worker_, batch);
  for (size_t i = 0; i < batch.size(); ++i) SendReply(router, batch[i].identity, replies[i]);
  std::lock_guard<std::mutex> lock(mutex_);
  in_service_ -= static_cast<int>(batch.size());
}

void CloudServer::CountEdge(const std::string& peer) {
  auto it = stats_.by_edge.find(peer);
  if (it == stats_.by_edge.end())
    it = stats_.by_edge.size() < kMaxEdgesCounted
             ? stats_.by_edge.emplace(peer, 0).first
             : stats_.by_edge.try_emplace(kOtherEdges, 0).first;
  it->second++;
}

CloudStats CloudServer::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  CloudStats s = stats_;
  s.queue_depth = static_cast<std::int64_t>(queue_.size());
  s.bytes_in = bytes_in_.load();
  s.bytes_out = bytes_out_.load();
  return s;
}

}  // namespace deepcut::cloud
