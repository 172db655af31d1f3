// A byte-oriented range coder (the LZMA "rc" design: 32-bit range, 64-bit low
// with carry propagation through a cached byte) for symbols with static
// frequency tables whose totals are 2^kTotalBits.
//
// Decoding never reads past the input (missing bytes read as zero) and every
// table lookup is bounded, so hostile input decodes to garbage symbols at
// worst, never to a crash.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace deepcut::splitnet {

inline constexpr int kTotalBits = 12;  // every frequency table sums to 4096

class RangeEncoder {
 public:
  // `cumulative` is the sum of the frequencies of the symbols before this one.
  void Encode(std::uint32_t cumulative, std::uint32_t frequency);
  std::vector<std::uint8_t> Finish();

 private:
  void ShiftLow();
  std::uint64_t low_ = 0;
  std::uint32_t range_ = 0xFFFFFFFFu;
  std::uint8_t cache_ = 0;
  std::uint64_t cache_size_ = 1;
  std::vector<std::uint8_t> out_;
};

class RangeDecoder {
 public:
  explicit RangeDecoder(std::span<const std::uint8_t> in);
  // Decodes one symbol of a table of `count` frequencies (each >= 1, sum 2^kTotalBits).
  int Decode(const std::uint16_t* frequencies, int count);

 private:
  std::uint8_t NextByte() { return pos_ < in_.size() ? in_[pos_++] : 0; }
  std::span<const std::uint8_t> in_;
  size_t pos_ = 0;
  std::uint32_t range_ = 0xFFFFFFFFu;
  std::uint32_t code_ = 0;
};

}  // namespace deepcut::splitnet
