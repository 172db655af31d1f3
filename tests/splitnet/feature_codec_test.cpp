#include "splitnet/feature_codec.h"

#include <gtest/gtest.h>

#include <random>

namespace deepcut::splitnet {
namespace {

BottleneckSpec Spec(int c, int h, int w, float min = 0.0f, float max = 1.0f) {
  BottleneckSpec b;
  b.channels = c;
  b.height = h;
  b.width = w;
  b.min = min;
  b.max = max;
  b.fill = -7.0f;  // distinctive, so tests see which channels were not sent
  return b;
}

std::vector<float> RandomFeatures(const BottleneckSpec& b, unsigned seed) {
  std::mt19937 rng(seed);
  // Slightly outside the range too, to exercise clamping.
  std::uniform_real_distribution<float> dist(b.min - 0.1f, b.max + 0.1f);
  std::vector<float> z(b.Elements());
  for (auto& x : z) x = dist(rng);
  return z;
}

TEST(PackBits, RoundTripsEveryWidthAndOddCounts) {
  std::mt19937 rng(1);
  for (int bits = 1; bits <= 8; ++bits) {
    for (size_t count : {1u, 3u, 7u, 8u, 9u, 49u, 391u}) {
      std::vector<std::uint32_t> codes(count);
      for (auto& c : codes) c = rng() & ((1u << bits) - 1u);
      auto packed = PackBits(codes, bits);
      EXPECT_EQ(packed.size(), (count * bits + 7) / 8);
      std::vector<std::uint32_t> back;
      ASSERT_TRUE(UnpackBits(packed, bits, count, back));
      EXPECT_EQ(back, codes) << "bits " << bits << " count " << count;
    }
  }
}

TEST(PackBits, IsMsbFirst) {
  std::vector<std::uint32_t> codes{1, 0, 3};  // 2 bits each: 01 00 11 -> 0100 1100
  auto packed = PackBits(codes, 2);
  ASSERT_EQ(packed.size(), 1u);
  EXPECT_EQ(packed[0], 0x4C);
}

TEST(PackBits, RefusesWrongSize) {
  std::vector<std::uint32_t> out;
  std::vector<std::uint8_t> three(3);
  EXPECT_FALSE(UnpackBits(three, 4, 8, out));  // needs 4 bytes
}

TEST(Quantize, EndpointsAndClampAndNaN) {
  EXPECT_EQ(FeatureCodec::QuantizeValue(0.0f, 0, 1, 4), 0u);
  EXPECT_EQ(FeatureCodec::QuantizeValue(1.0f, 0, 1, 4), 15u);
  EXPECT_EQ(FeatureCodec::QuantizeValue(2.0f, 0, 1, 4), 15u);
  EXPECT_EQ(FeatureCodec::QuantizeValue(-1.0f, 0, 1, 4), 0u);
  EXPECT_EQ(FeatureCodec::QuantizeValue(std::nanf(""), 0, 1, 4), 0u);
  EXPECT_EQ(FeatureCodec::QuantizeValue(0.5f, 0, 1, 1), 1u);  // rounds half up
  EXPECT_FLOAT_EQ(FeatureCodec::DequantizeValue(15, 0, 1, 4), 1.0f);
  EXPECT_FLOAT_EQ(FeatureCodec::DequantizeValue(0, -2, 2, 8), -2.0f);
}

// Decode(Encode(z)) equals the quantise-dequantise of z exactly, for every rate
// shape, including odd shapes and channel subsets.
TEST(FeatureCodec, RoundTripEqualsQuantizationAtEveryRate) {
  FeatureCodec codec;
  const std::vector<BottleneckSpec> specs{Spec(8, 7, 7), Spec(3, 5, 3, -1.5f, 2.5f), Spec(1, 1, 1),
                                          Spec(16, 7, 7), Spec(5, 11, 13)};
  unsigned seed = 0;
  for (const auto& b : specs) {
    for (int bits = 1; bits <= 8; ++bits) {
      for (int channels : {1, (b.channels + 1) / 2, b.channels}) {
        Rate rate{"r", bits, channels};
        auto z = RandomFeatures(b, ++seed);
        auto encoded = codec.Encode(z, b, rate);
        ASSERT_TRUE(encoded.ok()) << encoded.status().ToString();
        EXPECT_LE(encoded->payload.size(), FeatureCodec::PackedBytes(b, rate));
        auto decoded = codec.Decode(encoded->coding, encoded->payload, b, rate);
        ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
        ASSERT_EQ(decoded->size(), z.size());
        const int sent = channels * b.ChannelElements();
        for (int i = 0; i < b.Elements(); ++i) {
          float expected = i < sent ? FeatureCodec::DequantizeValue(
                                          FeatureCodec::QuantizeValue(z[i], b.min, b.max, bits),
                                          b.min, b.max, bits)
                                    : b.fill;
          ASSERT_FLOAT_EQ((*decoded)[i], expected) << "bits " << bits << " i " << i;
        }
        // The quantisation error is at most half a step.
        const float step = (b.max - b.min) / float((1 << bits) - 1);
        for (int i = 0; i < sent; ++i) {
          float clamped = std::min(std::max(z[i], b.min), b.max);
          EXPECT_LE(std::abs((*decoded)[i] - clamped), step / 2 + 1e-5f);
        }
      }
    }
  }
}

TEST(FeatureCodec, CompressesRedundantFeatures) {
  FeatureCodec codec;
  auto b = Spec(8, 7, 7);
  std::vector<float> z(b.Elements(), 0.0f);  // a constant tensor compresses well
  auto encoded = codec.Encode(z, b, Rate{"8b", 8, 8});
  ASSERT_TRUE(encoded.ok());
  EXPECT_EQ(encoded->coding, Coding::kZstd);
  EXPECT_LT(encoded->payload.size(), 40u);
}

TEST(FeatureCodec, RefusesWrongInputSize) {
  FeatureCodec codec;
  auto b = Spec(8, 7, 7);
  std::vector<float> z(10);
  EXPECT_FALSE(codec.Encode(z, b, Rate{"8b", 8, 8}).ok());
  EXPECT_FALSE(codec.Encode(std::vector<float>(b.Elements()), b, Rate{"x", 9, 8}).ok());
  EXPECT_FALSE(codec.Encode(std::vector<float>(b.Elements()), b, Rate{"x", 4, 9}).ok());
}

TEST(FeatureCodec, RefusesCorruptOrMismatchedPayloads) {
  FeatureCodec codec;
  auto b = Spec(8, 7, 7);
  auto z = RandomFeatures(b, 3);
  Rate r8{"8b", 8, 8}, r4{"4b", 4, 8};
  auto encoded = codec.Encode(z, b, r8);
  ASSERT_TRUE(encoded.ok());
  // Right bytes, wrong rate: the decompressed size does not fit.
  auto wrong_rate = codec.Decode(encoded->coding, encoded->payload, b, r4);
  EXPECT_FALSE(wrong_rate.ok());
  // Garbage as zstd.
  std::vector<std::uint8_t> garbage{1, 2, 3, 4, 5, 6, 7, 8};
  auto bad = codec.Decode(Coding::kZstd, garbage, b, r8);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kDataLoss);
  // Truncated.
  if (encoded->coding == Coding::kZstd) {
    std::vector<std::uint8_t> cut(encoded->payload.begin(), encoded->payload.end() - 3);
    EXPECT_FALSE(codec.Decode(Coding::kZstd, cut, b, r8).ok());
  }
  // Raw payload of the wrong size.
  EXPECT_FALSE(codec.Decode(Coding::kRaw, garbage, b, r8).ok());
  // Empty payload.
  EXPECT_FALSE(codec.Decode(Coding::kZstd, {}, b, r8).ok());
  // Unknown coding.
  EXPECT_FALSE(codec.Decode(static_cast<Coding>(7), garbage, b, r8).ok());
}

}  // namespace
}  // namespace deepcut::splitnet

namespace deepcut::splitnet {
namespace {

// A context model with skewed random tables: enough to exercise every path.
Rate ContextRate(int bits, int channels, unsigned seed) {
  Rate rate{"ctx", bits, channels};
  std::mt19937 rng(seed);
  const int s = rate.Symbols();
  for (int c = 0; c < channels; ++c)
    for (int k = 0; k < rate.Contexts(); ++k) {
      std::vector<int> f(s, 1);
      int left = 4096 - s;
      // Most mass on one symbol, like real saturated features.
      const int peak = static_cast<int>(rng() % s);
      f[peak] += left * 3 / 4;
      left -= left * 3 / 4;
      for (int i = 0; left > 0; i = (i + 1) % s) {
        int add = std::min<int>(left, 1 + rng() % 97);
        f[i] += add;
        left -= add;
      }
      for (int x : f) rate.context_frequencies.push_back(static_cast<std::uint16_t>(x));
    }
  return rate;
}

TEST(ContextCoding, RoundTripsAndBeatsRawOnPredictableFeatures) {
  FeatureCodec codec;
  const BottleneckSpec b = Spec(8, 7, 7);
  for (int bits : {1, 2, 3, 4}) {
    for (int channels : {1, 4, 8}) {
      Rate rate = ContextRate(bits, channels, bits * 10 + channels);
      std::mt19937 rng(bits + channels);
      for (int trial = 0; trial < 20; ++trial) {
        std::vector<float> z(b.Elements());
        for (auto& x : z) x = std::uniform_real_distribution<float>(0, 1)(rng);
        auto e = codec.Encode(z, b, rate);
        ASSERT_TRUE(e.ok());
        auto d = codec.Decode(e->coding, e->payload, b, rate);
        ASSERT_TRUE(d.ok()) << d.status().ToString();
        for (int i = 0; i < channels * b.ChannelElements(); ++i) {
          ASSERT_FLOAT_EQ((*d)[i], FeatureCodec::DequantizeValue(
                                       FeatureCodec::QuantizeValue(z[i], 0, 1, bits), 0, 1, bits))
              << "bits " << bits << " channels " << channels;
        }
      }
    }
  }
  // A smooth map (one value everywhere) is what the tables predict well: the
  // context coder must win over raw bits and zstd.
  Rate rate{"2b", 2, 8};
  const int s = rate.Symbols();
  for (int c = 0; c < 8; ++c)
    for (int k = 0; k < rate.Contexts(); ++k)
      for (int i = 0; i < s; ++i) rate.context_frequencies.push_back(i == 0 ? 4096 - (s - 1) : 1);
  std::vector<float> zeros(b.Elements(), 0.0f);
  auto e = codec.Encode(zeros, b, rate);
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->coding, Coding::kContext);
  EXPECT_LT(e->payload.size(), 8u);
  auto d = codec.Decode(e->coding, e->payload, b, rate);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(*d, zeros);
}

TEST(ContextCoding, HostilePayloadsNeverCrash) {
  FeatureCodec codec;
  const BottleneckSpec b = Spec(8, 7, 7);
  Rate rate = ContextRate(2, 8, 5);
  std::mt19937 rng(9);
  for (int trial = 0; trial < 500; ++trial) {
    std::vector<std::uint8_t> junk(1 + rng() % 100);
    for (auto& x : junk) x = static_cast<std::uint8_t>(rng());
    auto d = codec.Decode(Coding::kContext, junk, b, rate);
    if (d.ok()) {
      EXPECT_EQ(d->size(), static_cast<size_t>(b.Elements()));
    }
  }
  EXPECT_FALSE(codec.Decode(Coding::kContext, std::vector<std::uint8_t>(500, 1), b, rate).ok());
  Rate no_model{"2b", 2, 8};
  EXPECT_FALSE(codec.Decode(Coding::kContext, std::vector<std::uint8_t>(10, 1), b, no_model).ok());
}

}  // namespace
}  // namespace deepcut::splitnet
