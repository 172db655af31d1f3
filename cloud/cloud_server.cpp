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

transport::Reply ErrorReply(std::uint64_t seq, transport::ReplyStatus status, std::string message) {
  transport::Reply r;
  r.seq = seq;
  r.status = status;
  r.message = std::move(message);
  return r;
}

}  // namespace

Status CheckAgainstModel(const transport::Request& r, const splitnet::Manifest& m) {
  if (r.model != transport::ModelTag(m.fingerprint))
    return InvalidArgument("model tag " + std::to_string(r.model) +
                           " is not served here (serving '" + m.name + "', tag " +
                           std::to_string(transport::ModelTag(m.fingerprint)) + ")");
  if (r.rate_index < 0 || r.rate_index >= static_cast<int>(m.rates.size()))
    return InvalidArgument("rate index " + std::to_string(r.rate_index) +
                           " is not a rate of model " + m.name);
  const auto& rate = m.rates[r.rate_index];
  const size_t packed = splitnet::FeatureCodec::PackedBytes(m.bottleneck, rate);
  const size_t size = r.payload.size();
  const auto coding = static_cast<splitnet::Coding>(r.coding);
  if (coding == splitnet::Coding::kRaw && size != packed)
    return InvalidArgument("raw payload of " + std::to_string(size) + " bytes: rate " + rate.name +
                           " packs into exactly " + std::to_string(packed));
  const size_t limit = splitnet::FeatureCodec::MaxPayloadBytes(m.bottleneck, rate, coding);
  if (size > limit)
    return InvalidArgument("payload of " + std::to_string(size) + " bytes is too large for rate " +
                           rate.name + " with coding " + std::to_string(r.coding) + " (at most " +
                           std::to_string(limit) + ")");
  return Status::Ok();
}

std::vector<transport::ScoredClass> TopScores(const splitnet::Prediction& p, int k) {
  std::vector<int> order(p.probabilities.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int>(i);
  const size_t top = std::min<size_t>(std::max(k, 0), order.size());
  std::partial_sort(order.begin(), order.begin() + top, order.end(),
                    [&](int a, int b) { return p.probabilities[a] > p.probabilities[b]; });
  std::vector<transport::ScoredClass> out;
  for (size_t i = 0; i < top; ++i) out.push_back({order[i], p.probabilities[order[i]]});
  return out;
}

CloudServer::CloudServer(CloudOptions options, splitnet::Manifest manifest)
    : options_(std::move(options)),
      manifest_(std::move(manifest)),
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
  std::unique_ptr<CloudServer> server(new CloudServer(std::move(options), manifest));
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
  worker_status_.assign(options_.threads, Status::Ok());
  for (int i = 0; i < options_.threads; ++i) workers_.emplace_back([this, i] { WorkerLoop(i); });
  while (workers_ready_.load() < options_.threads) std::this_thread::yield();
  for (const auto& s : worker_status_)
    if (!s.ok()) return s;
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

void CloudServer::WorkerLoop(int index) {
  auto model = splitnet::SplitModel::Load(manifest_, {.head = false, .exit = false, .tail = true});
  if (!model.ok()) {
    worker_status_[index] = model.status();
    workers_ready_++;
    return;
  }
  splitnet::FeatureCodec codec;
  zmq::socket_t push(context_, zmq::socket_type::push);
  push.connect(kResultsEndpoint);
  workers_ready_++;

  // A batch's replies go to the socket thread as one multipart message
  // [identity, reply, identity, reply, ...]: one wake-up per batch, not per frame.
  std::vector<std::pair<std::string, std::vector<std::uint8_t>>> outbox;
  auto send = [&](const std::string& identity, const transport::Reply& reply) {
    outbox.emplace_back(identity, transport::EncodeReply(reply));
  };
  auto flush = [&] {
    for (size_t i = 0; i < outbox.size(); ++i) {
      push.send(zmq::buffer(outbox[i].first), zmq::send_flags::sndmore);
      push.send(zmq::buffer(outbox[i].second),
                i + 1 < outbox.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
    }
    outbox.clear();
  };

  std::vector<Job> batch;
  for (;;) {
    batch.clear();
    {
      std::unique_lock<std::mutex> lock(mutex_);
      queue_ready_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (stopping_) break;
      while (!queue_.empty() && static_cast<int>(batch.size()) < options_.max_batch) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    const TimeUs start_us = clock_.NowUs();
    std::vector<std::vector<float>> features;
    std::vector<const transport::Request*> requests;
    std::vector<const Job*> jobs;
    for (const Job& job : batch) {
      const transport::Request* request = &job.request;
      if (start_us > job.expires_us) {
        // The edge has already answered this frame itself: spend nothing on it.
        {
          std::lock_guard<std::mutex> lock(mutex_);
          stats_.expired++;
        }
        send(job.identity, ErrorReply(request->seq, transport::ReplyStatus::kBusy,
                                      "deadline passed while queued"));
        continue;
      }
      const auto& rate = manifest_.rates[request->rate_index];
      auto decoded = codec.Decode(static_cast<splitnet::Coding>(request->coding), request->payload,
                                  manifest_.bottleneck, rate);
      if (!decoded.ok()) {
        {
          std::lock_guard<std::mutex> lock(mutex_);
          stats_.rejected++;
        }
        refusals_.Note("payload", job.peer, decoded.status().message());
        send(job.identity, ErrorReply(request->seq, transport::ReplyStatus::kError,
                                      "payload: " + decoded.status().message()));
        continue;
      }
      features.push_back(std::move(decoded).value());
      requests.push_back(request);
      jobs.push_back(&job);
    }
    const TimeUs decoded_us = clock_.NowUs();
    auto predictions = model.value()->RunTail(features);
    const TimeUs done_us = clock_.NowUs();
    // Counted before the replies leave, so whoever holds a reply sees it counted.
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stats_.batches++;
      if (!jobs.empty()) {
        const double per_request = static_cast<double>(done_us - start_us) / jobs.size();
        service_us_per_request_ = service_us_per_request_ == 0.0
                                      ? per_request
                                      : 0.9 * service_us_per_request_ + 0.1 * per_request;
      }
      if (predictions.ok())
        stats_.answered += static_cast<std::int64_t>(jobs.size());
      else
        stats_.rejected += static_cast<std::int64_t>(jobs.size());
    }
    for (size_t i = 0; i < jobs.size(); ++i) {
      transport::Reply reply;
      reply.seq = requests[i]->seq;
      reply.queue_us = std::max<TimeUs>(0, start_us - jobs[i]->received_us);
      reply.decode_us = std::max<TimeUs>(0, decoded_us - start_us);
      reply.tail_us = std::max<TimeUs>(0, done_us - decoded_us);
      reply.batch_size = static_cast<int>(jobs.size());
      if (!predictions.ok()) {
        reply.status = transport::ReplyStatus::kError;
        reply.message = predictions.status().message();
      } else {
        const auto& p = (*predictions)[i];
        reply.class_id = p.class_id;
        reply.top = TopScores(p, options_.top_k);
      }
      send(jobs[i]->identity, reply);
    }
    flush();
  }
  push.close();
}

void CloudServer::SendReply(zmq::socket_t& router, const std::string& identity,
                            const std::vector<std::uint8_t>& reply) {
  try {
    router.send(zmq::buffer(identity), zmq::send_flags::sndmore | zmq::send_flags::dontwait);
    router.send(zmq::buffer(reply), zmq::send_flags::dontwait);
  } catch (const zmq::error_t& e) {
    spdlog::debug("reply dropped: {}", e.what());
  }
}

void CloudServer::Refuse(zmq::socket_t& router, const std::string& identity,
                         const std::string& peer, std::optional<std::uint16_t> seq,
                         const char* kind, const std::string& message) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.received++;
    stats_.rejected++;
  }
  refusals_.Note(kind, peer, message);
  SendReply(
      router, identity,
      transport::EncodeReply(ErrorReply(seq.value_or(0), transport::ReplyStatus::kError, message)));
}

void CloudServer::HandleRequest(zmq::socket_t& router, const std::string& identity,
                                const std::string& peer, std::span<const std::uint8_t> bytes) {
  auto request = transport::DecodeRequest(bytes);
  if (!request.ok()) {
    const char* kind = bytes.size() > transport::kMaxMessageBytes ? "oversize" : "malformed";
    Refuse(router, identity, peer, transport::PeekRequestSeq(bytes), kind,
           request.status().message());
    return;
  }
  if (Status valid = CheckAgainstModel(*request, manifest_); !valid.ok()) {
    Refuse(router, identity, peer, request->seq, "model", valid.message());
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.received++;
  }
  const char* reason = "";
  {
    std::lock_guard<std::mutex> lock(mutex_);
    const TimeUs now = clock_.NowUs();
    const TimeUs expires = now + TimeUs{request->deadline_ms} * 1000;
    // The wait this request would see: the queue ahead of it (and itself)
    // shared by the workers. Refused now, the edge answers locally at once
    // instead of at its deadline, and no worker time goes to a lost cause.
    const double expected_us = service_us_per_request_ * static_cast<double>(queue_.size() + 1) /
                               static_cast<double>(options_.threads);
    const bool full = static_cast<int>(queue_.size()) >= options_.max_queue;
    const bool hopeless = now + static_cast<TimeUs>(expected_us) > expires;
    if (!full && !hopeless) {
      queue_.push_back(Job{identity, peer, std::move(request).value(), now, expires});
      queue_ready_.notify_one();
      return;
    }
    stats_.busy++;
    if (!full) stats_.hopeless++;
    reason = full ? "queue full" : "the queue would outlast the deadline";
  }
  SendReply(
      router, identity,
      transport::EncodeReply(ErrorReply(request->seq, transport::ReplyStatus::kBusy, reason)));
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
  const std::span<const std::uint8_t> bytes(body.data<std::uint8_t>(), body.size());
  if (frames != 1) {
    Refuse(router, id, peer, transport::PeekRequestSeq(bytes), "multipart",
           "a request must be one message frame; this message had " + std::to_string(frames));
    return true;
  }
  HandleRequest(router, id, peer, bytes);
  return true;
}

void CloudServer::Run(const std::atomic<bool>& stop) {
  zmq::pollitem_t items[] = {{static_cast<void*>(*router_), 0, ZMQ_POLLIN, 0},
                             {static_cast<void*>(*results_), 0, ZMQ_POLLIN, 0}};
  TimeUs next_stats_us = clock_.NowUs() + static_cast<TimeUs>(options_.stats_interval_s * 1e6);
  CloudStats last;
  while (!stop.load()) {
    try {
      zmq::poll(items, 2, std::chrono::milliseconds(100));
      // Replies first: they finish work already paid for.
      while (items[1].revents & ZMQ_POLLIN) {
        zmq::message_t identity, reply;
        if (!results_->recv(identity, zmq::recv_flags::dontwait)) break;
        for (;;) {
          (void)results_->recv(reply);
          const bool more = reply.more();
          router_->send(identity, zmq::send_flags::sndmore | zmq::send_flags::dontwait);
          router_->send(reply, zmq::send_flags::dontwait);
          if (!more) break;
          (void)results_->recv(identity);
        }
      }
      for (int i = 0; i < 256 && (items[0].revents & ZMQ_POLLIN); ++i)
        if (!ReceiveOne(*router_)) break;
    } catch (const zmq::error_t& e) {
      if (e.num() == ETERM) break;
      if (e.num() == EINTR) continue;  // a signal; `stop` says whether to go on
      spdlog::warn("socket error: {}", e.what());
    }
    refusals_.Flush();
    if (options_.stats_interval_s > 0 && clock_.NowUs() >= next_stats_us) {
      CloudStats s = stats();
      spdlog::info("served {} (+{}), errors {}, busy {}, expired {}, mean batch {:.1f}", s.answered,
                   s.answered - last.answered, s.rejected, s.busy, s.expired,
                   s.batches ? double(s.answered) / s.batches : 0.0);
      last = s;
      next_stats_us += static_cast<TimeUs>(options_.stats_interval_s * 1e6);
    }
  }
}

CloudStats CloudServer::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

}  // namespace deepcut::cloud
