#include "splitnet/feature_codec.h"

#include <zlib.h>
#include <zstd.h>

#include "splitnet/range_coder.h"

#include <algorithm>
#include <cmath>
#include <string>

namespace deepcut::splitnet {

struct FeatureCodec::ZstdContexts {
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  ZSTD_DCtx* dctx = ZSTD_createDCtx();
  ~ZstdContexts() {
    ZSTD_freeCCtx(cctx);
    ZSTD_freeDCtx(dctx);
  }
};

FeatureCodec::FeatureCodec(FeatureCodecOptions options)
    : options_(options), zstd_(std::make_unique<ZstdContexts>()) {
  // Every byte counts on the wire: no checksum, no dictionary id; keep the
  // content size so the decoder can check it before allocating.
  ZSTD_CCtx_setParameter(zstd_->cctx, ZSTD_c_compressionLevel, options_.zstd_level);
  ZSTD_CCtx_setParameter(zstd_->cctx, ZSTD_c_checksumFlag, 0);
  ZSTD_CCtx_setParameter(zstd_->cctx, ZSTD_c_dictIDFlag, 0);
  ZSTD_CCtx_setParameter(zstd_->cctx, ZSTD_c_contentSizeFlag, 1);
}

FeatureCodec::~FeatureCodec() = default;

std::uint32_t FeatureCodec::QuantizeValue(float x, float min, float max, int bits) {
  const std::uint32_t levels = (1u << bits) - 1u;
  float t = (x - min) / (max - min);
  if (!(t > 0.0f)) return 0;  // also catches NaN
  if (t >= 1.0f) return levels;
  return static_cast<std::uint32_t>(std::lround(t * static_cast<float>(levels)));
}

float FeatureCodec::DequantizeValue(std::uint32_t q, float min, float max, int bits) {
  const std::uint32_t levels = (1u << bits) - 1u;
  return min + static_cast<float>(q) * (max - min) / static_cast<float>(levels);
}

size_t FeatureCodec::PackedBytes(const BottleneckSpec& bottleneck, const Rate& rate) {
  size_t count = static_cast<size_t>(rate.channels) * bottleneck.ChannelElements();
  return (count * static_cast<size_t>(rate.bits) + 7) / 8;
}

size_t FeatureCodec::MaxPayloadBytes(const BottleneckSpec& bottleneck, const Rate& rate,
                                     Coding coding) {
  const size_t packed = PackedBytes(bottleneck, rate);
  switch (coding) {
    case Coding::kRaw:
      return packed;
    case Coding::kZstd:
      return packed + 64;  // a zstd frame's header and block headers, with room
    case Coding::kContext:
      return packed + 17;  // a range coder exceeds the raw bits by a few bytes; the check byte
  }
  return 0;
}

std::vector<std::uint8_t> PackBits(std::span<const std::uint32_t> codes, int bits) {
  std::vector<std::uint8_t> out((codes.size() * bits + 7) / 8, 0);
  size_t bit = 0;
  for (std::uint32_t code : codes) {
    for (int b = bits - 1; b >= 0; --b, ++bit)
      if ((code >> b) & 1u) out[bit >> 3] |= static_cast<std::uint8_t>(0x80u >> (bit & 7));
  }
  return out;
}

bool UnpackBits(std::span<const std::uint8_t> packed, int bits, size_t count,
                std::vector<std::uint32_t>& codes) {
  if (packed.size() != (count * bits + 7) / 8) return false;
  codes.assign(count, 0);
  size_t bit = 0;
  for (size_t i = 0; i < count; ++i) {
    std::uint32_t code = 0;
    for (int b = 0; b < bits; ++b, ++bit)
      code = (code << 1) | ((packed[bit >> 3] >> (7 - (bit & 7))) & 1u);
    codes[i] = code;
  }
  return true;
}

namespace {

// The context of a symbol: its left and upper neighbours in the same channel,
// `symbols` standing for "outside the map".
inline int ContextOf(const std::uint32_t* channel, int y, int x, int width, int symbols) {
  const int left = x > 0 ? static_cast<int>(channel[y * width + x - 1]) : symbols;
  const int up = y > 0 ? static_cast<int>(channel[(y - 1) * width + x]) : symbols;
  return left * (symbols + 1) + up;
}

std::vector<std::uint8_t> ContextEncode(const std::vector<std::uint32_t>& codes,
                                        const BottleneckSpec& b, const Rate& rate) {
  const int symbols = rate.Symbols(), plane = b.ChannelElements();
  RangeEncoder encoder;
  for (int c = 0; c < rate.channels; ++c) {
    const std::uint32_t* channel = codes.data() + static_cast<size_t>(c) * plane;
    const std::uint16_t* tables =
        rate.context_frequencies.data() + static_cast<size_t>(c) * rate.Contexts() * symbols;
    for (int y = 0; y < b.height; ++y)
      for (int x = 0; x < b.width; ++x) {
        const std::uint16_t* freqs = tables + ContextOf(channel, y, x, b.width, symbols) * symbols;
        const std::uint32_t s = channel[y * b.width + x];
        std::uint32_t cumulative = 0;
        for (std::uint32_t k = 0; k < s; ++k) cumulative += freqs[k];
        encoder.Encode(cumulative, freqs[s]);
      }
  }
  return encoder.Finish();
}

void ContextDecode(std::span<const std::uint8_t> payload, const BottleneckSpec& b, const Rate& rate,
                   std::vector<std::uint32_t>& codes) {
  const int symbols = rate.Symbols(), plane = b.ChannelElements();
  codes.assign(static_cast<size_t>(rate.channels) * plane, 0);
  RangeDecoder decoder(payload);
  for (int c = 0; c < rate.channels; ++c) {
    std::uint32_t* channel = codes.data() + static_cast<size_t>(c) * plane;
    const std::uint16_t* tables =
        rate.context_frequencies.data() + static_cast<size_t>(c) * rate.Contexts() * symbols;
    for (int y = 0; y < b.height; ++y)
      for (int x = 0; x < b.width; ++x)
        channel[y * b.width + x] = static_cast<std::uint32_t>(
            decoder.Decode(tables + ContextOf(channel, y, x, b.width, symbols) * symbols, symbols));
  }
}

// The last byte of a context-coded payload: the low byte of the CRC-32 (zlib's)
// of the range-coded bytes before it. A range coder leaves no redundancy (almost
// any byte string decodes to some symbols and is their coding), so without it a
// truncated or corrupted payload would be answered with an arbitrary class.
std::uint8_t CheckByte(std::span<const std::uint8_t> coded) {
  return static_cast<std::uint8_t>(
      crc32(crc32(0L, Z_NULL, 0), coded.data(), static_cast<uInt>(coded.size())) & 0xFF);
}

bool HasContextModel(const BottleneckSpec& b, const Rate& rate) {
  return !rate.context_frequencies.empty() &&
         rate.context_frequencies.size() ==
             static_cast<size_t>(rate.channels) * rate.Contexts() * rate.Symbols() &&
         rate.channels <= b.channels;
}

}  // namespace

Result<std::vector<std::uint32_t>> FeatureCodec::Quantize(std::span<const float> features,
                                                          const BottleneckSpec& bottleneck,
                                                          const Rate& rate) {
  if (features.size() != static_cast<size_t>(bottleneck.Elements()))
    return InvalidArgument("features hold " + std::to_string(features.size()) +
                           " values, the bottleneck has " + std::to_string(bottleneck.Elements()));
  if (rate.bits < 1 || rate.bits > 8 || rate.channels < 1 || rate.channels > bottleneck.channels)
    return InvalidArgument("rate " + rate.name + " does not fit the bottleneck");
  const size_t count = static_cast<size_t>(rate.channels) * bottleneck.ChannelElements();
  std::vector<std::uint32_t> codes(count);
  for (size_t i = 0; i < count; ++i)
    codes[i] = QuantizeValue(features[i], bottleneck.min, bottleneck.max, rate.bits);
  return codes;
}

Result<std::vector<std::uint8_t>> FeatureCodec::CodeSymbols(Coding coding,
                                                            std::span<const std::uint32_t> codes,
                                                            const BottleneckSpec& bottleneck,
                                                            const Rate& rate) {
  std::vector<std::uint8_t> packed = PackBits(codes, rate.bits);
  if (coding == Coding::kRaw) return packed;
  if (coding == Coding::kZstd) {
    std::vector<std::uint8_t> z(ZSTD_compressBound(packed.size()));
    size_t n = ZSTD_compress2(zstd_->cctx, z.data(), z.size(), packed.data(), packed.size());
    if (ZSTD_isError(n)) return Internal(std::string("zstd compress: ") + ZSTD_getErrorName(n));
    z.resize(n);
    return z;
  }
  if (!HasContextModel(bottleneck, rate))
    return InvalidArgument("rate " + rate.name + " has no context model");
  const std::vector<std::uint32_t> symbols(codes.begin(), codes.end());
  auto coded = ContextEncode(symbols, bottleneck, rate);
  coded.push_back(CheckByte(coded));
  return coded;
}

Result<std::vector<std::uint8_t>> FeatureCodec::EncodeIn(Coding coding,
                                                         std::span<const float> features,
                                                         const BottleneckSpec& bottleneck,
                                                         const Rate& rate) {
  ASSIGN_OR_RETURN(auto codes, Quantize(features, bottleneck, rate));
  return CodeSymbols(coding, codes, bottleneck, rate);
}

Result<EncodedFeatures> FeatureCodec::Encode(std::span<const float> features,
                                             const BottleneckSpec& bottleneck, const Rate& rate) {
  ASSIGN_OR_RETURN(auto codes, Quantize(features, bottleneck, rate));
  EncodedFeatures out;
  out.coding = Coding::kRaw;
  ASSIGN_OR_RETURN(out.payload, CodeSymbols(Coding::kRaw, codes, bottleneck, rate));
  // zstd never beats a fitted context model on a few hundred bytes and costs
  // most of the encode time, so it is only tried for rates without one.
  const bool context = allow_context_ && HasContextModel(bottleneck, rate);
  for (Coding candidate : {Coding::kZstd, Coding::kContext}) {
    if (candidate == Coding::kZstd ? !allow_zstd_ || context : !context) continue;
    ASSIGN_OR_RETURN(auto coded, CodeSymbols(candidate, codes, bottleneck, rate));
    if (coded.size() < out.payload.size()) {
      out.coding = candidate;
      out.payload = std::move(coded);
    }
  }
  return out;
}

Result<std::vector<float>> FeatureCodec::Decode(Coding coding,
                                                std::span<const std::uint8_t> payload,
                                                const BottleneckSpec& bottleneck,
                                                const Rate& rate) {
  if (rate.bits < 1 || rate.bits > 8 || rate.channels < 1 || rate.channels > bottleneck.channels)
    return InvalidArgument("rate " + rate.name + " does not fit the bottleneck");
  const size_t count = static_cast<size_t>(rate.channels) * bottleneck.ChannelElements();
  const size_t packed_size = PackedBytes(bottleneck, rate);
  std::vector<std::uint8_t> packed;
  std::span<const std::uint8_t> bits_span = payload;
  if (coding != Coding::kRaw && coding != Coding::kZstd && coding != Coding::kContext)
    return InvalidArgument("unknown coding " + std::to_string(static_cast<int>(coding)));
  if (payload.empty() || payload.size() > MaxPayloadBytes(bottleneck, rate, coding))
    return DataLoss("payload of " + std::to_string(payload.size()) +
                    " bytes is implausible for rate " + rate.name + " in coding " +
                    std::to_string(static_cast<int>(coding)));
  if (coding == Coding::kZstd) {
    if (ZSTD_findFrameCompressedSize(payload.data(), payload.size()) != payload.size())
      return DataLoss("payload is not exactly one zstd frame");
    unsigned long long size = ZSTD_getFrameContentSize(payload.data(), payload.size());
    if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN)
      return DataLoss("payload is not a zstd frame with a known content size");
    if (size != packed_size)
      return DataLoss("payload decompresses to " + std::to_string(size) + " bytes, rate " +
                      rate.name + " needs " + std::to_string(packed_size));
    packed.resize(packed_size);
    size_t n = ZSTD_decompressDCtx(zstd_->dctx, packed.data(), packed.size(), payload.data(),
                                   payload.size());
    if (ZSTD_isError(n)) return DataLoss(std::string("zstd: ") + ZSTD_getErrorName(n));
    if (n != packed_size) return DataLoss("zstd payload is shorter than its header says");
    bits_span = packed;
  } else if (coding == Coding::kContext) {
    if (!HasContextModel(bottleneck, rate))
      return DataLoss("payload is context-coded but rate " + rate.name + " has no context model");
    if (payload.size() < 2 || CheckByte(payload.first(payload.size() - 1)) != payload.back())
      return DataLoss("context-coded payload of " + std::to_string(payload.size()) +
                      " bytes fails its check byte (truncated or corrupt)");
  }
  std::vector<std::uint32_t> codes;
  if (coding == Coding::kContext) {
    const auto coded = payload.first(payload.size() - 1);
    ContextDecode(coded, bottleneck, rate, codes);
    // Only the encoder's own output for the symbols decoded is a payload: this
    // refuses bytes after the flush, and a flush that is not the shortest.
    const auto canonical = ContextEncode(codes, bottleneck, rate);
    if (!std::equal(canonical.begin(), canonical.end(), coded.begin(), coded.end()))
      return DataLoss("context-coded payload of " + std::to_string(payload.size()) +
                      " bytes is not a coding of rate " + rate.name + " (its symbols code to " +
                      std::to_string(canonical.size() + 1) + " bytes)");
  } else if (!UnpackBits(bits_span, rate.bits, count, codes))
    return DataLoss("raw payload has " + std::to_string(bits_span.size()) + " bytes, rate " +
                    rate.name + " needs " + std::to_string(packed_size));
  std::vector<float> out(bottleneck.Elements(), bottleneck.fill);
  for (size_t i = 0; i < count; ++i)
    out[i] = DequantizeValue(codes[i], bottleneck.min, bottleneck.max, rate.bits);
  return out;
}

}  // namespace deepcut::splitnet
