#include "splitnet/range_coder.h"

namespace deepcut::splitnet {

namespace {
constexpr std::uint32_t kTop = 1u << 24;
}

void RangeEncoder::ShiftLow() {
  if (static_cast<std::uint32_t>(low_) < 0xFF000000u || (low_ >> 32) != 0) {
    const std::uint8_t carry = static_cast<std::uint8_t>(low_ >> 32);
    std::uint8_t temp = cache_;
    do {
      out_.push_back(static_cast<std::uint8_t>(temp + carry));
      temp = 0xFF;
    } while (--cache_size_ != 0);
    cache_ = static_cast<std::uint8_t>(low_ >> 24);
  }
  ++cache_size_;
  low_ = (low_ & 0x00FFFFFFu) << 8;
}

void RangeEncoder::Encode(std::uint32_t cumulative, std::uint32_t frequency) {
  range_ >>= kTotalBits;
  low_ += static_cast<std::uint64_t>(range_) * cumulative;
  range_ *= frequency;
  while (range_ < kTop) {
    range_ <<= 8;
    ShiftLow();
  }
}

std::vector<std::uint8_t> RangeEncoder::Finish() {
  // Any value in [low, low + range) decodes the same symbols; take the one with
  // the most trailing zero bits, whose zero bytes are then not sent at all.
  for (int k = 40; k >= 0; --k) {
    const std::uint64_t mask = (std::uint64_t{1} << k) - 1;
    const std::uint64_t v = (low_ + mask) & ~mask;
    if (v <= low_ + range_ - 1) {
      low_ = v;
      break;
    }
  }
  for (int i = 0; i < 5; ++i) ShiftLow();
  // The first byte is always the initial zero cache; the decoder skips it, so
  // it is not sent. Trailing zeros are implied (the decoder reads zeros past
  // the end), so they are not sent either.
  std::vector<std::uint8_t> out(out_.begin() + 1, out_.end());
  while (!out.empty() && out.back() == 0) out.pop_back();
  // At least one byte, so a payload is never empty on the wire.
  if (out.empty()) out.push_back(0);
  return out;
}

RangeDecoder::RangeDecoder(std::span<const std::uint8_t> in) : in_(in) {
  for (int i = 0; i < 4; ++i) code_ = (code_ << 8) | NextByte();
}

int RangeDecoder::Decode(const std::uint16_t* frequencies, int count) {
  range_ >>= kTotalBits;
  if (range_ == 0) range_ = 1;  // only reachable on hostile input
  std::uint32_t value = code_ / range_;
  if (value >= (1u << kTotalBits)) value = (1u << kTotalBits) - 1;
  int symbol = 0;
  std::uint32_t cumulative = 0;
  while (symbol < count - 1 && cumulative + frequencies[symbol] <= value)
    cumulative += frequencies[symbol++];
  code_ -= cumulative * range_;
  range_ *= frequencies[symbol];
  while (range_ < kTop) {
    code_ = (code_ << 8) | NextByte();
    range_ <<= 8;
  }
  return symbol;
}

}  // namespace deepcut::splitnet
