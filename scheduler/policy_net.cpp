#include "scheduler/policy_net.h"

#include <cmath>
#include <fstream>
#include <sstream>

#include <Eigen/Dense>
#include <nlohmann/json.hpp>

namespace deepcut::scheduler {

const std::array<const char*, kLearnedInputs> kLearnedInputNames = {
    "exit_error",         "expected_cloud",    "fused_confidence", "scene_exit_frames",
    "scene_cloud_frames", "reuse_probability", "since_offload",    "bucket_fill",
    "budget_share",       "latency_share",     "in_flight_share",  "bias_one"};

std::array<double, kLearnedInputs> LearnedState::Values() const {
  return {exit_error,         expected_cloud,    fused_confidence, scene_exit_frames,
          scene_cloud_frames, reuse_probability, since_offload,    bucket_fill,
          budget_share,       latency_share,     in_flight_share,  bias_one};
}

namespace {
constexpr int kMaxWidth = 256;
constexpr int kMaxLayers = 4;
}  // namespace

Result<PolicyNet> PolicyNet::Load(const std::filesystem::path& file) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(file, ec))
    return NotFound("policy weights " + file.string() +
                    " not found (deepcut-train-policy writes them)");
  std::ifstream in(file, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  if (!in.good() && !in.eof())
    return InvalidArgument("policy weights " + file.string() + ": cannot read");
  return Parse(text.str(), file.string());
}

Result<PolicyNet> PolicyNet::Parse(const std::string& json_text, const std::string& where) {
  nlohmann::json root;
  try {
    root = nlohmann::json::parse(json_text);
  } catch (const std::exception& e) {
    return InvalidArgument(where + ": not valid JSON: " + e.what());
  }
  auto bad = [&](const std::string& what) { return InvalidArgument(where + ": " + what); };
  if (!root.is_object()) return bad("must hold a JSON object");
  if (!root.contains("format") || root["format"] != "deepcut-policy/1")
    return bad("format must be \"deepcut-policy/1\"");
  if (!root.contains("inputs") || !root["inputs"].is_array() ||
      root["inputs"].size() != static_cast<size_t>(kLearnedInputs))
    return bad("inputs must list the " + std::to_string(kLearnedInputs) + " state names");
  for (int i = 0; i < kLearnedInputs; ++i)
    if (root["inputs"][i] != kLearnedInputNames[i])
      return bad("inputs[" + std::to_string(i) + "] must be \"" + kLearnedInputNames[i] +
                 "\" (this runtime's state)");
  if (!root.contains("layers") || !root["layers"].is_array() || root["layers"].empty() ||
      root["layers"].size() > static_cast<size_t>(kMaxLayers))
    return bad("layers must be an array of 1 to " + std::to_string(kMaxLayers) + " layers");
  PolicyNet net;
  int in = kLearnedInputs;
  for (size_t k = 0; k < root["layers"].size(); ++k) {
    const auto& l = root["layers"][k];
    const std::string at = "layers[" + std::to_string(k) + "]";
    if (!l.is_object() || !l.contains("weights") || !l.contains("bias") ||
        !l["weights"].is_array() || !l["bias"].is_array())
      return bad(at + " must hold \"weights\" and \"bias\" arrays");
    const auto out = static_cast<int>(l["weights"].size());
    if (out < 1 || out > kMaxWidth) return bad(at + ".weights must have 1 to 256 rows");
    if (static_cast<int>(l["bias"].size()) != out)
      return bad(at + ".bias has " + std::to_string(l["bias"].size()) + " values, weights " +
                 std::to_string(out) + " rows");
    Layer layer{out, in, std::vector<double>(static_cast<size_t>(out) * in),
                std::vector<double>(out)};
    for (int r = 0; r < out; ++r) {
      const auto& row = l["weights"][r];
      if (!row.is_array() || static_cast<int>(row.size()) != in)
        return bad(at + ".weights[" + std::to_string(r) + "] must hold " + std::to_string(in) +
                   " numbers (the previous layer's width)");
      for (int c = 0; c < in; ++c) {
        if (!row[c].is_number() || !std::isfinite(row[c].get<double>()))
          return bad(at + ".weights[" + std::to_string(r) + "][" + std::to_string(c) +
                     "] is not a finite number");
        layer.weights[static_cast<size_t>(r) * in + c] = row[c].get<double>();
      }
      if (!l["bias"][r].is_number() || !std::isfinite(l["bias"][r].get<double>()))
        return bad(at + ".bias[" + std::to_string(r) + "] is not a finite number");
      layer.bias[r] = l["bias"][r].get<double>();
    }
    net.layers_.push_back(std::move(layer));
    in = out;
  }
  if (in != 1)
    return bad("the last layer must have one output (the offload score), not " +
               std::to_string(in));
  return net;
}

Result<PolicyNet> PolicyNet::FromFlat(const std::vector<int>& sizes,
                                      const std::vector<double>& flat) {
  if (sizes.size() < 2 || sizes.front() != kLearnedInputs || sizes.back() != 1)
    return InvalidArgument("policy sizes must run from the state's width to 1 output");
  PolicyNet net;
  size_t at = 0;
  for (size_t k = 0; k + 1 < sizes.size(); ++k) {
    const int in = sizes[k], out = sizes[k + 1];
    if (out < 1 || out > kMaxWidth) return InvalidArgument("policy layer width out of range");
    Layer layer{out, in, std::vector<double>(static_cast<size_t>(out) * in),
                std::vector<double>(out)};
    if (flat.size() < at + static_cast<size_t>(out) * (in + 1))
      return InvalidArgument("too few policy parameters for these sizes");
    for (int r = 0; r < out; ++r)
      for (int c = 0; c < in; ++c) layer.weights[static_cast<size_t>(r) * in + c] = flat[at++];
    for (int r = 0; r < out; ++r) layer.bias[r] = flat[at++];
    net.layers_.push_back(std::move(layer));
  }
  if (at != flat.size()) return InvalidArgument("too many policy parameters for these sizes");
  return net;
}

double PolicyNet::Score(const std::array<double, kLearnedInputs>& inputs) const {
  using RowMajor = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  Eigen::VectorXd x = Eigen::Map<const Eigen::VectorXd>(inputs.data(), kLearnedInputs);
  for (size_t k = 0; k < layers_.size(); ++k) {
    const Layer& l = layers_[k];
    x = Eigen::Map<const RowMajor>(l.weights.data(), l.out, l.in) * x +
        Eigen::Map<const Eigen::VectorXd>(l.bias.data(), l.out);
    if (k + 1 < layers_.size()) x = x.array().tanh().matrix();
  }
  return x(0);
}

double PolicyNet::Score(const std::vector<double>& inputs) const {
  std::array<double, kLearnedInputs> a{};
  for (int i = 0; i < kLearnedInputs && i < static_cast<int>(inputs.size()); ++i) a[i] = inputs[i];
  return Score(a);
}

std::vector<int> PolicyNet::Sizes() const {
  std::vector<int> s = {inputs()};
  for (const auto& l : layers_) s.push_back(l.out);
  return s;
}

std::vector<double> PolicyNet::Flat() const {
  std::vector<double> flat;
  for (const auto& l : layers_) {
    flat.insert(flat.end(), l.weights.begin(), l.weights.end());
    flat.insert(flat.end(), l.bias.begin(), l.bias.end());
  }
  return flat;
}

std::string PolicyNet::ToJson(const std::string& provenance_json) const {
  nlohmann::json root;
  root["format"] = "deepcut-policy/1";
  root["inputs"] = nlohmann::json::array();
  for (const char* n : kLearnedInputNames) root["inputs"].push_back(n);
  root["layers"] = nlohmann::json::array();
  for (const auto& l : layers_) {
    nlohmann::json layer;
    layer["weights"] = nlohmann::json::array();
    for (int r = 0; r < l.out; ++r)
      layer["weights"].push_back(
          std::vector<double>(l.weights.begin() + static_cast<size_t>(r) * l.in,
                              l.weights.begin() + static_cast<size_t>(r + 1) * l.in));
    layer["bias"] = l.bias;
    root["layers"].push_back(layer);
  }
  root["provenance"] =
      provenance_json.empty() ? nlohmann::json::object() : nlohmann::json::parse(provenance_json);
  return root.dump(1) + "\n";
}

}  // namespace deepcut::scheduler
