#include "eval/harvest_eval.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <numeric>
#include <random>
#include <sstream>

#include <opencv2/imgproc.hpp>

#include "eval/camera_profile.h"
#include "harvest/harvester.h"
#include "harvest/sink.h"
#include "replay/replay.h"
#include "scheduler/policy.h"
#include "splitnet/manifest.h"
#include "splitnet/split_model.h"
#include "trace/fashion_mnist.h"
#include "trace/frame_source.h"
#include "trace/frame_trace.h"
#include "trace/scene_maker.h"

namespace deepcut::eval {
namespace fs = std::filesystem;
namespace {

// The shift: FILE.json (a single profile) or FILE.json#NAME.
Result<Profile> LoadShift(const std::string& spec) {
  const auto hash = spec.find('#');
  const std::string path = spec.substr(0, hash);
  ASSIGN_OR_RETURN(auto profiles, LoadProfiles(path));
  if (hash == std::string::npos) {
    if (profiles.size() != 1)
      return InvalidArgument("--shift " + path + " holds " + std::to_string(profiles.size()) +
                             " profiles: name one as FILE.json#NAME");
    return profiles.front();
  }
  const std::string name = spec.substr(hash + 1);
  for (const auto& p : profiles)
    if (p.name == name) return p;
  return InvalidArgument("--shift: no profile '" + name + "' in " + path);
}

// A class mix unlike the training set's (uniform): the seed ranks the classes,
// the k-th is skew^k as common as the first.
std::vector<double> ClassMix(int classes, double skew, std::uint64_t seed) {
  std::vector<int> order(classes);
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(seed * 7919 + 13);
  std::shuffle(order.begin(), order.end(), rng);
  std::vector<double> mix(classes);
  double total = 0.0;
  for (int k = 0; k < classes; ++k) total += mix[order[k]] = std::pow(skew, k);
  for (auto& m : mix) m /= total;
  return mix;
}

// `count` items drawn from `set` with the class mix (with replacement).
trace::LabelledImages Resample(const trace::LabelledImages& set, const std::vector<double>& mix,
                               std::int64_t count, std::uint64_t seed) {
  std::vector<std::vector<std::int64_t>> by_class(mix.size());
  for (std::int64_t i = 0; i < set.count(); ++i)
    if (set.labels[i] >= 0 && set.labels[i] < static_cast<int>(mix.size()))
      by_class[set.labels[i]].push_back(i);
  std::mt19937_64 rng(seed);
  std::discrete_distribution<int> pick_class(mix.begin(), mix.end());
  trace::LabelledImages out;
  out.rows = set.rows;
  out.cols = set.cols;
  out.classes = set.classes;
  const std::size_t plane = static_cast<std::size_t>(set.rows) * set.cols;
  for (std::int64_t n = 0; n < count; ++n) {
    const int c = pick_class(rng);
    if (by_class[c].empty()) continue;
    const auto i =
        by_class[c][std::uniform_int_distribution<std::size_t>(0, by_class[c].size() - 1)(rng)];
    out.pixels.insert(out.pixels.end(), set.pixels.begin() + i * plane,
                      set.pixels.begin() + (i + 1) * plane);
    out.labels.push_back(c);
  }
  return out;
}

// A scene stream of `items` under the shift, written as a frame trace.
Status WriteShiftedTrace(const std::string& path, trace::LabelledImages items, const Profile& shift,
                         const HarvestEvalOptions& o, std::int64_t frames, std::uint64_t seed,
                         const std::string& source) {
  trace::SceneOptions so;
  so.frames = frames;
  so.fps = o.fps;
  so.seed = seed;
  so.mean_dwell_s = o.mean_dwell_s;
  ASSIGN_OR_RETURN(auto maker, trace::SceneMaker::Create(std::move(items), so));
  trace::FrameTraceHeader header;
  header.fps = o.fps;
  header.source = source + " under " + shift.name;
  header.seed = static_cast<std::int64_t>(seed);
  header.scene_starts_marked = true;
  header.classes = trace::FashionMnistClasses();
  header.params = maker->Params();
  header.params["shift"] = shift.name;
  header.params["capture_scale"] = o.capture_scale;
  ASSIGN_OR_RETURN(auto writer, trace::FrameTraceWriter::Create(path, header));
  while (auto f = maker->Next()) {
    cv::Mat image = f->image;
    if (o.capture_scale > 1)
      cv::resize(image, image, cv::Size(image.cols * o.capture_scale, image.rows * o.capture_scale),
                 0, 0, cv::INTER_CUBIC);
    ASSIGN_OR_RETURN(image, ApplyProfile(shift, image, seed * 1000003u + f->index));
    RETURN_IF_ERROR(writer->Append(image, f->capture_us, f->label, f->scene_start));
  }
  return writer->Finish();
}

// The exit's accuracy over a trace's labelled frames.
Result<double> ExitAccuracy(const splitnet::Manifest& manifest, const std::string& trace_path) {
  ASSIGN_OR_RETURN(auto model, splitnet::SplitModel::Load(
                                   manifest, {.head = true, .exit = true, .tail = false}));
  ASSIGN_OR_RETURN(auto source, trace::OpenSource({.spec = "trace:" + trace_path}));
  std::int64_t right = 0, labelled = 0;
  for (;;) {
    ASSIGN_OR_RETURN(auto frame, source->Next());
    if (!frame) break;
    if (frame->label < 0) continue;
    ASSIGN_OR_RETURN(auto input, model->Preprocess(frame->image));
    ASSIGN_OR_RETURN(auto features, model->RunHead(input));
    ASSIGN_OR_RETURN(auto p, model->RunExit(features));
    ++labelled;
    right += p.class_id == frame->label;
  }
  if (labelled == 0) return InvalidArgument(trace_path + " has no labelled frames");
  return static_cast<double>(right) / labelled;
}

replay::ReplayOptions ReplayOptionsFor(const HarvestEvalOptions& o, const std::string& trace_path,
                                       std::uint64_t seed) {
  replay::ReplayOptions r;
  r.source = "trace:" + trace_path;
  r.uplink = o.uplink;
  r.budget_bps = o.budget_bps;
  r.seed = seed;
  return r;
}

// The delivered accuracy of the policy's answers over a trace.
Result<double> DeliveredAccuracy(const splitnet::Manifest& manifest, const HarvestEvalOptions& o,
                                 const std::string& trace_path, std::uint64_t seed) {
  ASSIGN_OR_RETURN(auto replayer,
                   replay::Replayer::Create(manifest, ReplayOptionsFor(o, trace_path, seed)));
  const auto choice = scheduler::ParsePolicyChoice(o.policy);
  ASSIGN_OR_RETURN(auto policy, scheduler::MakePolicy(replayer->PolicyOptionsFor(choice.name)));
  ASSIGN_OR_RETURN(auto m, replayer->Run(*policy, nullptr, choice.fusion));
  return m.summary.Accuracy();
}

struct RunResult {
  std::int64_t stored_frames = 0, stored_bytes = 0, uploaded_bytes = 0, kept = 0;
  double exit_after = 0.0, delivered_after = 0.0;
  nlohmann::json finetune;
  bool trained = false;
};

std::string Quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// One sampler at one budget: harvest the train stream, fine-tune, measure.
Result<RunResult> RunOne(const splitnet::Manifest& manifest, const HarvestEvalOptions& o,
                         const std::string& sampler, std::int64_t budget_frames, std::uint64_t seed,
                         const std::string& train_trace, const std::string& test_trace,
                         const fs::path& dir) {
  RunResult r;
  const std::string tag = sampler + "-" + std::to_string(budget_frames);
  const std::string edge_db = (dir / ("edge-" + tag + ".db")).string();
  const std::string cloud_db = (dir / ("cloud-" + tag + ".db")).string();
  for (const auto& f : {edge_db, cloud_db}) {
    std::error_code ec;
    for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(f + suffix, ec);
  }
  const double duration_s = o.train_frames / o.fps;
  harvest::HarvesterOptions ho;
  ho.store_path = edge_db;
  ASSIGN_OR_RETURN(ho.sampler.kind, harvest::ParseSampler(sampler));
  ho.sampler.seed = seed;
  ho.sampler.explore = o.explore;
  if (o.weights.size() == 4)
    ho.sampler.weights = {o.weights[0], o.weights[1], o.weights[2], o.weights[3]};
  ho.sampler.budget.frames_per_hour = budget_frames / duration_s * 3600.0;
  ho.sampler.budget.burst_s = std::max(1.0, duration_s / 10.0);
  ho.sampler.budget.max_frames = budget_frames;
  ASSIGN_OR_RETURN(auto replayer,
                   replay::Replayer::Create(manifest, ReplayOptionsFor(o, train_trace, seed)));
  {
    ASSIGN_OR_RETURN(auto harvester, harvest::Harvester::Create(ho, manifest));
    ASSIGN_OR_RETURN(auto sink, harvest::HarvestSink::Open(cloud_db, manifest));
    replayer->SetHarvest(harvester.get(), sink.get(), 3600.0);
    const auto choice = scheduler::ParsePolicyChoice(o.policy);
    ASSIGN_OR_RETURN(auto policy, scheduler::MakePolicy(replayer->PolicyOptionsFor(choice.name)));
    ASSIGN_OR_RETURN(auto m, replayer->Run(*policy, nullptr, choice.fusion));
    (void)m;
    replayer->SetHarvest(nullptr, nullptr, 0.0);
    harvester->Close();
    const auto c = harvester->counters();
    r.kept = c.committed;
    r.uploaded_bytes = c.upload_bytes;
    ASSIGN_OR_RETURN(auto totals, sink->store().Totals());
    r.stored_frames = totals.frames;
    r.stored_bytes = totals.bytes;
  }
  if (r.stored_frames == 0) {
    r.exit_after = -1;  // nothing to train on: the package stays as it was
    return r;
  }
  const fs::path out = dir / ("pkg-" + tag);
  const fs::path summary = dir / ("finetune-" + tag + ".json");
  std::error_code ec;
  fs::remove_all(out, ec);
  const std::string cmd = Quote(o.python) + " " + Quote(o.trainer) + " --model " +
                          Quote(manifest.dir.string()) + " --store " + Quote(cloud_db) + " --out " +
                          Quote(out.string()) + " --labels " + o.labels + " --part " + o.part +
                          " --seed " + std::to_string(seed) + " --summary " +
                          Quote(summary.string()) + " --quiet";
  // Its output goes to a log beside the store, shown when it fails.
  const fs::path log = dir / ("finetune-" + tag + ".log");
  if (std::system((cmd + " > " + Quote(log.string()) + " 2>&1").c_str()) != 0) {
    std::ifstream failed(log);
    std::stringstream text;
    text << failed.rdbuf();
    const std::string all = text.str();
    return Internal("fine-tuning failed: " + cmd + "\n" +
                    all.substr(all.size() > 1500 ? all.size() - 1500 : 0));
  }
  std::ifstream in(summary);
  r.finetune = nlohmann::json::parse(in, nullptr, false);
  ASSIGN_OR_RETURN(auto tuned, splitnet::LoadManifest(out));
  ASSIGN_OR_RETURN(r.exit_after, ExitAccuracy(tuned, test_trace));
  ASSIGN_OR_RETURN(r.delivered_after, DeliveredAccuracy(tuned, o, test_trace, seed));
  r.trained = true;
  return r;
}

// Mean and the half-width of a 95% interval (t for small n).
std::pair<double, double> MeanCi(const std::vector<double>& v) {
  if (v.empty()) return {0.0, 0.0};
  const double mean = std::accumulate(v.begin(), v.end(), 0.0) / v.size();
  if (v.size() < 2) return {mean, 0.0};
  double ss = 0.0;
  for (double x : v) ss += (x - mean) * (x - mean);
  static const double t[] = {12.71, 4.30, 3.18, 2.78, 2.57, 2.45, 2.36, 2.31, 2.26};
  const double tq = v.size() - 2 < 9 ? t[v.size() - 2] : 1.96;
  return {mean, tq * std::sqrt(ss / (v.size() - 1) / v.size())};
}

}  // namespace

Result<nlohmann::json> RunHarvestEval(const HarvestEvalOptions& o) {
  // Everything checked before any work.
  ASSIGN_OR_RETURN(auto manifest, splitnet::LoadManifest(o.model_dir));
  ASSIGN_OR_RETURN(const Profile shift, LoadShift(o.shift));
  if (o.seeds.empty()) return InvalidArgument("--seed: at least one seed");
  if (!o.weights.empty() && o.weights.size() != 4)
    return InvalidArgument(
        "--harvest-weights needs four numbers: uncertainty,disagreement,novelty,rarity");
  if (o.storage_frames.empty()) return InvalidArgument("--storage-frames: at least one budget");
  for (auto k : o.storage_frames)
    if (k < 1) return InvalidArgument("--storage-frames must be >= 1");
  for (const auto& s : o.samplers) RETURN_IF_ERROR(harvest::ParseSampler(s).status());
  if (o.train_frames < 10 || o.test_frames < 10)
    return InvalidArgument("--train-frames and --test-frames must be >= 10");
  if (o.labels != "cloud" && o.labels != "true")
    return InvalidArgument("--labels must be cloud or true");
  if (o.part != "exit" && o.part != "head") return InvalidArgument("--part must be exit or head");
  if (!(o.class_skew > 0 && o.class_skew <= 1))
    return InvalidArgument("--class-skew must be in (0, 1]");
  if (!fs::is_regular_file(o.trainer)) return NotFound("trainer " + o.trainer + " not found");
  ASSIGN_OR_RETURN(auto train_set, trace::LoadFashionMnist(o.fashion_mnist_dir, "train"));
  ASSIGN_OR_RETURN(auto test_set, trace::LoadFashionMnist(o.fashion_mnist_dir, "test"));

  fs::path dir = o.work_dir;
  const bool temporary = dir.empty();
  if (temporary) {
    std::string tmpl = (fs::temp_directory_path() / "deepcut-harvest-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) return Unavailable("cannot make a temporary folder");
    dir = tmpl;
  } else {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) return InvalidArgument("--work-dir " + dir.string() + ": " + ec.message());
  }
  struct Cleanup {
    fs::path dir;
    bool on;
    ~Cleanup() {
      std::error_code ec;
      if (on) fs::remove_all(dir, ec);
    }
  } cleanup{dir, temporary};

  const auto started = std::chrono::steady_clock::now();
  const int classes = static_cast<int>(manifest.classes.size());
  nlohmann::json runs = nlohmann::json::array();
  // [sampler][budget] -> per-seed values
  std::map<std::string, std::map<std::int64_t, std::vector<nlohmann::json>>> by;
  std::vector<double> exit_before_all, delivered_before_all;
  const std::size_t total_runs = o.seeds.size() * o.samplers.size() * o.storage_frames.size();
  std::size_t done = 0;
  for (const auto seed : o.seeds) {
    const auto mix = ClassMix(classes, o.class_skew, seed);
    const std::string train_trace = (dir / ("train-" + std::to_string(seed) + ".trace")).string();
    const std::string test_trace = (dir / ("test-" + std::to_string(seed) + ".trace")).string();
    if (o.progress) std::cerr << "seed " << seed << ": making the shifted streams\n";
    RETURN_IF_ERROR(WriteShiftedTrace(train_trace,
                                      Resample(train_set, mix, o.train_frames, seed * 31 + 1),
                                      shift, o, o.train_frames, seed, "scene:fashion-mnist:train"));
    RETURN_IF_ERROR(WriteShiftedTrace(test_trace,
                                      Resample(test_set, mix, o.test_frames, seed * 31 + 2), shift,
                                      o, o.test_frames, seed + 100000, "scene:fashion-mnist:test"));
    ASSIGN_OR_RETURN(const double exit_before, ExitAccuracy(manifest, test_trace));
    ASSIGN_OR_RETURN(const double delivered_before,
                     DeliveredAccuracy(manifest, o, test_trace, seed));
    exit_before_all.push_back(exit_before);
    delivered_before_all.push_back(delivered_before);
    if (o.progress)
      std::cerr << "seed " << seed << ": before fine-tuning, exit " << std::fixed
                << std::setprecision(4) << exit_before << ", delivered " << delivered_before
                << "\n";
    for (const auto& sampler : o.samplers)
      for (const auto k : o.storage_frames) {
        const auto t0 = std::chrono::steady_clock::now();
        ASSIGN_OR_RETURN(auto r,
                         RunOne(manifest, o, sampler, k, seed, train_trace, test_trace, dir));
        if (!r.trained) {
          r.exit_after = exit_before;
          r.delivered_after = delivered_before;
        }
        const double wall =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        nlohmann::json j{{"seed", seed},
                         {"sampler", sampler},
                         {"storage_frames", k},
                         {"stored_frames", r.stored_frames},
                         {"stored_bytes", r.stored_bytes},
                         {"uploaded_bytes", r.uploaded_bytes},
                         {"accuracy_before", exit_before},
                         {"accuracy_after", r.exit_after},
                         {"delivered_before", delivered_before},
                         {"delivered_after", r.delivered_after},
                         {"trained", r.trained},
                         {"finetune", r.finetune},
                         {"wall_s", wall}};
        runs.push_back(j);
        by[sampler][k].push_back(j);
        ++done;
        if (o.progress)
          std::cerr << "[" << done << "/" << total_runs << "] seed " << seed << " " << sampler
                    << " budget " << k << ": stored " << r.stored_frames << " frames ("
                    << r.stored_bytes << " B), uploaded " << r.uploaded_bytes
                    << " B, exit accuracy " << std::setprecision(4) << exit_before << " -> "
                    << r.exit_after << ", delivered " << delivered_before << " -> "
                    << r.delivered_after << " (" << std::setprecision(1) << wall << " s)\n";
      }
  }

  const auto [exit_before_mean, exit_before_ci] = MeanCi(exit_before_all);
  const auto [del_before_mean, del_before_ci] = MeanCi(delivered_before_all);
  // The samplers' entries are at the first budget given; the curve has them all.
  const std::int64_t main_k = o.storage_frames.front();
  nlohmann::json samplers = nlohmann::json::object();
  for (const auto& [name, per_k] : by) {
    nlohmann::json curve = nlohmann::json::array();
    for (const auto& [k, list] : per_k) {
      std::vector<double> after, gain, del_after, stored, bytes, up;
      for (const auto& j : list) {
        after.push_back(j["accuracy_after"]);
        gain.push_back(j["accuracy_after"].get<double>() - j["accuracy_before"].get<double>());
        del_after.push_back(j["delivered_after"]);
        stored.push_back(j["stored_frames"]);
        bytes.push_back(j["stored_bytes"]);
        up.push_back(j["uploaded_bytes"]);
      }
      const auto a = MeanCi(after), g = MeanCi(gain), d = MeanCi(del_after);
      curve.push_back({{"storage_frames", k},
                       {"stored_frames", MeanCi(stored).first},
                       {"stored_bytes", MeanCi(bytes).first},
                       {"uploaded_bytes", MeanCi(up).first},
                       {"accuracy_after", a.first},
                       {"accuracy_after_ci95", a.second},
                       {"gain", g.first},
                       {"gain_ci95", g.second},
                       {"delivered_after", d.first},
                       {"delivered_after_ci95", d.second}});
    }
    nlohmann::json main;
    for (const auto& c : curve)
      if (c["storage_frames"] == main_k) main = c;
    samplers[name] = {{"storage_frames", main_k},
                      {"accuracy_before", exit_before_mean},
                      {"accuracy_after", main["accuracy_after"]},
                      {"accuracy_after_ci95", main["accuracy_after_ci95"]},
                      {"gain", main["gain"]},
                      {"gain_ci95", main["gain_ci95"]},
                      {"delivered_before", del_before_mean},
                      {"delivered_after", main["delivered_after"]},
                      {"stored_frames", main["stored_frames"]},
                      {"stored_bytes", main["stored_bytes"]},
                      {"uploaded_bytes", main["uploaded_bytes"]},
                      {"curve", curve}};
  }
  nlohmann::json claims = nlohmann::json::object();
  if (samplers.contains("harvest") && samplers.contains("random")) {
    const double gh = samplers["harvest"]["gain"], gr = samplers["random"]["gain"];
    claims["gain_ratio_vs_random"] = gr > 0 ? nlohmann::json(gh / gr) : nlohmann::json(nullptr);
    // The fewest stored frames at which the harvester's curve reaches random's
    // accuracy at the largest budget (linear between the measured budgets).
    const auto& random_curve = samplers["random"]["curve"];
    const double target = random_curve.back()["accuracy_after"];
    nlohmann::json frames = nullptr;
    const auto& hc = samplers["harvest"]["curve"];
    for (std::size_t i = 0; i < hc.size(); ++i) {
      const double acc = hc[i]["accuracy_after"], n = hc[i]["stored_frames"];
      if (acc < target) continue;
      if (i == 0) {
        frames = n;
      } else {
        const double a0 = hc[i - 1]["accuracy_after"], n0 = hc[i - 1]["stored_frames"];
        frames = n0 + (n - n0) * (target - a0) / std::max(1e-9, acc - a0);
      }
      break;
    }
    nlohmann::json per_budget = nlohmann::json::object();
    const auto& rc = samplers["random"]["curve"];
    for (std::size_t i = 0; i < hc.size() && i < rc.size(); ++i) {
      const double g = rc[i]["gain"];
      per_budget[std::to_string(hc[i]["storage_frames"].get<std::int64_t>())] =
          g > 0 ? nlohmann::json(hc[i]["gain"].get<double>() / g) : nlohmann::json(nullptr);
    }
    claims["gain_ratio_vs_random_per_budget"] = per_budget;
    claims["frames_to_reach_random"] = frames;
    claims["random_frames"] = random_curve.back()["stored_frames"];
    claims["random_accuracy"] = target;
    claims["frames_fraction_of_random"] =
        frames.is_null()
            ? nlohmann::json(nullptr)
            : nlohmann::json(frames.get<double>() /
                             std::max(1.0, random_curve.back()["stored_frames"].get<double>()));
  }
  return nlohmann::json{
      {"model", manifest.name},
      {"model_dir", o.model_dir},
      {"shift", {{"spec", o.shift}, {"name", shift.name}, {"description", shift.description}}},
      {"seeds", o.seeds},
      {"storage_frames", o.storage_frames},
      {"train_frames", o.train_frames},
      {"test_frames", o.test_frames},
      {"fps", o.fps},
      {"capture_scale", o.capture_scale},
      {"class_skew", o.class_skew},
      {"policy", o.policy},
      {"uplink", o.uplink},
      {"budget_bps", o.budget_bps},
      {"labels", o.labels},
      {"part", o.part},
      {"accuracy_before",
       {{"exit", exit_before_mean},
        {"exit_ci95", exit_before_ci},
        {"delivered", del_before_mean},
        {"delivered_ci95", del_before_ci}}},
      {"samplers", samplers},
      {"claims", claims},
      {"runs", runs},
      {"wall_s",
       std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count()}};
}

std::string HarvestMarkdown(const nlohmann::json& r) {
  std::ostringstream md;
  md << std::fixed;
  const auto pct = [](double v) {
    std::ostringstream s;
    s << std::fixed << std::setprecision(2) << 100.0 * v;
    return s.str();
  };
  md << "## Harvest: " << r["model"].get<std::string>() << " under `"
     << r["shift"]["name"].get<std::string>() << "`\n\n"
     << r["train_frames"] << " train-split frames streamed per run, " << r["test_frames"]
     << " test-split frames measured, seeds " << r["seeds"].dump() << ", labels from the "
     << r["labels"].get<std::string>() << ", fine-tuned part: " << r["part"].get<std::string>()
     << ". Exit accuracy before: " << pct(r["accuracy_before"]["exit"]) << " ± "
     << pct(r["accuracy_before"]["exit_ci95"]) << " %, delivered "
     << pct(r["accuracy_before"]["delivered"]) << " %.\n\n"
     << "| sampler | budget (frames) | stored frames | stored bytes | uploaded bytes | exit "
        "accuracy after (%) | gain (points) | delivered after (%) |\n"
     << "|---|---:|---:|---:|---:|---:|---:|---:|\n";
  for (const auto& [name, s] : r["samplers"].items())
    md << "| " << name << " | " << s["storage_frames"] << " | " << std::setprecision(1)
       << s["stored_frames"].get<double>() << " | " << std::setprecision(0)
       << s["stored_bytes"].get<double>() << " | " << s["uploaded_bytes"].get<double>() << " | "
       << pct(s["accuracy_after"]) << " ± " << pct(s["accuracy_after_ci95"]) << " | "
       << pct(s["gain"]) << " ± " << pct(s["gain_ci95"]) << " | " << pct(s["delivered_after"])
       << " |\n";
  md << "\n### Exit accuracy after fine-tuning against stored frames\n\n| sampler |";
  std::vector<std::int64_t> budgets = r["storage_frames"].get<std::vector<std::int64_t>>();
  std::sort(budgets.begin(), budgets.end());
  for (const auto& k : budgets) md << " " << k << " |";
  md << "\n|---|";
  for (std::size_t i = 0; i < budgets.size(); ++i) md << "---:|";
  md << "\n";
  for (const auto& [name, s] : r["samplers"].items()) {
    md << "| " << name << " |";
    for (const auto& c : s["curve"])
      md << " " << pct(c["accuracy_after"]) << " (" << std::setprecision(0)
         << c["stored_frames"].get<double>() << " fr) |";
    md << "\n";
  }
  const auto& c = r["claims"];
  if (c.contains("gain_ratio_vs_random")) {
    md << "\nHarvester's gain / random's gain at " << r["samplers"]["harvest"]["storage_frames"]
       << " frames: "
       << (c["gain_ratio_vs_random"].is_null()
               ? std::string("n/a (random gained nothing)")
               : [&] {
                   std::ostringstream s;
                   s << std::fixed;
                   s << std::setprecision(2) << c["gain_ratio_vs_random"].get<double>() << "x";
                   return s.str();
                 }())
       << ". Frames the harvester needs to reach random's accuracy at "
       << c["random_frames"].get<double>() << " frames: "
       << (c["frames_to_reach_random"].is_null()
               ? std::string("not reached within the measured budgets")
               : [&] {
                   std::ostringstream s;
                   s << std::fixed;
                   s << std::setprecision(0) << c["frames_to_reach_random"].get<double>() << " ("
                     << std::setprecision(2) << c["frames_fraction_of_random"].get<double>()
                     << " of random's)";
                   return s.str();
                 }())
       << ".\n";
  }
  return md.str();
}

}  // namespace deepcut::eval
