#include "splitnet/split_model.h"

#include <algorithm>
#include <cmath>
#include <opencv2/dnn.hpp>
#include <opencv2/imgproc.hpp>

namespace deepcut::splitnet {

struct SplitModel::Nets {
  cv::dnn::Net head, exit, tail;
  cv::dnn::Net head_trace, exit_trace;  // opened by the first traced run
};

namespace {

Result<cv::dnn::Net> OpenNet(const std::filesystem::path& file) {
  try {
    cv::dnn::Net net = cv::dnn::readNetFromONNX(file.string());
    if (net.empty()) return InvalidArgument(file.string() + ": OpenCV dnn loaded an empty network");
    net.setPreferableBackend(cv::dnn::DNN_BACKEND_OPENCV);
    net.setPreferableTarget(cv::dnn::DNN_TARGET_CPU);
    return net;
  } catch (const cv::Exception& e) {
    return InvalidArgument(file.string() + ": OpenCV dnn cannot read it: " + e.what());
  }
}

// Runs `net` on a float blob of shape `dims`; the output is copied out flat.
Result<std::vector<float>> Forward(cv::dnn::Net& net, const std::vector<int>& dims,
                                   const float* data, const char* what) {
  try {
    cv::Mat blob(static_cast<int>(dims.size()), dims.data(), CV_32F, const_cast<float*>(data));
    net.setInput(blob);
    cv::Mat out = net.forward();
    if (out.type() != CV_32F) return Internal(std::string(what) + " output is not float32");
    if (!out.isContinuous()) out = out.clone();
    const float* p = out.ptr<float>();
    return std::vector<float>(p, p + out.total());
  } catch (const cv::Exception& e) {
    return Internal(std::string(what) + " inference failed: " + e.what());
  }
}

// One zero input through a graph; its output size must be what the manifest says.
Status CheckShape(cv::dnn::Net& net, const std::vector<int>& dims, size_t expected,
                  const std::filesystem::path& file, const std::string& expected_text) {
  size_t n = 1;
  for (int d : dims) n *= static_cast<size_t>(d);
  std::vector<float> zeros(n, 0.0f);
  auto out = Forward(net, dims, zeros.data(), file.filename().c_str());
  if (!out.ok())
    return InvalidArgument(
        file.string() + " does not accept the manifest's input shape: " + out.status().message());
  if (out->size() != expected)
    return InvalidArgument(file.string() + " outputs " + std::to_string(out->size()) +
                           " values per item, the manifest says " + expected_text);
  return Status::Ok();
}

// Every layer's output of one run of `net` (opened from `file` on first use).
Result<std::vector<LayerOutput>> Trace(cv::dnn::Net& net, const std::filesystem::path& file,
                                       const std::vector<int>& dims, const float* data) {
  if (net.empty()) {
    auto opened = OpenNet(file);
    if (!opened.ok()) return opened.status();
    net = *opened;
  }
  try {
    const std::vector<std::string> names = net.getLayerNames();
    cv::Mat blob(static_cast<int>(dims.size()), dims.data(), CV_32F, const_cast<float*>(data));
    net.setInput(blob);
    std::vector<cv::Mat> outs;
    net.forward(outs, names);
    std::vector<double> ticks;
    net.getPerfProfile(ticks);
    const double ms_per_tick = 1000.0 / cv::getTickFrequency();
    std::vector<LayerOutput> layers(names.size());
    for (size_t i = 0; i < names.size(); ++i) {
      cv::Mat out = outs[i].isContinuous() ? outs[i] : outs[i].clone();
      if (out.type() != CV_32F) return Internal(names[i] + " output is not float32");
      layers[i].name = names[i];
      layers[i].shape.assign(out.size.p, out.size.p + out.dims);
      layers[i].values.assign(out.ptr<float>(), out.ptr<float>() + out.total());
      layers[i].ms = i < ticks.size() ? ticks[i] * ms_per_tick : 0.0;
    }
    return layers;
  } catch (const cv::Exception& e) {
    return Internal(file.filename().string() + " traced inference failed: " + e.what());
  }
}

int InterpolationCode(const std::string& name) {
  if (name == "linear") return cv::INTER_LINEAR;
  if (name == "nearest") return cv::INTER_NEAREST;
  if (name == "cubic") return cv::INTER_CUBIC;
  if (name == "lanczos") return cv::INTER_LANCZOS4;
  return cv::INTER_AREA;
}

}  // namespace

Prediction PredictionFromLogits(std::span<const float> logits) {
  Prediction p;
  p.probabilities.resize(logits.size());
  if (logits.empty()) return p;
  float mx = *std::max_element(logits.begin(), logits.end());
  float sum = 0.0f;
  for (size_t i = 0; i < logits.size(); ++i) sum += p.probabilities[i] = std::exp(logits[i] - mx);
  for (float& x : p.probabilities) x /= sum;
  auto it = std::max_element(p.probabilities.begin(), p.probabilities.end());
  p.class_id = static_cast<int>(it - p.probabilities.begin());
  p.confidence = *it;
  return p;
}

SplitModel::SplitModel(Manifest manifest)
    : manifest_(std::move(manifest)), nets_(std::make_unique<Nets>()) {}
SplitModel::~SplitModel() = default;

Result<std::unique_ptr<SplitModel>> SplitModel::Load(const Manifest& manifest,
                                                     SplitModelParts parts) {
  std::unique_ptr<SplitModel> model(new SplitModel(manifest));
  const auto& in = manifest.input;
  const auto& b = manifest.bottleneck;
  const size_t classes = manifest.classes.size();
  const std::vector<int> in_dims{1, in.channels, in.height, in.width};
  const std::vector<int> z_dims{1, b.channels, b.height, b.width};
  const std::string z_text =
      std::to_string(b.channels) + "x" + std::to_string(b.height) + "x" + std::to_string(b.width);
  if (parts.head) {
    ASSIGN_OR_RETURN(model->nets_->head, OpenNet(manifest.head_file));
    RETURN_IF_ERROR(CheckShape(model->nets_->head, in_dims, b.Elements(), manifest.head_file,
                               z_text + " (bottleneck)"));
  }
  if (parts.exit) {
    ASSIGN_OR_RETURN(model->nets_->exit, OpenNet(manifest.exit_file));
    RETURN_IF_ERROR(CheckShape(model->nets_->exit, z_dims, classes, manifest.exit_file,
                               std::to_string(classes) + " (classes)"));
  }
  if (parts.tail) {
    ASSIGN_OR_RETURN(model->nets_->tail, OpenNet(manifest.tail_file));
    RETURN_IF_ERROR(CheckShape(model->nets_->tail, z_dims, classes, manifest.tail_file,
                               std::to_string(classes) + " (classes)"));
  }
  return model;
}

Result<std::vector<float>> SplitModel::Preprocess(const cv::Mat& image) const {
  const auto& in = manifest_.input;
  if (image.empty()) return InvalidArgument("empty image");
  if (image.depth() != CV_8U) return InvalidArgument("image must be 8-bit");
  cv::Mat converted;
  try {
    const int ch = image.channels();
    // Codes for a BGR(A) frame; an RGB(A) one swaps them.
    const bool rgb = in.channel_order == "rgb";
    if (in.channels == 1) {
      if (ch == 1)
        converted = image;
      else if (ch == 3)
        cv::cvtColor(image, converted, rgb ? cv::COLOR_RGB2GRAY : cv::COLOR_BGR2GRAY);
      else if (ch == 4)
        cv::cvtColor(image, converted, rgb ? cv::COLOR_RGBA2GRAY : cv::COLOR_BGRA2GRAY);
      else
        return InvalidArgument("image has " + std::to_string(ch) + " channels");
    } else {
      if (ch == 1)
        cv::cvtColor(image, converted, cv::COLOR_GRAY2RGB);
      else if (ch == 3)
        converted = rgb ? image : [&] {
          cv::Mat m;
          cv::cvtColor(image, m, cv::COLOR_BGR2RGB);
          return m;
        }();
      else if (ch == 4)
        cv::cvtColor(image, converted, rgb ? cv::COLOR_RGBA2RGB : cv::COLOR_BGRA2RGB);
      else
        return InvalidArgument("image has " + std::to_string(ch) + " channels");
    }
    if (converted.rows != in.height || converted.cols != in.width)
      cv::resize(converted, converted, cv::Size(in.width, in.height), 0, 0,
                 InterpolationCode(in.interpolation));
  } catch (const cv::Exception& e) {
    return InvalidArgument(std::string("image preprocessing failed: ") + e.what());
  }
  std::vector<float> out(static_cast<size_t>(in.channels) * in.height * in.width);
  const size_t plane = static_cast<size_t>(in.height) * in.width;
  for (int y = 0; y < in.height; ++y) {
    const std::uint8_t* row = converted.ptr<std::uint8_t>(y);
    for (int x = 0; x < in.width; ++x)
      for (int c = 0; c < in.channels; ++c)
        out[c * plane + y * in.width + x] =
            (row[x * in.channels + c] * in.scale - in.mean[c]) / in.std[c];
  }
  return out;
}

Result<std::vector<float>> SplitModel::RunHead(std::span<const float> input) {
  const auto& in = manifest_.input;
  if (nets_->head.empty()) return Internal("head graph not loaded");
  if (input.size() != static_cast<size_t>(in.channels) * in.height * in.width)
    return InvalidArgument("head input has the wrong size");
  auto z = Forward(nets_->head, {1, in.channels, in.height, in.width}, input.data(), "head");
  if (z.ok() && z->size() != static_cast<size_t>(manifest_.bottleneck.Elements()))
    return Internal("head output has the wrong size");
  return z;
}

Result<std::vector<std::vector<float>>> SplitModel::RunHeads(
    const std::vector<std::vector<float>>& inputs) {
  const auto& in = manifest_.input;
  if (nets_->head.empty()) return Internal("head graph not loaded");
  if (inputs.empty()) return std::vector<std::vector<float>>{};
  const size_t per_in = static_cast<size_t>(in.channels) * in.height * in.width;
  std::vector<float> flat(per_in * inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (inputs[i].size() != per_in) return InvalidArgument("head input has the wrong size");
    std::copy(inputs[i].begin(), inputs[i].end(), flat.begin() + i * per_in);
  }
  const int n = static_cast<int>(inputs.size());
  ASSIGN_OR_RETURN(
      auto out, Forward(nets_->head, {n, in.channels, in.height, in.width}, flat.data(), "head"));
  const size_t per_out = static_cast<size_t>(manifest_.bottleneck.Elements());
  if (out.size() != per_out * inputs.size()) return Internal("head output has the wrong size");
  std::vector<std::vector<float>> result(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i)
    result[i].assign(out.begin() + i * per_out, out.begin() + (i + 1) * per_out);
  return result;
}

Result<Prediction> SplitModel::RunExit(std::span<const float> features) {
  const auto& b = manifest_.bottleneck;
  if (nets_->exit.empty()) return Internal("exit graph not loaded");
  if (features.size() != static_cast<size_t>(b.Elements()))
    return InvalidArgument("exit input has the wrong size");
  ASSIGN_OR_RETURN(auto logits, Forward(nets_->exit, {1, b.channels, b.height, b.width},
                                        features.data(), "exit"));
  return PredictionFromLogits(logits);
}

Result<std::vector<Prediction>> SplitModel::RunTail(const std::vector<std::vector<float>>& batch) {
  const auto& b = manifest_.bottleneck;
  if (nets_->tail.empty()) return Internal("tail graph not loaded");
  if (batch.empty()) return std::vector<Prediction>{};
  const size_t per = static_cast<size_t>(b.Elements());
  std::vector<float> flat(per * batch.size());
  for (size_t i = 0; i < batch.size(); ++i) {
    if (batch[i].size() != per) return InvalidArgument("tail input has the wrong size");
    std::copy(batch[i].begin(), batch[i].end(), flat.begin() + i * per);
  }
  const int n = static_cast<int>(batch.size());
  ASSIGN_OR_RETURN(auto logits,
                   Forward(nets_->tail, {n, b.channels, b.height, b.width}, flat.data(), "tail"));
  const size_t k = manifest_.classes.size();
  if (logits.size() != k * batch.size()) return Internal("tail output has the wrong size");
  std::vector<Prediction> out;
  out.reserve(batch.size());
  for (size_t i = 0; i < batch.size(); ++i)
    out.push_back(PredictionFromLogits(std::span<const float>(logits.data() + i * k, k)));
  return out;
}

Result<std::vector<LayerOutput>> SplitModel::TraceHead(std::span<const float> input) {
  const auto& in = manifest_.input;
  if (nets_->head.empty()) return Internal("head graph not loaded");
  if (input.size() != static_cast<size_t>(in.channels) * in.height * in.width)
    return InvalidArgument("head input has the wrong size");
  ASSIGN_OR_RETURN(auto layers, Trace(nets_->head_trace, manifest_.head_file,
                                      {1, in.channels, in.height, in.width}, input.data()));
  if (layers.empty() || layers.back().values.size() != (size_t)manifest_.bottleneck.Elements())
    return Internal("traced head output has the wrong size");
  return layers;
}

Result<std::vector<LayerOutput>> SplitModel::TraceExit(std::span<const float> features) {
  const auto& b = manifest_.bottleneck;
  if (nets_->exit.empty()) return Internal("exit graph not loaded");
  if (features.size() != static_cast<size_t>(b.Elements()))
    return InvalidArgument("exit input has the wrong size");
  ASSIGN_OR_RETURN(auto layers, Trace(nets_->exit_trace, manifest_.exit_file,
                                      {1, b.channels, b.height, b.width}, features.data()));
  if (layers.empty() || layers.back().values.size() != manifest_.classes.size())
    return Internal("traced exit output has the wrong size");
  return layers;
}

}  // namespace deepcut::splitnet
