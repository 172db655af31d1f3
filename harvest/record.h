// One harvested frame: what the edge knew about it when it kept it for
// retraining (docs/harvest.md). The same record is a row of the edge's store,
// the bytes uploaded to the cloud (EncodeRecord, cut into chunks) and a row of
// the cloud's store.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"

namespace deepcut::harvest {

// Bounds a decoded record must respect (a hostile upload cannot make the cloud
// allocate more).
inline constexpr std::size_t kMaxImageBytes = 16 << 20;
inline constexpr std::size_t kMaxFeatures = 1 << 20;
inline constexpr std::size_t kMaxClasses = 4096;

struct HarvestRecord {
  std::uint64_t edge = 0;  // the edge store's id
  std::uint64_t item = 0;  // the record's id in that store (set by the store)
  std::int64_t frame_id = 0;
  std::int64_t capture_us = 0;
  std::int64_t stored_us = 0;           // when the edge kept it (its clock)
  int label = -1;                       // the true label when the source has one, else -1
  std::vector<std::uint8_t> image_png;  // the frame as captured
  std::vector<float> features;          // the head's output, before quantisation
  int exit_class = -1;
  float exit_confidence = 0.0f;
  std::vector<float> exit_scores;  // one probability per class
  int cloud_class = -1;            // the cloud's answer when the frame was offloaded
  float cloud_confidence = 0.0f;
  std::string sampler;  // which sampler kept it
  double score = 0.0;   // its usefulness score
  std::string package;  // the package version that made it (PackageVersion)
  std::uint16_t model_tag = 0;

  // Bytes the record takes in a store (blobs and fields, roughly).
  std::int64_t StoredBytes() const {
    return static_cast<std::int64_t>(image_png.size() + 4 * features.size() +
                                     4 * exit_scores.size() + sampler.size() + package.size() + 96);
  }
};

std::vector<std::uint8_t> EncodeRecord(const HarvestRecord& record);
// Every field checked (types, ranges, sizes); never throws.
Result<HarvestRecord> DecodeRecord(std::span<const std::uint8_t> bytes);

// The edge id as the stores write it: 16 lower-case hex digits.
std::string EdgeIdText(std::uint64_t edge);
Result<std::uint64_t> ParseEdgeId(const std::string& text);

}  // namespace deepcut::harvest
