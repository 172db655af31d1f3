#include "edge/edge_app.h"

#include <unistd.h>

#include <spdlog/spdlog.h>

#include <iostream>

#include "core/units.h"
#include "edge/answer_log.h"
#include "edge/control.h"
#include "edge/edge_metrics.h"
#include "metrics/metrics_server.h"
#include "splitnet/manifest.h"
#include "transport/curve_keys.h"
#include "transport/multi_link.h"

namespace deepcut::edge {
namespace {

using cli::Fail;

Status Named(const std::string& what, const Status& s) {
  return Status(s.code(), what + ": " + s.message());
}

nlohmann::json CountersJson(const EdgeCounters& c) {
  return {{"offloads_sent", c.offloads_sent},
          {"replies_in_time", c.replies_in_time},
          {"replies_late", c.replies_late},
          {"replies_malformed", c.replies_malformed},
          {"replies_error", c.replies_error},
          {"replies_busy", c.replies_busy},
          {"reconnects", c.reconnects},
          {"replies_draining", c.replies_draining},
          {"resent", c.resent}};
}

nlohmann::json HarvestJson(const harvest::Harvester& h, const std::string& sampler) {
  const auto c = h.counters();
  const auto t = h.totals();
  return {{"store", h.options().store_path},
          {"edge_id", harvest::EdgeIdText(h.edge_id())},
          {"sampler", sampler},
          {"frames_per_hour", h.budget().frames_per_hour},
          {"offered", c.offered},
          {"kept", c.kept},
          {"dropped", c.dropped},
          {"committed", c.committed},
          {"store_errors", c.store_errors},
          {"stored_frames", t.frames},
          {"stored_bytes", t.bytes},
          {"unsent", t.unsent},
          {"chunks_sent", c.chunks_sent},
          {"chunks_resent", c.chunks_resent},
          {"items_uploaded", c.items_uploaded},
          {"items_refused", c.items_refused},
          {"upload_bytes", c.upload_bytes},
          {"verdicts", c.verdicts}};
}

}  // namespace

cli::Outcome RunEdgeApp(EdgeAppOptions o, const std::atomic<bool>& stop) {
  // First, so that a bad address or a port in use fails before any work.
  std::unique_ptr<metrics::MetricsServer> metrics_server;
  std::shared_ptr<EdgeMetrics> metrics;
  if (!o.metrics_listen.empty()) {
    auto started = metrics::MetricsServer::Start({.listen = o.metrics_listen});
    if (!started.ok())
      return Fail(cli::kExitBadOption, Named("--metrics-listen", started.status()));
    metrics_server = std::move(*started);
    metrics = std::make_shared<EdgeMetrics>();
    metrics_server->Add(metrics);
    spdlog::info("metrics and health on http://{} (/metrics, /healthz, /ready)",
                 metrics_server->address());
  }
  auto manifest = splitnet::LoadManifest(o.model_dir);
  if (!manifest.ok()) return Fail(cli::kExitBadModel, manifest.status());
  auto model = splitnet::SplitModel::Load(*manifest, {.head = true, .exit = true, .tail = false});
  if (!model.ok()) return Fail(cli::kExitBadModel, model.status());
  auto budget = ParseBitRate(o.budget_text);
  if (!budget.ok()) return Fail(cli::kExitBadOption, Named("--budget", budget.status()));
  const scheduler::PolicyChoice choice = scheduler::ParsePolicyChoice(o.policy_name);
  o.policy.name = choice.name;
  if (o.fusion == "auto")
    o.runtime.fuse_scene = choice.fusion;
  else
    o.runtime.fuse_scene = o.fusion == "on";
  o.policy.budget_bps = *budget;
  o.policy.model = ModelFactsOf(*manifest);
  if (choice.name == "learned") {
    auto net = LoadPolicyNet(*manifest, o.policy_weights);
    if (!net.ok()) return Fail(cli::kExitBadOption, Named("--policy-weights", net.status()));
    o.policy.learned = *net;
  }
  auto policy = scheduler::MakePolicy(o.policy);
  if (!policy.ok()) return Fail(cli::kExitBadOption, Named("--policy", policy.status()));

  auto endpoints = transport::ParseEndpointList(o.cloud_endpoint);
  if (!endpoints.ok()) return Fail(cli::kExitBadOption, Named("--cloud", endpoints.status()));
  RealClock clock;
  transport::ZmqLinkOptions link_options;
  if (!o.cloud_key_file.empty()) {
    auto keys = transport::LoadClientCurveKeys(o.cloud_key_file, o.curve_key_file);
    if (!keys.ok()) return Fail(cli::kExitBadOption, keys.status());
    link_options.curve_server_key = keys->server_public_key;
    link_options.curve_public_key = keys->own.public_key;
    link_options.curve_secret_key = keys->own.secret_key;
    spdlog::info("CURVE on: cloud key {}, edge key {}", keys->server_public_key,
                 keys->own.public_key);
  }
  auto link = transport::MultiLink::Create({.endpoints = *endpoints,
                                            .link = link_options,
                                            .resolve_interval_s = o.resolve_interval_s,
                                            .rebalance_s = o.rebalance_s},
                                           clock);
  if (!link.ok()) return Fail(cli::kExitBadOption, Named("--cloud", link.status()));
  auto source = trace::OpenSource(o.source);
  if (!source.ok()) return Fail(cli::kExitBadInput, Named("--source", source.status()));

  std::int64_t expected = (*source)->Remaining();
  if (o.stream.max_frames >= 0 && (expected < 0 || expected > o.stream.max_frames))
    expected = o.stream.max_frames;
  auto log = AnswerLog::Create(
      {.jsonl_path = o.out_path,
       .summary_path = o.summary_path,
       .progress = o.progress == "on" || (o.progress == "auto" && ::isatty(STDERR_FILENO)),
       .expected_frames = expected},
      manifest->classes);
  if (!log.ok()) return Fail(cli::kExitBadOption, log.status());
  auto runtime =
      EdgeRuntime::Create(o.runtime, **model, **policy, **link, clock, [&](const Answer& a) {
        (*log)->Record(a);
        if (metrics) metrics->OnAnswer(a);
      });
  if (!runtime.ok()) return Fail(cli::kExitBadOption, runtime.status());
  std::unique_ptr<ExrayRecorder> recorder;
  if (!o.exray.dir.empty()) {
    auto created = ExrayRecorder::Create(o.exray, *manifest);
    if (!created.ok()) return Fail(cli::kExitBadOption, Named("--exray-out", created.status()));
    recorder = std::move(*created);
    (*runtime)->SetRecorder(recorder.get());
    spdlog::info("recording every {} frame(s) into {} (cap {} bytes)", o.exray.every, o.exray.dir,
                 o.exray.max_bytes);
  }
  std::unique_ptr<harvest::Harvester> harvester;
  if (!o.harvest.store_path.empty()) {
    auto sampler = harvest::ParseSampler(o.harvest_sampler);
    if (!sampler.ok())
      return Fail(cli::kExitBadOption, Named("--harvest-sampler", sampler.status()));
    o.harvest.sampler.kind = *sampler;
    if (Status b = harvest::ParseHarvestBudget(o.harvest_budget, o.harvest.sampler.budget); !b.ok())
      return Fail(cli::kExitBadOption, Named("--harvest-budget", b));
    auto created = harvest::Harvester::Create(o.harvest, *manifest);
    if (!created.ok()) return Fail(cli::kExitBadOption, Named("--harvest-db", created.status()));
    harvester = std::move(*created);
    (*runtime)->SetHarvester(harvester.get());
    const auto t = harvester->totals();
    spdlog::info(
        "harvesting with the {} sampler at {} into {} (edge {}, {} frames stored, {} to "
        "upload)",
        o.harvest_sampler, o.harvest_budget, o.harvest.store_path,
        harvest::EdgeIdText(harvester->edge_id()), t.frames, t.unsent);
  }
  spdlog::info(
      "model {} ({}), policy {}, budget {}, rate {}, cloud {}", manifest->name, o.model_dir,
      o.policy_name, *budget > 0 ? o.budget_text + " bit/s" : std::string("unlimited"),
      o.runtime.rate.empty() ? manifest->rates[manifest->default_rate_index].name : o.runtime.rate,
      o.cloud_endpoint);

  std::unique_ptr<ControlServer> control;
  if (!o.control_endpoint.empty()) {
    auto server =
        ControlServer::Create({.endpoint = o.control_endpoint}, **runtime, clock, *budget, [&] {
          return nlohmann::json{{"answered", (*log)->answered()},
                                {"uplink_bytes", (*log)->uplink_bytes()}}
              .dump();
        });
    if (!server.ok()) return Fail(cli::kExitBadOption, Named("--control", server.status()));
    control = std::move(*server);
    control->SetHarvester(harvester.get());
    spdlog::info("control endpoint {}", control->endpoint());
  }

  const scheduler::BandwidthEstimator* estimator = (*policy)->estimator();
  auto snapshot = [&] {
    if (!metrics) return;
    EdgeSnapshot s{.counters = (*runtime)->counters(),
                   .in_flight = (*runtime)->in_flight(),
                   .budget_bps = control ? control->budget_bps() : *budget,
                   .replicas = (*link)->replicas(),
                   .link = (*link)->counters()};
    if (estimator && estimator->HasSamples()) {
      s.bandwidth_bps = estimator->EstimateBps();
      s.rtt_s = estimator->SmoothedRttUs() / 1e6;
    }
    metrics->Update(std::move(s));
  };
  if (metrics_server) metrics_server->SetReadiness([] { return true; });
  auto run = RunStream(**source, **runtime, clock, o.stream, &stop, [&] {
    if (control) control->Poll();
    snapshot();
  });
  snapshot();
  if (!run.ok()) return Fail(cli::kExitFailed, Named("run failed", run.status()));
  if (harvester && o.harvest_finish_s > 0 && !stop.load())
    (*runtime)->FinishUploads(clock.NowUs() + static_cast<TimeUs>(o.harvest_finish_s * 1e6));

  nlohmann::json extra{{"policy", o.policy_name},
                       {"budget_bps", *budget},
                       {"model", manifest->name},
                       {"source", o.source.spec},
                       {"deadline_ms", o.runtime.deadline_ms},
                       {"fps", o.stream.fps},
                       {"frames_skipped", run->frames_skipped},
                       {"counters", CountersJson((*runtime)->counters())}};
  if (recorder) {
    (*runtime)->SetRecorder(nullptr);
    recorder->Close();  // writes what is queued
    const ExrayCounters c = recorder->counters();
    extra["exray"] = {{"dir", o.exray.dir},   {"every", o.exray.every}, {"recorded", c.recorded},
                      {"skipped", c.skipped}, {"dropped", c.dropped},   {"failed", c.failed}};
  }
  if (harvester) {
    (*runtime)->SetHarvester(nullptr);
    harvester->Close();  // commits what is queued
    extra["harvest"] = HarvestJson(*harvester, o.harvest_sampler);
  }
  if (control) {
    nlohmann::json changes = nlohmann::json::array();
    for (const auto& ch : control->changes())
      changes.push_back({{"capture_s", ch.at_us / 1e6}, {"budget_bps", ch.budget_bps}});
    extra["budget_changes"] = changes;
  }
  const double seconds = (run->finished_us - run->started_us) / 1e6;
  auto summary = (*log)->Summary(run->frames_in, seconds, extra);
  if (Status finished = (*log)->Finish(summary); !finished.ok())
    return Fail(cli::kExitFailed, finished);
  std::cout << AnswerLog::SummaryTable(summary) << std::flush;
  if ((*log)->answered() != run->frames_in || (*log)->duplicates() != 0)
    return Fail(cli::kExitFailed,
                Internal("answer accounting broken: " + std::to_string(run->frames_in) +
                         " frames in, " + std::to_string((*log)->answered()) + " answers, " +
                         std::to_string((*log)->duplicates()) + " duplicates"));
  return std::nullopt;
}

}  // namespace deepcut::edge
