// Test vectors of the wire protocol, made by the C++ implementation, for the
// second implementation written from docs/protocol.md (tests/e2e/doc_client.py):
//
//   deepcut_protocol_vectors MODEL_DIR OUT.json
//
// For the package: its fingerprint text, fingerprint and tag. For each rate
// and each of a few fixed feature maps: the feature values, their codes, and
// for every coding the rate allows the payload and the whole request message
// (seq 4660, deadline 200 ms), in hex. The features are fixed patterns, not a
// network's output, so the vectors do not depend on inference.
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "splitnet/feature_codec.h"
#include "splitnet/manifest.h"
#include "transport/protocol.h"

namespace {

using namespace deepcut;

std::string Hex(const std::vector<std::uint8_t>& bytes) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (std::uint8_t b : bytes) {
    out += digits[b >> 4];
    out += digits[b & 15];
  }
  return out;
}

// Three maps: a smooth ramp, values on the quantiser's rounding ties and its
// ends (and beyond them), and pseudo-random noise.
std::vector<std::vector<float>> FeatureMaps(const splitnet::BottleneckSpec& b) {
  const size_t n = b.Elements();
  std::vector<std::vector<float>> maps(3, std::vector<float>(n));
  const float span = b.max - b.min;
  std::uint32_t state = 2024;
  for (size_t i = 0; i < n; ++i) {
    const size_t x = i % b.width, y = (i / b.width) % b.height;
    maps[0][i] = b.min + span * static_cast<float>(x + y) / static_cast<float>(b.width + b.height);
    const float specials[] = {-1.0f, 0.0f, 1.0f / 6, 0.5f, 1.0f / 14, 5.0f / 6, 1.0f, 2.0f};
    maps[1][i] = b.min + span * specials[i % 8];
    state = state * 1664525u + 1013904223u;
    maps[2][i] = b.min + span * static_cast<float>(state >> 8) / 16777216.0f;
  }
  return maps;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s MODEL_DIR OUT.json\n", argv[0]);
    return 2;
  }
  auto m = splitnet::LoadManifest(argv[1]);
  if (!m.ok()) {
    std::fprintf(stderr, "%s\n", m.status().ToString().c_str());
    return 3;
  }
  nlohmann::json out;
  out["fingerprint_text"] = splitnet::FingerprintText(*m);
  out["fingerprint"] = m->fingerprint;
  out["tag"] = transport::ModelTag(m->fingerprint);
  out["protocol_version"] = transport::kProtocolVersion;
  splitnet::FeatureCodec codec;
  const auto maps = FeatureMaps(m->bottleneck);
  for (size_t r = 0; r < m->rates.size(); ++r) {
    const auto& rate = m->rates[r];
    for (size_t k = 0; k < maps.size(); ++k) {
      nlohmann::json v{{"rate", rate.name}, {"rate_index", r}, {"map", k}, {"features", maps[k]}};
      std::vector<std::uint32_t> codes;
      const size_t count = static_cast<size_t>(rate.channels) * m->bottleneck.ChannelElements();
      for (size_t i = 0; i < count; ++i)
        codes.push_back(splitnet::FeatureCodec::QuantizeValue(maps[k][i], m->bottleneck.min,
                                                              m->bottleneck.max, rate.bits));
      v["codes"] = codes;
      // Every coding the rate allows, whether or not the encoder would pick it.
      for (auto coding :
           {splitnet::Coding::kRaw, splitnet::Coding::kZstd, splitnet::Coding::kContext}) {
        if (coding == splitnet::Coding::kContext && rate.context_frequencies.empty()) continue;
        auto payload = codec.EncodeIn(coding, maps[k], m->bottleneck, rate);
        if (!payload.ok()) {
          std::fprintf(stderr, "%s\n", payload.status().ToString().c_str());
          return 5;
        }
        transport::Request request{.seq = 4660,
                                   .model = transport::ModelTag(m->fingerprint),
                                   .rate_index = static_cast<int>(r),
                                   .deadline_ms = 200,
                                   .coding = static_cast<int>(coding),
                                   .payload = *payload};
        v["codings"][std::to_string(static_cast<int>(coding))] = {
            {"payload", Hex(*payload)}, {"message", Hex(transport::EncodeRequest(request))}};
      }
      // What the encoder sends: the smallest coding.
      auto chosen = codec.Encode(maps[k], m->bottleneck, rate);
      v["chosen_coding"] = static_cast<int>(chosen->coding);
      out["vectors"].push_back(v);
    }
  }
  std::ofstream(argv[2]) << out.dump(1) << "\n";
  return 0;
}
