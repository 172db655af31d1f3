#include "fuzz/fuzz_bodies.h"

#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <vector>

#include "network/net_trace.h"
#include "splitnet/manifest.h"
#include "trace/frame_trace.h"
#include "transport/protocol.h"

namespace deepcut::fuzz {

void Require(bool property, const std::string& what) {
  if (property) return;
  std::fprintf(stderr, "fuzz property violated: %s\n", what.c_str());
  std::abort();
}

namespace {

// ---- protocol ---------------------------------------------------------------

bool SameRequest(const transport::Request& a, const transport::Request& b) {
  return a.seq == b.seq && a.model == b.model && a.rate_index == b.rate_index &&
         a.deadline_ms == b.deadline_ms && a.coding == b.coding && a.payload == b.payload;
}

bool SameReply(const transport::Reply& a, const transport::Reply& b) {
  if (a.top.size() != b.top.size()) return false;
  for (size_t i = 0; i < a.top.size(); ++i)
    if (a.top[i].class_id != b.top[i].class_id || a.top[i].score != b.top[i].score) return false;
  return a.seq == b.seq && a.status == b.status && a.message == b.message &&
         a.class_id == b.class_id && a.queue_us == b.queue_us && a.decode_us == b.decode_us &&
         a.tail_us == b.tail_us && a.batch_size == b.batch_size;
}

// ---- frame trace ------------------------------------------------------------

void Put32(std::uint8_t* p, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}
std::uint32_t Get32(const std::uint8_t* p) {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= std::uint32_t(p[i]) << (8 * i);
  return v;
}

// The input with every record's CRC-32 recomputed, as far as its framing can be
// followed (docs/frame-trace.md): a fuzzer cannot guess checksums, and without
// this it would never get past them to the image checks and the PNG decoder.
std::vector<std::uint8_t> WithRecordChecksums(const std::uint8_t* data, std::size_t size) {
  constexpr std::string_view kMagic = "deepcut-frames/1\n";
  constexpr std::uint64_t kPreambleBytes = 17 + 4, kRecordHeaderBytes = 24;
  std::vector<std::uint8_t> out(data, data + size);
  if (size < kPreambleBytes || std::memcmp(data, kMagic.data(), kMagic.size()) != 0) return out;
  std::uint64_t offset = kPreambleBytes + Get32(out.data() + kMagic.size());
  while (offset + kRecordHeaderBytes <= size) {
    std::uint8_t* record = out.data() + offset;
    const std::uint64_t png_bytes = Get32(record + 16);
    if (offset + kRecordHeaderBytes + png_bytes > size) break;
    uLong crc = crc32(0L, Z_NULL, 0);
    crc = crc32(crc, record, kRecordHeaderBytes - 4);
    crc = crc32(crc, record + kRecordHeaderBytes, static_cast<uInt>(png_bytes));
    Put32(record + 20, static_cast<std::uint32_t>(crc));
    offset += kRecordHeaderBytes + png_bytes;
  }
  return out;
}

// The reader only opens paths: the bytes go to one memory-backed file per
// process, rewritten for each input, and the reader opens it by its /proc name.
std::string ScratchFile(const std::vector<std::uint8_t>& bytes) {
  static const int fd = memfd_create("deepcut-fuzz-frame-trace", 0);
  Require(fd >= 0, "memfd_create failed");
  Require(ftruncate(fd, 0) == 0, "ftruncate of the scratch file failed");
  std::size_t written = 0;
  while (written < bytes.size()) {
    const ssize_t n =
        pwrite(fd, bytes.data() + written, bytes.size() - written, static_cast<off_t>(written));
    Require(n > 0, "write to the scratch file failed");
    written += static_cast<std::size_t>(n);
  }
  return "/proc/self/fd/" + std::to_string(fd);
}

Status ReadFrameTrace(const std::vector<std::uint8_t>& bytes) {
  auto opened = trace::FrameTraceReader::Open(ScratchFile(bytes));
  if (!opened.ok()) {
    Require(!opened.status().message().empty(), "Open failed without a message");
    return opened.status();
  }
  trace::FrameTraceReader& reader = **opened;
  const trace::FrameTraceHeader& h = reader.header();
  Require(h.frames >= 0 && reader.Remaining() == h.frames, "Remaining() != frames after Open");
  Require(h.width >= 0 && h.width <= trace::kMaxImageSide && h.height >= 0 &&
              h.height <= trace::kMaxImageSide,
          "header size outside the limits");
  Status first_error;
  std::int64_t previous_us = 0;
  // Open walked every record header, so there are exactly `frames` records.
  for (std::int64_t i = 0; i <= h.frames; ++i) {
    auto next = reader.Next();
    if (!next.ok()) {
      Require(i < h.frames, "Next failed past the last record");
      Require(!next.status().message().empty(), "Next failed without a message");
      if (first_error.ok()) first_error = next.status();
      continue;
    }
    if (!next->has_value()) {
      Require(i == h.frames, "the records ended before the header's frame count");
      break;
    }
    Require(i < h.frames, "more records than the header's frame count");
    const trace::FrameRecord& record = **next;
    Require(record.index == i, "record index out of order");
    Require(record.capture_us >= previous_us && record.capture_us <= h.duration_us,
            "capture time outside [previous, duration_us]");
    Require(record.label >= -1 &&
                (h.classes.empty() || record.label < static_cast<int>(h.classes.size())),
            "label outside the classes");
    const cv::Mat& image = record.image;
    Require(!image.empty() && image.depth() == CV_8U &&
                (image.channels() == 1 || image.channels() == 3 || image.channels() == 4) &&
                image.cols <= trace::kMaxImageSide && image.rows <= trace::kMaxImageSide,
            "image is not 8-bit gray, BGR or BGRA within the size limits");
    Require(h.width == 0 ||
                (image.cols == h.width && image.rows == h.height && image.channels() == h.channels),
            "image size differs from the header's");
    previous_us = record.capture_us;
  }
  if (first_error.ok()) {
    auto end = reader.Next();
    Require(end.ok() && !end->has_value() && reader.Remaining() == 0,
            "Next after the end is not the end");
  }
  return first_error;
}

// ---- manifest ---------------------------------------------------------------

// A package folder with placeholder graph files, so that a manifest naming them passes
// the file checks; removed when the process exits normally (a crash leaves it).
class ScratchPackage {
 public:
  ScratchPackage() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "deepcut-fuzz-manifest-XXXXXX").string();
    Require(mkdtemp(pattern.data()) != nullptr, "mkdtemp failed");
    dir_ = pattern;
    for (const char* name : {"head.onnx", "exit.onnx", "tail.onnx"})
      std::ofstream(dir_ / name).put('\0');
  }
  ~ScratchPackage() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  const std::filesystem::path& dir() const { return dir_; }

 private:
  std::filesystem::path dir_;
};

void CheckManifest(const splitnet::Manifest& m) {
  Require(!m.name.empty(), "empty name");
  // The parser refuses numbers that are not finite; none may become so as floats.
  std::vector<float> numbers = {m.input.scale, m.bottleneck.min, m.bottleneck.max,
                                m.bottleneck.fill};
  numbers.insert(numbers.end(), m.input.mean.begin(), m.input.mean.end());
  numbers.insert(numbers.end(), m.input.std.begin(), m.input.std.end());
  for (const auto& bin : m.calibration)
    numbers.insert(numbers.end(), {bin.confidence_min, bin.confidence_max, bin.error_rate});
  for (float x : numbers) Require(std::isfinite(x), "a number is not finite as a float");
  Require(m.input.channels >= 1 && m.input.mean.size() == static_cast<size_t>(m.input.channels) &&
              m.input.std.size() == static_cast<size_t>(m.input.channels),
          "input mean/std do not match the channels");
  for (float s : m.input.std) Require(s > 0.0f, "input std <= 0");
  const auto& b = m.bottleneck;
  Require(b.channels >= 1 && b.height >= 1 && b.width >= 1 && b.Elements() >= 1 &&
              b.Elements() <= (1 << 22) && b.max > b.min,
          "bottleneck outside its limits");
  Require(!m.rates.empty(), "no rates");
  Require(m.default_rate_index >= 0 && m.default_rate_index < static_cast<int>(m.rates.size()),
          "default rate index out of range");
  for (size_t i = 0; i < m.rates.size(); ++i) {
    const splitnet::Rate& r = m.rates[i];
    Require(m.RateIndex(r.name) == static_cast<int>(i), "rate names are not unique");
    Require(r.bits >= 1 && r.bits <= 8 && r.channels >= 1 && r.channels <= b.channels,
            "rate outside its limits");
    const size_t tables = static_cast<size_t>(r.channels) * r.Contexts() * r.Symbols();
    Require(r.context_frequencies.empty() || r.context_frequencies.size() == tables,
            "entropy model of the wrong size");
    for (std::uint16_t f : r.context_frequencies)
      Require(f >= 1 && f <= 4096, "frequency outside [1, 4096]");
  }
  Require(m.classes.size() >= 2, "fewer than 2 classes");
  Require(!m.calibration.empty(), "no calibration");
  for (float confidence : {0.0f, 0.5f, 1.0f}) {
    const float e = m.ExitErrorRate(confidence);
    Require(e >= 0.0f && e <= 1.0f, "exit error rate outside [0, 1]");
  }
  Require(m.fingerprint == splitnet::ComputeFingerprint(m), "fingerprint is not reproducible");
  Require(m.rate_accuracy.size() == m.rates.size(), "one accuracy per rate");
  for (double a : m.rate_accuracy) Require(a >= 0.0 && a <= 1.0, "accuracy outside [0, 1]");
  Require(m.exit_accuracy >= 0.0 && m.exit_accuracy <= 1.0, "exit accuracy outside [0, 1]");
}

}  // namespace

Status RunProtocol(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> bytes(data, size);
  auto request = transport::DecodeRequest(bytes);
  if (request.ok()) {
    const auto encoded = transport::EncodeRequest(*request);
    auto again = transport::DecodeRequest(encoded);
    Require(again.ok(), "a decoded request re-encodes to one that does not decode: " +
                            again.status().ToString());
    Require(SameRequest(*request, *again), "a request changes in a round trip");
    Require(transport::EncodeRequest(*again) == encoded, "a request re-encodes differently");
  } else {
    Require(!request.status().message().empty(), "DecodeRequest failed without a message");
  }
  auto reply = transport::DecodeReply(bytes);
  if (reply.ok()) {
    const auto encoded = transport::EncodeReply(*reply);
    auto again = transport::DecodeReply(encoded);
    Require(again.ok(),
            "a decoded reply re-encodes to one that does not decode: " + again.status().ToString());
    Require(SameReply(*reply, *again), "a reply changes in a round trip");
    Require(transport::EncodeReply(*again) == encoded, "a reply re-encodes differently");
  } else {
    Require(!reply.status().message().empty(), "DecodeReply failed without a message");
  }
  // Harvest chunks and acks (kinds 3 and 4): the same round-trip properties.
  auto chunk = transport::DecodeHarvestChunk(bytes);
  if (chunk.ok()) {
    const auto encoded = transport::EncodeHarvestChunk(*chunk);
    auto again = transport::DecodeHarvestChunk(encoded);
    Require(again.ok() && again->edge == chunk->edge && again->item == chunk->item &&
                again->index == chunk->index && again->count == chunk->count &&
                again->model == chunk->model && again->payload == chunk->payload,
            "a harvest chunk changes in a round trip");
    Require(transport::PeekKind(bytes) == transport::kKindHarvestChunk,
            "a harvest chunk's kind is not read from its first bytes");
  } else {
    Require(!chunk.status().message().empty(), "DecodeHarvestChunk failed without a message");
  }
  auto ack = transport::DecodeHarvestAck(bytes);
  if (ack.ok()) {
    const auto encoded = transport::EncodeHarvestAck(*ack);
    auto again = transport::DecodeHarvestAck(encoded);
    Require(again.ok() && again->edge == ack->edge && again->item == ack->item &&
                again->index == ack->index && again->ok == ack->ok &&
                again->message == ack->message,
            "a harvest ack changes in a round trip");
  } else {
    Require(!ack.status().message().empty(), "DecodeHarvestAck failed without a message");
  }
  const int kinds = request.ok() + reply.ok() + chunk.ok() + ack.ok();
  Require(kinds <= 1, "one message decodes as two kinds");
  if (kinds == 1) return Status::Ok();
  return InvalidArgument(request.status().message() + "; " + reply.status().message());
}

Status RunMahimahi(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto parsed = network::ParseMahimahi(text, "fuzz");
  if (!parsed.ok()) {
    Require(!parsed.status().message().empty(), "ParseMahimahi failed without a message");
    return parsed.status();
  }
  const network::NetTrace& t = *parsed;
  const auto& opportunities = t.opportunities_us;
  Require(t.period_us > 0, "period_us <= 0");
  Require(!opportunities.empty(), "no opportunities");
  Require(opportunities.front() >= 0 && opportunities.back() == t.period_us,
          "opportunities outside [0, period_us] or the period is not the last");
  for (size_t i = 1; i < opportunities.size(); ++i)
    Require(opportunities[i - 1] <= opportunities[i], "opportunities decrease");
  Require(t.MeanBps() > 0.0, "mean rate <= 0");
  // The looped trace, across the first loops and one far away.
  const auto n = static_cast<std::int64_t>(opportunities.size());
  std::vector<std::int64_t> ks;
  for (std::int64_t k = 0; k < std::min<std::int64_t>(3 * n, 64); ++k) ks.push_back(k);
  for (std::int64_t k = 1000 * n; k < 1000 * n + std::min<std::int64_t>(n + 1, 8); ++k)
    ks.push_back(k);
  TimeUs previous = 0;
  for (std::int64_t k : ks) {
    const TimeUs at = t.OpportunityUs(k);
    const std::string where = "opportunity " + std::to_string(k) + " at " + std::to_string(at);
    Require(at >= previous, where + ": the looped trace goes backwards");
    previous = at;
    // FirstAtOrAfter finds the first opportunity at or after a time.
    const std::int64_t first = t.FirstAtOrAfter(at);
    Require(first <= k && t.OpportunityUs(first) == at &&
                (first == 0 || t.OpportunityUs(first - 1) < at),
            where + ": FirstAtOrAfter(" + std::to_string(at) + ") = " + std::to_string(first));
    const std::int64_t after = t.FirstAtOrAfter(at + 1);
    Require(after > k && t.OpportunityUs(after) > at && t.OpportunityUs(after - 1) <= at,
            where + ": FirstAtOrAfter(" + std::to_string(at + 1) + ") = " + std::to_string(after));
  }
  return Status::Ok();
}

Status RunFrameTrace(const std::uint8_t* data, std::size_t size) {
  const std::vector<std::uint8_t> as_given(data, data + size);
  const std::vector<std::uint8_t> fixed = WithRecordChecksums(data, size);
  if (fixed == as_given) return ReadFrameTrace(as_given);
  ReadFrameTrace(as_given);
  return ReadFrameTrace(fixed);
}

Status RunManifest(const std::uint8_t* data, std::size_t size) {
  static const ScratchPackage package;
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto parsed = splitnet::ParseManifest(text, package.dir());
  if (!parsed.ok()) {
    Require(!parsed.status().message().empty(), "ParseManifest failed without a message");
    return parsed.status();
  }
  CheckManifest(*parsed);
  return Status::Ok();
}

int FuzzProtocol(const std::uint8_t* data, std::size_t size) {
  RunProtocol(data, size);
  return 0;
}
int FuzzMahimahi(const std::uint8_t* data, std::size_t size) {
  RunMahimahi(data, size);
  return 0;
}
int FuzzFrameTrace(const std::uint8_t* data, std::size_t size) {
  RunFrameTrace(data, size);
  return 0;
}
int FuzzManifest(const std::uint8_t* data, std::size_t size) {
  RunManifest(data, size);
  return 0;
}

}  // namespace deepcut::fuzz
