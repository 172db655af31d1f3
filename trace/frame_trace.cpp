#include "trace/frame_trace.h"

#include <unistd.h>
#include <zlib.h>

#include <array>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <limits>
#include <opencv2/imgcodecs.hpp>

namespace deepcut::trace {
namespace {

// "deepcut-frames/1\n", then the JSON header's length (uint32 LE), then the header.
constexpr std::string_view kMagic = "deepcut-frames/1\n";
constexpr std::string_view kMagicFamily = "deepcut-frames/";
constexpr std::int64_t kPreambleBytes = static_cast<std::int64_t>(kMagic.size()) + 4;
// capture_us i64, label i32, flags u32, png_bytes u32, crc32 u32.
constexpr std::int64_t kRecordHeaderBytes = 24;
constexpr std::uint32_t kFlagSceneStart = 1u;
// A PNG holds at least its signature, IHDR, one IDAT and IEND.
constexpr std::uint32_t kMinPngBytes = 8 + 25 + 12 + 12;
// Room for the (writer) fields to grow from their placeholders in Finish.
constexpr std::size_t kHeaderSlackBytes = 160;
constexpr int kMaxHeaderDepth = 32;

void Put32(std::uint8_t* p, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}
void Put64(std::uint8_t* p, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}
std::uint32_t Get32(const std::uint8_t* p) {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= std::uint32_t(p[i]) << (8 * i);
  return v;
}
std::uint64_t Get64(const std::uint8_t* p) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= std::uint64_t(p[i]) << (8 * i);
  return v;
}
std::uint32_t BigEndian32(const std::uint8_t* p) {
  return (std::uint32_t(p[0]) << 24) | (std::uint32_t(p[1]) << 16) | (std::uint32_t(p[2]) << 8) |
         std::uint32_t(p[3]);
}

struct RecordHeader {
  std::int64_t capture_us = 0;
  int label = -1;
  std::uint32_t flags = 0;
  std::uint32_t png_bytes = 0;
  std::uint32_t crc = 0;
};

std::array<std::uint8_t, kRecordHeaderBytes> EncodeRecordHeader(const RecordHeader& r) {
  std::array<std::uint8_t, kRecordHeaderBytes> b{};
  Put64(&b[0], static_cast<std::uint64_t>(r.capture_us));
  Put32(&b[8], static_cast<std::uint32_t>(r.label));
  Put32(&b[12], r.flags);
  Put32(&b[16], r.png_bytes);
  Put32(&b[20], r.crc);
  return b;
}

RecordHeader DecodeRecordHeader(const std::uint8_t* b) {
  RecordHeader r;
  r.capture_us = static_cast<std::int64_t>(Get64(&b[0]));
  r.label = static_cast<std::int32_t>(Get32(&b[8]));
  r.flags = Get32(&b[12]);
  r.png_bytes = Get32(&b[16]);
  r.crc = Get32(&b[20]);
  return r;
}

// CRC-32 of the record header's first 20 bytes and the PNG.
std::uint32_t RecordCrc(const std::uint8_t* header, const std::uint8_t* png, std::size_t n) {
  uLong crc = crc32(0L, Z_NULL, 0);
  crc = crc32(crc, header, kRecordHeaderBytes - 4);
  crc = crc32(crc, png, static_cast<uInt>(n));
  return static_cast<std::uint32_t>(crc);
}

std::string NowIso8601() {
  std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm utc{};
  gmtime_r(&now, &utc);
  char text[32];
  std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text;
}

bool ValidChannels(int c) { return c == 1 || c == 3 || c == 4; }

// The checks shared by the writer (before writing) and the reader (per record).
std::string CheckRecordFields(std::int64_t capture_us, std::int64_t previous_us, int label,
                              std::size_t classes) {
  if (capture_us < 0) return "capture time " + std::to_string(capture_us) + " us is negative";
  if (capture_us < previous_us)
    return "capture time " + std::to_string(capture_us) + " us is before the previous frame's (" +
           std::to_string(previous_us) + " us)";
  if (label < -1) return "label " + std::to_string(label) + " is below -1";
  if (classes > 0 && label >= static_cast<int>(classes))
    return "label " + std::to_string(label) + " is not below the " + std::to_string(classes) +
           " classes";
  return "";
}

}  // namespace

// ---- header ---------------------------------------------------------------

nlohmann::json FrameTraceHeader::ToJson() const {
  nlohmann::json j{{"format", kFrameTraceFormat},
                   {"frames", frames},
                   {"width", width},
                   {"height", height},
                   {"channels", channels},
                   {"duration_us", duration_us},
                   {"fps", fps},
                   {"source", source},
                   {"seed", seed},
                   {"created", created},
                   {"scene_starts_marked", scene_starts_marked}};
  if (!classes.empty()) j["classes"] = classes;
  if (!params.empty()) j["params"] = params;
  return j;
}

Result<FrameTraceHeader> FrameTraceHeader::FromJson(const nlohmann::json& j,
                                                    const std::string& where) {
  auto bad = [&](const std::string& field, const std::string& what) {
    return InvalidArgument(where + ": header field '" + field + "' " + what);
  };
  if (!j.is_object()) return InvalidArgument(where + ": header is not a JSON object");
  FrameTraceHeader h;
  auto format = j.find("format");
  if (format == j.end() || !format->is_string()) return bad("format", "is missing");
  if (format->get<std::string>() != kFrameTraceFormat)
    return bad("format", "is '" + format->get<std::string>() + "', expected " + kFrameTraceFormat);
  // An integer field within [lo, hi]; absent fields keep their default unless required.
  auto integer = [&](const char* name, std::int64_t lo, std::int64_t hi, bool required,
                     auto& out) -> Status {
    auto it = j.find(name);
    if (it == j.end()) return required ? bad(name, "is missing") : Status::Ok();
    if (!it->is_number_integer()) return bad(name, "must be an integer");
    // Unsigned values above int64's range are no valid value either.
    if (it->is_number_unsigned() && it->get<std::uint64_t>() > static_cast<std::uint64_t>(hi))
      return bad(name, "must be at most " + std::to_string(hi));
    const std::int64_t v = it->get<std::int64_t>();
    if (v < lo || v > hi)
      return bad(name, "is " + std::to_string(v) + ", must be in [" + std::to_string(lo) + ", " +
                           std::to_string(hi) + "]");
    out = static_cast<std::remove_reference_t<decltype(out)>>(v);
    return Status::Ok();
  };
  constexpr std::int64_t kMaxInt64 = std::numeric_limits<std::int64_t>::max();
  RETURN_IF_ERROR(integer("frames", 0, kMaxInt64, true, h.frames));
  RETURN_IF_ERROR(integer("width", 0, kMaxImageSide, false, h.width));
  RETURN_IF_ERROR(integer("height", 0, kMaxImageSide, false, h.height));
  RETURN_IF_ERROR(integer("channels", 0, 4, false, h.channels));
  RETURN_IF_ERROR(integer("duration_us", 0, kMaxInt64, false, h.duration_us));
  RETURN_IF_ERROR(integer("seed", -1, kMaxInt64, false, h.seed));
  if (h.channels != 0 && !ValidChannels(h.channels)) return bad("channels", "must be 0, 1, 3 or 4");
  if ((h.width == 0) != (h.height == 0) || (h.width == 0) != (h.channels == 0))
    return InvalidArgument(where + ": header fields width, height and channels must be all 0 " +
                           "(frames differ) or all set");
  if (static_cast<std::int64_t>(h.width) * h.height > kMaxImagePixels)
    return bad("width", "times height exceeds " + std::to_string(kMaxImagePixels) + " pixels");
  if (auto it = j.find("fps"); it != j.end()) {
    if (!it->is_number() || !std::isfinite(it->get<double>()) || it->get<double>() < 0)
      return bad("fps", "must be a number >= 0");
    h.fps = it->get<double>();
  }
  for (auto [name, out] : {std::pair{"source", &h.source}, std::pair{"created", &h.created}}) {
    auto it = j.find(name);
    if (it == j.end()) continue;
    if (!it->is_string()) return bad(name, "must be a string");
    *out = it->get<std::string>();
  }
  if (auto it = j.find("scene_starts_marked"); it != j.end()) {
    if (!it->is_boolean()) return bad("scene_starts_marked", "must be true or false");
    h.scene_starts_marked = it->get<bool>();
  }
  if (auto it = j.find("classes"); it != j.end()) {
    if (!it->is_array()) return bad("classes", "must be an array of strings");
    if (it->size() > kMaxClasses)
      return bad("classes", "has more than " + std::to_string(kMaxClasses) + " entries");
    for (const auto& c : *it) {
      if (!c.is_string()) return bad("classes", "must be an array of strings");
      h.classes.push_back(c.get<std::string>());
    }
  }
  if (auto it = j.find("params"); it != j.end()) {
    if (!it->is_object()) return bad("params", "must be an object");
    h.params = *it;
  }
  return h;
}

// ---- writer ---------------------------------------------------------------

FrameTraceWriter::FrameTraceWriter(std::string path, FrameTraceHeader header)
    : path_(std::move(path)), header_(std::move(header)) {}

FrameTraceWriter::~FrameTraceWriter() {
  if (!finished_) {
    out_.close();
    std::error_code ec;
    std::filesystem::remove(tmp_path_, ec);
  }
}

Status FrameTraceWriter::Fail(Status status) {
  failed_ = true;
  out_.close();
  std::error_code ec;
  std::filesystem::remove(tmp_path_, ec);
  return status;
}

Result<std::unique_ptr<FrameTraceWriter>> FrameTraceWriter::Create(const std::string& path,
                                                                   FrameTraceHeader header) {
  if (path.empty()) return InvalidArgument("frame trace path is empty");
  if (!std::isfinite(header.fps) || header.fps < 0)
    return InvalidArgument(path + ": fps must be a number >= 0");
  if (header.seed < -1) return InvalidArgument(path + ": seed must be >= -1");
  if (header.classes.size() > kMaxClasses)
    return InvalidArgument(path + ": more than " + std::to_string(kMaxClasses) + " classes");
  if (!header.params.is_object()) return InvalidArgument(path + ": params must be a JSON object");
  if (header.created.empty()) header.created = NowIso8601();
  header.frames = header.duration_us = 0;
  header.width = header.height = header.channels = 0;
  std::unique_ptr<FrameTraceWriter> w(new FrameTraceWriter(path, std::move(header)));
  // A sibling, so the final rename stays within one file system.
  w->tmp_path_ = path + ".tmp-" + std::to_string(::getpid());
  w->out_.open(w->tmp_path_, std::ios::binary | std::ios::trunc);
  if (!w->out_)
    return NotFound("cannot write " + path + " (its temporary file " + w->tmp_path_ +
                    " cannot be created)");
  std::string json;
  try {
    json = w->header_.ToJson().dump();
  } catch (const nlohmann::json::exception& e) {  // e.g. a class name that is not UTF-8
    return w->Fail(InvalidArgument(path + ": header cannot be written: " + e.what()));
  }
  if (json.size() + kHeaderSlackBytes > kMaxHeaderBytes)
    return w->Fail(InvalidArgument(path + ": header would exceed " +
                                   std::to_string(kMaxHeaderBytes) + " bytes"));
  w->header_bytes_ = static_cast<std::uint32_t>(json.size() + kHeaderSlackBytes);
  json.resize(w->header_bytes_, ' ');  // JSON allows trailing white space
  std::uint8_t length[4];
  Put32(length, w->header_bytes_);
  w->out_.write(kMagic.data(), static_cast<std::streamsize>(kMagic.size()));
  w->out_.write(reinterpret_cast<const char*>(length), 4);
  w->out_.write(json.data(), static_cast<std::streamsize>(json.size()));
  if (!w->out_) return w->Fail(Internal("write to " + w->tmp_path_ + " failed"));
  w->bytes_written_ = kPreambleBytes + w->header_bytes_;
  return w;
}

Status FrameTraceWriter::Append(const cv::Mat& image, std::int64_t capture_us, int label,
                                bool scene_start) {
  const std::string where = path_ + ": frame " + std::to_string(header_.frames) + ": ";
  if (finished_ || failed_)
    return Internal(where + "the writer is " + (finished_ ? "finished" : "failed"));
  if (image.empty() || image.depth() != CV_8U || !ValidChannels(image.channels()) ||
      image.dims != 2)
    return InvalidArgument(where + "image must be 8-bit with 1, 3 or 4 channels");
  if (image.cols > kMaxImageSide || image.rows > kMaxImageSide ||
      static_cast<std::int64_t>(image.cols) * image.rows > kMaxImagePixels)
    return InvalidArgument(where + "image of " + std::to_string(image.cols) + "x" +
                           std::to_string(image.rows) + " exceeds the size limits");
  const std::int64_t previous_us = header_.frames == 0 ? 0 : last_capture_us_;
  if (std::string e = CheckRecordFields(capture_us, previous_us, label, header_.classes.size());
      !e.empty())
    return InvalidArgument(where + e);
  std::vector<std::uint8_t> png;
  try {
    if (!cv::imencode(".png", image, png, {cv::IMWRITE_PNG_COMPRESSION, 6}))
      return Fail(Internal(where + "PNG encoding failed"));
  } catch (const cv::Exception& e) {
    return Fail(Internal(where + "PNG encoding failed: " + e.what()));
  }
  if (png.size() > kMaxImageBytes)
    return InvalidArgument(where + "PNG of " + std::to_string(png.size()) + " bytes exceeds " +
                           std::to_string(kMaxImageBytes));
  RecordHeader r{.capture_us = capture_us,
                 .label = label,
                 .flags = scene_start ? kFlagSceneStart : 0u,
                 .png_bytes = static_cast<std::uint32_t>(png.size())};
  auto bytes = EncodeRecordHeader(r);
  Put32(&bytes[20], RecordCrc(bytes.data(), png.data(), png.size()));
  out_.write(reinterpret_cast<const char*>(bytes.data()), kRecordHeaderBytes);
  out_.write(reinterpret_cast<const char*>(png.data()), static_cast<std::streamsize>(png.size()));
  if (!out_) return Fail(Internal(where + "write to " + tmp_path_ + " failed"));
  // The size every frame has, or 0 once two differ.
  if (header_.frames == 0) {
    header_.width = image.cols;
    header_.height = image.rows;
    header_.channels = image.channels();
  } else if (image.cols != header_.width || image.rows != header_.height ||
             image.channels() != header_.channels) {
    sizes_differ_ = true;
  }
  ++header_.frames;
  last_capture_us_ = capture_us;
  bytes_written_ += kRecordHeaderBytes + static_cast<std::int64_t>(png.size());
  return Status::Ok();
}

Status FrameTraceWriter::Finish() {
  if (finished_ || failed_)
    return Internal(path_ + ": the writer is " + (finished_ ? "finished" : "failed"));
  if (sizes_differ_) header_.width = header_.height = header_.channels = 0;
  header_.duration_us = header_.frames > 0 ? last_capture_us_ : 0;
  std::string json = header_.ToJson().dump();
  if (json.size() > header_bytes_)
    return Fail(Internal(path_ + ": final header outgrew its reserved space"));
  json.resize(header_bytes_, ' ');
  out_.seekp(kPreambleBytes);
  out_.write(json.data(), static_cast<std::streamsize>(json.size()));
  out_.flush();
  if (!out_) return Fail(Internal("write to " + tmp_path_ + " failed"));
  out_.close();
  if (out_.fail()) return Fail(Internal("closing " + tmp_path_ + " failed"));
  std::error_code ec;
  std::filesystem::rename(tmp_path_, path_, ec);
  if (ec)
    return Fail(Internal("cannot rename " + tmp_path_ + " to " + path_ + ": " + ec.message()));
  finished_ = true;
  return Status::Ok();
}

// ---- reader ---------------------------------------------------------------

std::string FrameTraceReader::Where(std::int64_t index) const {
  return path_ + ": record " + std::to_string(index) + ": ";
}

Result<std::unique_ptr<FrameTraceReader>> FrameTraceReader::Open(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    return NotFound("frame trace " + path + " does not exist (or is not a file)");
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) return NotFound("cannot read the size of " + path + ": " + ec.message());
  std::unique_ptr<FrameTraceReader> r(new FrameTraceReader(path));
  r->file_bytes_ = static_cast<std::int64_t>(size);
  r->in_.open(path, std::ios::binary);
  if (!r->in_) return NotFound("cannot open frame trace " + path);

  // Magic and header length.
  std::uint8_t preamble[kPreambleBytes] = {};
  r->in_.read(reinterpret_cast<char*>(preamble), kPreambleBytes);
  const std::string_view magic(reinterpret_cast<const char*>(preamble),
                               static_cast<std::size_t>(r->in_.gcount()));
  if (magic.substr(0, kMagic.size()) != kMagic) {
    if (magic.substr(0, kMagicFamily.size()) == kMagicFamily) {
      std::string_view version = magic.substr(kMagicFamily.size());
      version = version.substr(0, std::min(version.find('\n'), std::size_t{8}));
      std::string printable;
      for (char c : version) printable += std::isprint(static_cast<unsigned char>(c)) ? c : '?';
      return InvalidArgument(path + ": frame trace version '" + printable +
                             "' is not supported (this reader reads " + kFrameTraceFormat + ")");
    }
    return InvalidArgument(path + ": not a frame trace (it does not start with '" +
                           kFrameTraceFormat + "')");
  }
  if (r->in_.gcount() != kPreambleBytes)
    return DataLoss(path + ": truncated before the header length");
  const std::uint32_t header_bytes = Get32(&preamble[kMagic.size()]);
  if (header_bytes == 0 || header_bytes > kMaxHeaderBytes)
    return DataLoss(path + ": header length " + std::to_string(header_bytes) + " is outside 1.." +
                    std::to_string(kMaxHeaderBytes));
  if (kPreambleBytes + header_bytes > r->file_bytes_)
    return DataLoss(path + ": header of " + std::to_string(header_bytes) +
                    " bytes runs past the end of the file (" + std::to_string(r->file_bytes_) +
                    " bytes)");

  // The JSON header, nesting kept shallow so nothing downstream recurses deeply.
  std::string text(header_bytes, '\0');
  r->in_.read(text.data(), header_bytes);
  if (!r->in_) return DataLoss(path + ": cannot read the header");
  bool too_deep = false;
  nlohmann::json j = nlohmann::json::parse(
      text,
      [&](int depth, nlohmann::json::parse_event_t, nlohmann::json&) {
        if (depth > kMaxHeaderDepth) too_deep = true;
        return !too_deep;
      },
      /*allow_exceptions=*/false);
  if (too_deep)
    return InvalidArgument(path + ": header nests deeper than " + std::to_string(kMaxHeaderDepth));
  if (j.is_discarded()) return InvalidArgument(path + ": header is not valid JSON");
  ASSIGN_OR_RETURN(r->header_, FrameTraceHeader::FromJson(j, path));

  // Walk the record headers: counts, lengths and times, before any pixel is read.
  const std::int64_t data_offset = kPreambleBytes + header_bytes;
  const std::int64_t max_records =
      (r->file_bytes_ - data_offset) / (kRecordHeaderBytes + kMinPngBytes);
  if (r->header_.frames > max_records)
    return DataLoss(path + ": header says " + std::to_string(r->header_.frames) +
                    " frames, but the file's " + std::to_string(r->file_bytes_ - data_offset) +
                    " bytes of records hold at most " + std::to_string(max_records));
  std::int64_t offset = data_offset, previous_us = 0;
  for (std::int64_t i = 0; i < r->header_.frames; ++i) {
    std::uint8_t bytes[kRecordHeaderBytes];
    if (r->file_bytes_ - offset < kRecordHeaderBytes)
      return DataLoss(r->Where(i) + "truncated: the file ends inside the record header (" +
                      std::to_string(r->header_.frames) + " frames declared)");
    r->in_.seekg(offset);
    r->in_.read(reinterpret_cast<char*>(bytes), kRecordHeaderBytes);
    if (!r->in_) return DataLoss(r->Where(i) + "cannot read the record header");
    const RecordHeader rec = DecodeRecordHeader(bytes);
    if (std::string e =
            CheckRecordFields(rec.capture_us, previous_us, rec.label, r->header_.classes.size());
        !e.empty())
      return DataLoss(r->Where(i) + e);
    const std::int64_t left = r->file_bytes_ - offset - kRecordHeaderBytes;
    if (rec.png_bytes < kMinPngBytes || rec.png_bytes > kMaxImageBytes || rec.png_bytes > left)
      return DataLoss(r->Where(i) + "image length " + std::to_string(rec.png_bytes) +
                      (rec.png_bytes > left ? " exceeds the " + std::to_string(left) +
                                                  " bytes left in the file (truncated?)"
                                            : " is outside " + std::to_string(kMinPngBytes) + ".." +
                                                  std::to_string(kMaxImageBytes)));
    previous_us = rec.capture_us;
    offset += kRecordHeaderBytes + rec.png_bytes;
  }
  if (offset != r->file_bytes_)
    return DataLoss(path + ": " + std::to_string(r->file_bytes_ - offset) +
                    " bytes follow the last of the " + std::to_string(r->header_.frames) +
                    " declared frames");
  if (r->header_.duration_us != previous_us)
    return DataLoss(path + ": header says duration_us " + std::to_string(r->header_.duration_us) +
                    ", the last frame is at " + std::to_string(previous_us) + " us");
  r->offset_ = data_offset;
  return r;
}

Result<std::optional<FrameRecord>> FrameTraceReader::Next() {
  if (broken_) return *broken_;
  if (next_index_ >= header_.frames) return std::optional<FrameRecord>();
  const std::int64_t index = next_index_;
  // Framing: the file was checked in Open, so a failure here means it changed.
  auto broken = [&](const std::string& what) {
    broken_ = DataLoss(Where(index) + what + " (the file changed since it was opened?)");
    return *broken_;
  };
  std::uint8_t bytes[kRecordHeaderBytes];
  in_.clear();
  in_.seekg(offset_);
  in_.read(reinterpret_cast<char*>(bytes), kRecordHeaderBytes);
  if (!in_) return broken("cannot read the record header");
  const RecordHeader rec = DecodeRecordHeader(bytes);
  const std::int64_t previous_us = index == 0 ? 0 : last_capture_us_;
  if (std::string e =
          CheckRecordFields(rec.capture_us, previous_us, rec.label, header_.classes.size());
      !e.empty())
    return broken(e);
  if (rec.png_bytes < kMinPngBytes || rec.png_bytes > kMaxImageBytes ||
      rec.png_bytes > file_bytes_ - offset_ - kRecordHeaderBytes)
    return broken("bad image length " + std::to_string(rec.png_bytes));
  std::vector<std::uint8_t> png(rec.png_bytes);
  in_.read(reinterpret_cast<char*>(png.data()), rec.png_bytes);
  if (!in_) return broken("cannot read the image");
  offset_ += kRecordHeaderBytes + rec.png_bytes;
  ++next_index_;
  last_capture_us_ = rec.capture_us;

  // Content: a bad record is skipped, the next one still reads.
  const std::string where = Where(index);
  if (RecordCrc(bytes, png.data(), png.size()) != rec.crc)
    return DataLoss(where + "checksum mismatch (corrupt record)");
  // Check the PNG's own header before the decoder allocates anything.
  static const std::uint8_t kPngSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (std::memcmp(png.data(), kPngSignature, 8) != 0 || BigEndian32(&png[8]) != 13 ||
      std::memcmp(&png[12], "IHDR", 4) != 0)
    return DataLoss(where + "image is not a PNG");
  const std::uint32_t width = BigEndian32(&png[16]), height = BigEndian32(&png[20]);
  const int bit_depth = png[24], colour_type = png[25];
  if (width == 0 || height == 0 || width > kMaxImageSide || height > kMaxImageSide ||
      std::int64_t{width} * height > kMaxImagePixels)
    return DataLoss(where + "PNG of " + std::to_string(width) + "x" + std::to_string(height) +
                    " exceeds the size limits");
  const int channels = colour_type == 0 ? 1 : colour_type == 2 ? 3 : colour_type == 6 ? 4 : 0;
  if (bit_depth != 8 || channels == 0)
    return DataLoss(where + "PNG must be 8-bit gray, RGB or RGBA (bit depth " +
                    std::to_string(bit_depth) + ", colour type " + std::to_string(colour_type) +
                    ")");
  if (header_.width != 0 &&
      (static_cast<int>(width) != header_.width || static_cast<int>(height) != header_.height ||
       channels != header_.channels))
    return DataLoss(where + "image is " + std::to_string(width) + "x" + std::to_string(height) +
                    "x" + std::to_string(channels) + ", the header says " +
                    std::to_string(header_.width) + "x" + std::to_string(header_.height) + "x" +
                    std::to_string(header_.channels));
  FrameRecord out;
  try {
    out.image = cv::imdecode(png, cv::IMREAD_UNCHANGED);
  } catch (const cv::Exception& e) {
    return DataLoss(where + "PNG does not decode: " + e.what());
  }
  if (out.image.empty() || out.image.depth() != CV_8U || out.image.channels() != channels ||
      out.image.cols != static_cast<int>(width) || out.image.rows != static_cast<int>(height))
    return DataLoss(where + "PNG does not decode");
  out.index = index;
  out.capture_us = rec.capture_us;
  out.label = rec.label;
  out.scene_start = (rec.flags & kFlagSceneStart) != 0;
  return std::optional<FrameRecord>(std::move(out));
}

}  // namespace deepcut::trace
