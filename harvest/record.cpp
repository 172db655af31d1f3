#include "harvest/record.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <msgpack.hpp>

namespace deepcut::harvest {
namespace {

constexpr int kRecordFormat = 1;
constexpr std::size_t kRecordFields = 18;

void PackFloats(msgpack::packer<msgpack::sbuffer>& pk, const std::vector<float>& v) {
  pk.pack_bin(static_cast<std::uint32_t>(4 * v.size()));
  pk.pack_bin_body(reinterpret_cast<const char*>(v.data()),
                   static_cast<std::uint32_t>(4 * v.size()));
}

}  // namespace

std::vector<std::uint8_t> EncodeRecord(const HarvestRecord& r) {
  msgpack::sbuffer buffer;
  msgpack::packer<msgpack::sbuffer> pk(buffer);
  pk.pack_array(kRecordFields);
  pk.pack(kRecordFormat);
  pk.pack(r.edge);
  pk.pack(r.item);
  pk.pack(r.frame_id);
  pk.pack(r.capture_us);
  pk.pack(r.stored_us);
  pk.pack(r.label);
  pk.pack_bin(static_cast<std::uint32_t>(r.image_png.size()));
  pk.pack_bin_body(reinterpret_cast<const char*>(r.image_png.data()),
                   static_cast<std::uint32_t>(r.image_png.size()));
  PackFloats(pk, r.features);  // float32, this machine's order (little-endian: x86, ARM)
  pk.pack(r.exit_class);
  pk.pack(static_cast<double>(r.exit_confidence));
  PackFloats(pk, r.exit_scores);
  pk.pack(r.cloud_class);
  pk.pack(static_cast<double>(r.cloud_confidence));
  pk.pack(r.sampler);
  pk.pack(r.score);
  pk.pack(r.package);
  pk.pack(r.model_tag);
  return std::vector<std::uint8_t>(buffer.data(), buffer.data() + buffer.size());
}

Result<HarvestRecord> DecodeRecord(std::span<const std::uint8_t> bytes) {
  msgpack::object_handle handle;
  try {
    std::size_t offset = 0;
    handle =
        msgpack::unpack(reinterpret_cast<const char*>(bytes.data()), bytes.size(), offset, nullptr,
                        nullptr, msgpack::unpack_limit(32, 0, 256, kMaxImageBytes, 0, 2));
    if (offset != bytes.size()) return InvalidArgument("harvest record has trailing bytes");
  } catch (const std::exception& e) {
    return InvalidArgument(std::string("harvest record is not valid msgpack: ") + e.what());
  }
  const msgpack::object& o = handle.get();
  if (o.type != msgpack::type::ARRAY || o.via.array.size != kRecordFields)
    return InvalidArgument("harvest record must be an array of " + std::to_string(kRecordFields) +
                           " fields");
  const msgpack::object* f = o.via.array.ptr;
  std::string bad;
  auto integer = [&](int i, const char* name, std::int64_t lo, std::int64_t hi) -> std::int64_t {
    std::int64_t v = 0;
    if (f[i].type == msgpack::type::POSITIVE_INTEGER && f[i].via.u64 <= INT64_MAX)
      v = static_cast<std::int64_t>(f[i].via.u64);
    else if (f[i].type == msgpack::type::NEGATIVE_INTEGER)
      v = f[i].via.i64;
    else if (bad.empty())
      bad = std::string(name) + " must be an integer";
    if ((v < lo || v > hi) && bad.empty()) bad = std::string(name) + " is out of range";
    return v;
  };
  auto unsigned64 = [&](int i, const char* name) -> std::uint64_t {
    if (f[i].type == msgpack::type::POSITIVE_INTEGER) return f[i].via.u64;
    if (bad.empty()) bad = std::string(name) + " must be an unsigned integer";
    return 0;
  };
  auto number = [&](int i, const char* name) -> double {
    double v = 0;
    if (f[i].type == msgpack::type::FLOAT32 || f[i].type == msgpack::type::FLOAT64)
      v = f[i].via.f64;
    else if (f[i].type == msgpack::type::POSITIVE_INTEGER)
      v = static_cast<double>(f[i].via.u64);
    else if (f[i].type == msgpack::type::NEGATIVE_INTEGER)
      v = static_cast<double>(f[i].via.i64);
    else if (bad.empty())
      bad = std::string(name) + " must be a number";
    if (!std::isfinite(v) && bad.empty()) bad = std::string(name) + " must be finite";
    return v;
  };
  auto blob = [&](int i, const char* name) -> std::span<const std::uint8_t> {
    if (f[i].type != msgpack::type::BIN) {
      if (bad.empty()) bad = std::string(name) + " must be binary";
      return {};
    }
    return {reinterpret_cast<const std::uint8_t*>(f[i].via.bin.ptr), f[i].via.bin.size};
  };
  auto floats = [&](int i, const char* name, std::size_t max_n) -> std::vector<float> {
    const auto b = blob(i, name);
    if (b.size() % 4 != 0 || b.size() / 4 > max_n) {
      if (bad.empty()) bad = std::string(name) + " must hold whole float32 values";
      return {};
    }
    std::vector<float> v(b.size() / 4);
    std::memcpy(v.data(), b.data(), b.size());
    for (float x : v)
      if (!std::isfinite(x) && bad.empty()) bad = std::string(name) + " must be finite";
    return v;
  };
  auto text = [&](int i, const char* name) -> std::string {
    if (f[i].type != msgpack::type::STR) {
      if (bad.empty()) bad = std::string(name) + " must be a string";
      return {};
    }
    return std::string(f[i].via.str.ptr, f[i].via.str.size);
  };
  HarvestRecord r;
  if (integer(0, "format", kRecordFormat, kRecordFormat) != kRecordFormat || !bad.empty())
    return InvalidArgument("harvest record: unsupported format (this side reads " +
                           std::to_string(kRecordFormat) + ")");
  r.edge = unsigned64(1, "edge");
  r.item = unsigned64(2, "item");
  r.frame_id = integer(3, "frame_id", 0, INT64_MAX);
  r.capture_us = integer(4, "capture_us", INT64_MIN, INT64_MAX);
  r.stored_us = integer(5, "stored_us", INT64_MIN, INT64_MAX);
  r.label = static_cast<int>(integer(6, "label", -1, kMaxClasses - 1));
  const auto png = blob(7, "image");
  r.image_png.assign(png.begin(), png.end());
  r.features = floats(8, "features", kMaxFeatures);
  r.exit_class = static_cast<int>(integer(9, "exit_class", 0, kMaxClasses - 1));
  r.exit_confidence = static_cast<float>(number(10, "exit_confidence"));
  r.exit_scores = floats(11, "exit_scores", kMaxClasses);
  r.cloud_class = static_cast<int>(integer(12, "cloud_class", -1, kMaxClasses - 1));
  r.cloud_confidence = static_cast<float>(number(13, "cloud_confidence"));
  r.sampler = text(14, "sampler");
  r.score = number(15, "score");
  r.package = text(16, "package");
  r.model_tag = static_cast<std::uint16_t>(integer(17, "model_tag", 0, UINT16_MAX));
  if (!bad.empty()) return InvalidArgument("harvest record field " + bad);
  if (r.image_png.empty()) return InvalidArgument("harvest record field image is empty");
  if (r.features.empty()) return InvalidArgument("harvest record field features is empty");
  if (r.exit_scores.empty() || r.exit_class >= static_cast<int>(r.exit_scores.size()) ||
      r.cloud_class >= static_cast<int>(r.exit_scores.size()))
    return InvalidArgument("harvest record: classes do not match its scores");
  return r;
}

std::string EdgeIdText(std::uint64_t edge) {
  char text[17];
  std::snprintf(text, sizeof(text), "%016llx", static_cast<unsigned long long>(edge));
  return text;
}

Result<std::uint64_t> ParseEdgeId(const std::string& text) {
  if (text.size() != 16 || text.find_first_not_of("0123456789abcdef") != std::string::npos)
    return InvalidArgument("edge id '" + text + "' is not 16 hex digits");
  return std::stoull(text, nullptr, 16);
}

}  // namespace deepcut::harvest
