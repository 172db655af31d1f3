// The feature codec: bottleneck tensor <-> the few hundred bytes sent on the wire.
//
// Encode keeps the first `rate.channels` channels, quantises each value uniformly
// to `rate.bits` bits over the bottleneck's [min, max], and codes the symbols in
// the smallest of three ways: range coding with the rate's learned context model
// (when the manifest has one: each symbol's probability given its left and upper
// neighbours in its channel), a zstd frame of the packed bits, or the packed bits
// raw. For a few hundred bytes zstd rarely wins; the context model does. Decode is the exact
// inverse of Quantize: it returns the dequantised values, and the channels not
// sent hold `bottleneck.fill`.
//
// Decode checks sizes before it allocates: a payload whose decompressed size is
// not exactly the packed size of the rate is refused, so a hostile message
// cannot make it allocate more than the manifest's bottleneck. It accepts only
// what an encoder could have written: raw bits of exactly the packed size, one
// zstd frame and nothing after it, and for the context coding the one byte
// string that codes the symbols it decodes to (it re-encodes them and
// compares), so a truncated, over-long or random payload is refused, not
// answered with an arbitrary class.
//
// Thread-safety: one FeatureCodec per thread (it owns zstd contexts).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "core/status.h"
#include "splitnet/manifest.h"

namespace deepcut::splitnet {

// How a payload is coded; the encoder picks the smallest that the rate allows.
enum class Coding : std::uint8_t {
  kRaw = 0,      // packed bits
  kZstd = 1,     // zstd frame of the packed bits
  kContext = 2,  // range-coded with the rate's learned context model
};

struct EncodedFeatures {
  Coding coding = Coding::kZstd;
  std::vector<std::uint8_t> payload;
};

struct FeatureCodecOptions {
  int zstd_level = 19;  // features are tiny, so the slowest level still costs microseconds
};

class FeatureCodec {
 public:
  explicit FeatureCodec(FeatureCodecOptions options = {});
  ~FeatureCodec();
  FeatureCodec(const FeatureCodec&) = delete;
  FeatureCodec& operator=(const FeatureCodec&) = delete;

  // `features` holds bottleneck.Elements() floats in CHW order.
  Result<EncodedFeatures> Encode(std::span<const float> features, const BottleneckSpec& bottleneck,
                                 const Rate& rate);
  // The features in exactly `coding` (for tests and test vectors; fails for the
  // context coding if the rate has no context model).
  Result<std::vector<std::uint8_t>> EncodeIn(Coding coding, std::span<const float> features,
                                             const BottleneckSpec& bottleneck, const Rate& rate);
  // Returns bottleneck.Elements() floats.
  Result<std::vector<float>> Decode(Coding coding, std::span<const std::uint8_t> payload,
                                    const BottleneckSpec& bottleneck, const Rate& rate);

  // The integer code of one value at `bits` (exposed for tests and the scene detector).
  static std::uint32_t QuantizeValue(float x, float min, float max, int bits);
  static float DequantizeValue(std::uint32_t q, float min, float max, int bits);
  // Bytes of the packed bit stream for a rate.
  static size_t PackedBytes(const BottleneckSpec& bottleneck, const Rate& rate);
  // The largest payload Decode takes in `coding` (docs/protocol.md, "Payload").
  static size_t MaxPayloadBytes(const BottleneckSpec& bottleneck, const Rate& rate, Coding coding);
  // Which codings Encode may pick (for measuring each alone).
  void set_allowed(bool context, bool zstd) {
    allow_context_ = context;
    allow_zstd_ = zstd;
  }

 private:
  // The codes of the first rate.channels channels, CHW order.
  static Result<std::vector<std::uint32_t>> Quantize(std::span<const float> features,
                                                     const BottleneckSpec& bottleneck,
                                                     const Rate& rate);
  Result<std::vector<std::uint8_t>> CodeSymbols(Coding coding, std::span<const std::uint32_t> codes,
                                                const BottleneckSpec& bottleneck, const Rate& rate);

  FeatureCodecOptions options_;
  bool allow_context_ = true, allow_zstd_ = true;
  struct ZstdContexts;
  std::unique_ptr<ZstdContexts> zstd_;
};

// Bit packing, MSB-first; exposed for tests.
std::vector<std::uint8_t> PackBits(std::span<const std::uint32_t> codes, int bits);
// Returns false if `packed` is not exactly the size `count` codes need.
bool UnpackBits(std::span<const std::uint8_t> packed, int bits, size_t count,
                std::vector<std::uint32_t>& codes);

}  // namespace deepcut::splitnet
