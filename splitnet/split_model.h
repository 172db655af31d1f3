// Runs a model package's three graphs (head, exit, tail) through OpenCV's dnn.
//
// The Manifest is the loaded model's description and may be shared; a
// SplitModel holds the networks and their per-run buffers, so it is one per
// thread (cv::dnn::Net is not thread-safe). Load checks every graph it opens
// against the manifest by running one zero input through it, and refuses a
// package whose shapes disagree, naming the file.
#pragma once

#include <memory>
#include <opencv2/core.hpp>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"
#include "splitnet/manifest.h"

namespace deepcut::splitnet {

struct Prediction {
  int class_id = -1;
  float confidence = 0.0f;           // softmax probability of class_id
  std::vector<float> probabilities;  // softmax over all classes
};

// One layer's output in a traced run: the runtime's layer name (OpenCV dnn's:
// "onnx_node!" + the ONNX node name, or the graph output's name), its shape, its
// values (flat, C order) and its time in that run.
struct LayerOutput {
  std::string name;
  std::vector<int> shape;
  std::vector<float> values;
  double ms = 0.0;
};

// Which graphs to open: the edge needs head+exit, the cloud only the tail.
struct SplitModelParts {
  bool head = true;
  bool exit = true;
  bool tail = true;
};

class SplitModel {
 public:
  static Result<std::unique_ptr<SplitModel>> Load(const Manifest& manifest,
                                                  SplitModelParts parts = {});
  ~SplitModel();

  const Manifest& manifest() const { return manifest_; }

  // Any 8-bit gray/BGR/BGRA image -> the head's input tensor (CHW floats),
  // resized and normalised as the manifest says.
  Result<std::vector<float>> Preprocess(const cv::Mat& image) const;
  // Input tensor -> bottleneck features (bottleneck.Elements() floats).
  Result<std::vector<float>> RunHead(std::span<const float> input);
  // Several input tensors as one batch; one feature vector each.
  Result<std::vector<std::vector<float>>> RunHeads(const std::vector<std::vector<float>>& inputs);
  Result<Prediction> RunExit(std::span<const float> features);
  // One prediction per feature vector, run as one batch.
  Result<std::vector<Prediction>> RunTail(const std::vector<std::vector<float>>& batch);

  // The head or the exit with every named layer kept as an output (deployment
  // visibility, ML-EXray): the layers in graph order, the last one the graph's
  // output. These run on their own copy of the graph (opened on first use), in
  // which OpenCV cannot fuse a requested layer away; the last layer's values are
  // what RunHead / RunExit compute.
  Result<std::vector<LayerOutput>> TraceHead(std::span<const float> input);
  Result<std::vector<LayerOutput>> TraceExit(std::span<const float> features);

 private:
  struct Nets;
  explicit SplitModel(Manifest manifest);
  Manifest manifest_;
  std::unique_ptr<Nets> nets_;
};

// Softmax of logits, numerically stable.
Prediction PredictionFromLogits(std::span<const float> logits);

}  // namespace deepcut::splitnet
