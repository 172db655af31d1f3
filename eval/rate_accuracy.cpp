#include "eval/rate_accuracy.h"

#include <zstd.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <opencv2/imgcodecs.hpp>
#include <sstream>

#include "splitnet/feature_codec.h"
#include "splitnet/split_model.h"
#include "trace/frame_source.h"
#include "transport/cloud_link.h"
#include "transport/protocol.h"

namespace deepcut::eval {
namespace {

// Accumulates one row: bytes and correct answers.
struct Tally {
  std::string method, setting;
  double bytes = 0, payload = 0;
  long correct = 0, n = 0;
};

// The bytes a request carrying `payload` occupies on the wire: the same
// envelope for every method, so only the representation differs.
size_t WireBytes(std::uint64_t seq, std::uint32_t fingerprint, int rate_index, int coding,
                 std::vector<std::uint8_t> payload) {
  transport::Request r;
  r.seq = static_cast<std::uint16_t>(seq);
  r.model = transport::ModelTag(fingerprint);
  r.rate_index = rate_index;
  r.deadline_ms = 200;  // a typical budget; 2 bytes on the wire
  r.coding = coding;
  r.payload = std::move(payload);
  return transport::ZmtpFrameBytes(transport::EncodeRequest(r).size());
}

int Argmax(const splitnet::Prediction& p) { return p.class_id; }

}  // namespace

Result<nlohmann::json> RunRateAccuracy(const RateAccuracyOptions& options,
                                       const Progress& progress) {
  ASSIGN_OR_RETURN(auto manifest, splitnet::LoadManifest(options.model_dir));
  ASSIGN_OR_RETURN(auto model, splitnet::SplitModel::Load(manifest));
  std::unique_ptr<splitnet::SplitModel> baseline;
  splitnet::Manifest baseline_manifest;
  if (!options.baseline_dir.empty()) {
    ASSIGN_OR_RETURN(baseline_manifest, splitnet::LoadManifest(options.baseline_dir));
    ASSIGN_OR_RETURN(baseline, splitnet::SplitModel::Load(
                                   baseline_manifest, {.head = true, .exit = false, .tail = true}));
  }
  ASSIGN_OR_RETURN(auto source,
                   trace::OpenSource({.spec = "fashion-mnist:test",
                                      .fashion_mnist_dir = options.fashion_mnist_dir}));
  const int total = options.frames < 0 ? static_cast<int>(source->Remaining())
                                       : std::min<int>(options.frames, source->Remaining());

  std::vector<Tally> rows;
  auto row = [&](const std::string& method, const std::string& setting) -> Tally& {
    for (auto& t : rows)
      if (t.method == method && t.setting == setting) return t;
    rows.push_back({method, setting});
    return rows.back();
  };
  // Fix the row order: ours first, then the baselines.
  for (const auto& r : manifest.rates) row("features", r.name);
  row("exit", "local");
  if (baseline) {
    row("float-split", "float32+zstd");
    row("png", "lossless");
    for (int q : options.jpeg_qualities) row("jpeg", "q" + std::to_string(q));
    for (int q : options.webp_qualities) row("webp", "q" + std::to_string(q));
  }

  splitnet::FeatureCodec codec;
  ZSTD_CCtx* zstd = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(zstd, ZSTD_c_compressionLevel, options.float_zstd_level);
  ZSTD_CCtx_setParameter(zstd, ZSTD_c_checksumFlag, 0);
  ZSTD_CCtx_setParameter(zstd, ZSTD_c_dictIDFlag, 0);

  std::uint64_t seq = 1;
  Status status;
  int done = 0;
  while (done < total && status.ok()) {
    // One batch of images.
    std::vector<cv::Mat> images;
    std::vector<int> labels;
    while (static_cast<int>(images.size()) < options.batch && done + (int)images.size() < total) {
      auto f = source->Next();
      if (!f.ok()) return f.status();
      if (!f->has_value()) break;
      images.push_back((*f)->image);
      labels.push_back((*f)->label);
    }
    if (images.empty()) break;
    const size_t n = images.size();

    // Ours: head once, every rate through encode -> message -> decode -> tail.
    std::vector<std::vector<float>> inputs;
    for (const auto& im : images) {
      ASSIGN_OR_RETURN(auto in, model->Preprocess(im));
      inputs.push_back(std::move(in));
    }
    ASSIGN_OR_RETURN(auto z, model->RunHeads(inputs));
    for (size_t i = 0; i < n; ++i) {
      ASSIGN_OR_RETURN(auto p, model->RunExit(z[i]));
      Tally& t = row("exit", "local");
      t.correct += Argmax(p) == labels[i];
      t.n++;
    }
    for (size_t r = 0; r < manifest.rates.size(); ++r) {
      const auto& rate = manifest.rates[r];
      std::vector<std::vector<float>> received;
      Tally& t = row("features", rate.name);
      for (size_t i = 0; i < n; ++i) {
        ASSIGN_OR_RETURN(auto enc, codec.Encode(z[i], manifest.bottleneck, rate));
        t.payload += enc.payload.size();
        t.bytes += WireBytes(seq++, manifest.fingerprint, static_cast<int>(r),
                             static_cast<int>(enc.coding), enc.payload);
        ASSIGN_OR_RETURN(auto dec,
                         codec.Decode(enc.coding, enc.payload, manifest.bottleneck, rate));
        received.push_back(std::move(dec));
      }
      ASSIGN_OR_RETURN(auto preds, model->RunTail(received));
      for (size_t i = 0; i < n; ++i) t.correct += Argmax(preds[i]) == labels[i];
      t.n += n;
    }

    if (baseline) {
      // Input codecs: encode, decode, classify with the full-precision model.
      auto classify = [&](Tally& t, const std::vector<cv::Mat>& decoded) -> Status {
        std::vector<std::vector<float>> in;
        for (const auto& im : decoded) {
          ASSIGN_OR_RETURN(auto x, baseline->Preprocess(im));
          in.push_back(std::move(x));
        }
        ASSIGN_OR_RETURN(auto feats, baseline->RunHeads(in));
        ASSIGN_OR_RETURN(auto preds, baseline->RunTail(feats));
        for (size_t i = 0; i < n; ++i) t.correct += Argmax(preds[i]) == labels[i];
        t.n += n;
        return Status::Ok();
      };
      auto codec_row = [&](const std::string& method, const std::string& setting,
                           const std::string& ext, std::vector<int> params) -> Status {
        Tally& t = row(method, setting);
        std::vector<cv::Mat> decoded;
        for (const auto& im : images) {
          std::vector<std::uint8_t> buf;
          if (!cv::imencode(ext, im, buf, params)) return Internal("imencode " + ext + " failed");
          t.payload += buf.size();
          cv::Mat back = cv::imdecode(buf, cv::IMREAD_GRAYSCALE);
          if (back.empty()) return Internal("imdecode " + ext + " failed");
          t.bytes += WireBytes(seq++, baseline_manifest.fingerprint, 0, 0, std::move(buf));
          decoded.push_back(back);
        }
        return classify(t, decoded);
      };
      RETURN_IF_ERROR(codec_row("png", "lossless", ".png", {cv::IMWRITE_PNG_COMPRESSION, 9}));
      for (int q : options.jpeg_qualities)
        RETURN_IF_ERROR(codec_row("jpeg", "q" + std::to_string(q), ".jpg",
                                  {cv::IMWRITE_JPEG_QUALITY, q, cv::IMWRITE_JPEG_OPTIMIZE, 1}));
      for (int q : options.webp_qualities)
        RETURN_IF_ERROR(
            codec_row("webp", "q" + std::to_string(q), ".webp", {cv::IMWRITE_WEBP_QUALITY, q}));

      // Float split: the baseline's own features, float32, zstd.
      std::vector<std::vector<float>> in;
      for (const auto& im : images) {
        ASSIGN_OR_RETURN(auto x, baseline->Preprocess(im));
        in.push_back(std::move(x));
      }
      ASSIGN_OR_RETURN(auto feats, baseline->RunHeads(in));
      Tally& t = row("float-split", "float32+zstd");
      std::vector<std::vector<float>> received;
      for (const auto& f : feats) {
        const size_t raw = f.size() * sizeof(float);
        std::vector<std::uint8_t> buf(ZSTD_compressBound(raw));
        size_t m = ZSTD_compress2(zstd, buf.data(), buf.size(), f.data(), raw);
        if (ZSTD_isError(m)) return Internal("zstd failed on float features");
        buf.resize(m);
        std::vector<float> back(f.size());
        if (ZSTD_decompress(back.data(), raw, buf.data(), buf.size()) != raw)
          return Internal("zstd round trip of float features failed");
        t.payload += buf.size();
        t.bytes += WireBytes(seq++, baseline_manifest.fingerprint, 0, 1, std::move(buf));
        received.push_back(std::move(back));
      }
      ASSIGN_OR_RETURN(auto preds, baseline->RunTail(received));
      for (size_t i = 0; i < n; ++i) t.correct += Argmax(preds[i]) == labels[i];
      t.n += n;
    }
    done += static_cast<int>(n);
    if (progress) progress(done, total);
  }
  ZSTD_freeCCtx(zstd);

  nlohmann::json out;
  out["frames"] = done;
  out["model"] = options.model_dir;
  out["baseline"] = options.baseline_dir;
  out["rows"] = nlohmann::json::array();
  for (const auto& t : rows) {
    if (t.n == 0) continue;
    const bool exit_row = t.method == "exit";
    out["rows"].push_back({{"method", t.method},
                           {"setting", t.setting},
                           {"bytes_per_frame", exit_row ? 0.0 : t.bytes / t.n},
                           {"payload_bytes_per_frame", exit_row ? 0.0 : t.payload / t.n},
                           {"accuracy", double(t.correct) / t.n}});
  }
  out["goal"] = GoalCheck(out["rows"]);
  return out;
}

nlohmann::json GoalCheck(const nlohmann::json& rows, double tolerance) {
  double best_input = -1;
  for (const auto& r : rows)
    if (r["method"] == "png" || r["method"] == "jpeg" || r["method"] == "webp")
      best_input = std::max(best_input, r["accuracy"].get<double>());
  if (best_input < 0) return {{"evaluated", false}, {"why", "no input-codec baseline rows"}};
  const double target = best_input - tolerance;
  const nlohmann::json* cheapest_input = nullptr;
  const nlohmann::json* cheapest_features = nullptr;
  for (const auto& r : rows) {
    if (r["accuracy"].get<double>() < target) continue;
    const double b = r["bytes_per_frame"].get<double>();
    if (r["method"] == "png" || r["method"] == "jpeg" || r["method"] == "webp") {
      if (!cheapest_input || b < (*cheapest_input)["bytes_per_frame"].get<double>())
        cheapest_input = &r;
    } else if (r["method"] == "features") {
      if (!cheapest_features || b < (*cheapest_features)["bytes_per_frame"].get<double>())
        cheapest_features = &r;
    }
  }
  // For each features rate: the cheapest input codec at least as accurate.
  nlohmann::json matched = nlohmann::json::array();
  for (const auto& f : rows) {
    if (f["method"] != "features") continue;
    const nlohmann::json* best = nullptr;
    for (const auto& r : rows) {
      if (r["method"] != "png" && r["method"] != "jpeg" && r["method"] != "webp") continue;
      if (r["accuracy"].get<double>() < f["accuracy"].get<double>()) continue;
      if (!best || r["bytes_per_frame"].get<double>() < (*best)["bytes_per_frame"].get<double>())
        best = &r;
    }
    nlohmann::json m{{"features", f["setting"]},
                     {"features_bytes", f["bytes_per_frame"]},
                     {"features_accuracy", f["accuracy"]}};
    if (best) {
      m["input_codec"] =
          (*best)["method"].get<std::string>() + " " + (*best)["setting"].get<std::string>();
      m["input_bytes"] = (*best)["bytes_per_frame"];
      m["input_accuracy"] = (*best)["accuracy"];
      m["bytes_ratio"] =
          f["bytes_per_frame"].get<double>() / (*best)["bytes_per_frame"].get<double>();
    }
    matched.push_back(m);
  }
  nlohmann::json g{{"evaluated", true},
                   {"at_matched_accuracy", matched},
                   {"best_input_codec_accuracy", best_input},
                   {"target_accuracy", target},
                   {"cheapest_input_codec", *cheapest_input},
                   {"goal_ratio", 0.25}};
  if (!cheapest_features) {
    g["cheapest_features"] = nullptr;
    g["met"] = false;
    g["why"] = "no features rate reaches the target accuracy";
    return g;
  }
  const double ratio = (*cheapest_features)["bytes_per_frame"].get<double>() /
                       (*cheapest_input)["bytes_per_frame"].get<double>();
  g["cheapest_features"] = *cheapest_features;
  g["bytes_ratio"] = ratio;
  g["met"] = ratio <= 0.25;
  return g;
}

std::string MarkdownTable(const nlohmann::json& report) {
  std::ostringstream out;
  char line[256];
  out << "| method | setting | bytes/frame (wire) | payload bytes | accuracy |\n";
  out << "|---|---|---:|---:|---:|\n";
  for (const auto& r : report["rows"]) {
    std::snprintf(line, sizeof line, "| %s | %s | %.1f | %.1f | %.2f %% |\n",
                  r["method"].get<std::string>().c_str(), r["setting"].get<std::string>().c_str(),
                  r["bytes_per_frame"].get<double>(), r["payload_bytes_per_frame"].get<double>(),
                  100.0 * r["accuracy"].get<double>());
    out << line;
  }
  const auto& g = report["goal"];
  if (g.value("evaluated", false)) {
    out << "\nGoal: at accuracy ≥ best input codec − 0.5 points ("
        << std::to_string(100.0 * g["target_accuracy"].get<double>()).substr(0, 5) << " %), ";
    const auto& in = g["cheapest_input_codec"];
    std::snprintf(line, sizeof line, "the cheapest input codec is %s %s at %.1f B/frame",
                  in["method"].get<std::string>().c_str(), in["setting"].get<std::string>().c_str(),
                  in["bytes_per_frame"].get<double>());
    out << line;
    if (g["cheapest_features"].is_null()) {
      out << "; no features rate reaches it (goal not met).\n";
    } else {
      const auto& f = g["cheapest_features"];
      std::snprintf(line, sizeof line,
                    "; the cheapest features rate is %s at %.1f B/frame: ratio %.3f (goal ≤ 0.25: "
                    "%s).\n",
                    f["setting"].get<std::string>().c_str(), f["bytes_per_frame"].get<double>(),
                    g["bytes_ratio"].get<double>(), g["met"].get<bool>() ? "met" : "not met");
      out << line;
    }
  }
  if (g.contains("at_matched_accuracy")) {
    out << "\nAt matched accuracy (the cheapest input codec at least as accurate as each rate):\n\n"
        << "| features rate | bytes | accuracy | cheapest input codec ≥ that accuracy | bytes | "
           "ratio |\n|---|---:|---:|---|---:|---:|\n";
    for (const auto& m : g["at_matched_accuracy"]) {
      if (!m.contains("input_codec")) {
        std::snprintf(line, sizeof line, "| %s | %.1f | %.2f %% | none reaches it | | |\n",
                      m["features"].get<std::string>().c_str(), m["features_bytes"].get<double>(),
                      100.0 * m["features_accuracy"].get<double>());
      } else {
        std::snprintf(line, sizeof line, "| %s | %.1f | %.2f %% | %s (%.2f %%) | %.1f | %.3f |\n",
                      m["features"].get<std::string>().c_str(), m["features_bytes"].get<double>(),
                      100.0 * m["features_accuracy"].get<double>(),
                      m["input_codec"].get<std::string>().c_str(),
                      100.0 * m["input_accuracy"].get<double>(), m["input_bytes"].get<double>(),
                      m["bytes_ratio"].get<double>());
      }
      out << line;
    }
  }
  return out.str();
}

}  // namespace deepcut::eval
