// Writes the seed inputs made with the project's own encoders into a corpus
// folder: valid protocol messages (fuzz/corpus/protocol/), tiny frame traces
// (fuzz/corpus/frame_trace/), and valid requests for the committed package
// (fuzz/corpus/cloud/). The mahimahi and manifest seeds are text, written
// by hand.
//
//   build-fuzz/fuzz/fuzz_make_seeds fuzz/corpus models/fmnist
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <opencv2/core.hpp>
#include <string>
#include <vector>

#include "splitnet/feature_codec.h"
#include "splitnet/manifest.h"
#include "trace/frame_trace.h"
#include "transport/protocol.h"

namespace {

using namespace deepcut;

void WriteBytes(const std::filesystem::path& path, const std::vector<std::uint8_t>& bytes) {
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()),
             static_cast<std::streamsize>(bytes.size()));
}

Status WriteProtocolSeeds(const std::filesystem::path& dir) {
  transport::Request request{.seq = 42, .model = 0xbeef, .rate_index = 2, .deadline_ms = 200};
  request.payload = {1, 2, 3, 250, 251};
  WriteBytes(dir / "request-small", transport::EncodeRequest(request));
  request = {.seq = 65535, .model = 1, .rate_index = 255, .deadline_ms = 600000, .coding = 2};
  request.payload.assign(64, 0x5a);
  WriteBytes(dir / "request-limits", transport::EncodeRequest(request));

  transport::Reply reply{.seq = 7, .class_id = 3, .queue_us = 120, .decode_us = 80};
  reply.tail_us = 900;
  reply.batch_size = 4;
  reply.top = {{3, 0.9f}, {1, 0.05f}, {0, 0.01f}};
  WriteBytes(dir / "reply-ok", transport::EncodeReply(reply));
  reply = {.seq = 0, .status = transport::ReplyStatus::kError, .message = "unknown model"};
  WriteBytes(dir / "reply-error", transport::EncodeReply(reply));
  reply = {.seq = 9, .status = transport::ReplyStatus::kBusy, .message = "queue full"};
  WriteBytes(dir / "reply-busy", transport::EncodeReply(reply));

  transport::HarvestChunk chunk{.edge = 0x0123456789abcdefull,
                                .item = 17,
                                .index = 1,
                                .count = 3,
                                .model = 0xbeef,
                                .payload = {9, 8, 7, 6}};
  WriteBytes(dir / "harvest-chunk", transport::EncodeHarvestChunk(chunk));
  transport::HarvestAck ack{.edge = chunk.edge, .item = 17, .index = 1};
  WriteBytes(dir / "harvest-ack", transport::EncodeHarvestAck(ack));
  ack.ok = false;
  ack.message = "model tag 1 is not this cloud's (48879)";
  WriteBytes(dir / "harvest-ack-refused", transport::EncodeHarvestAck(ack));
  return Status::Ok();
}

// fuzz_cloud inputs (fuzz/fuzz_cloud_body.cpp): byte 0 = 0 (one frame, sizes as
// given), then a valid request for the package at every rate, in the coding the
// encoder picks and in raw bits, for a smooth and a noisy feature map.
Status WriteCloudSeeds(const std::filesystem::path& dir, const std::filesystem::path& model) {
  ASSIGN_OR_RETURN(auto m, splitnet::LoadManifest(model));
  splitnet::FeatureCodec codec;
  std::vector<float> smooth(m.bottleneck.Elements()), noisy(m.bottleneck.Elements());
  std::uint32_t state = 12345;
  for (size_t i = 0; i < smooth.size(); ++i) {
    smooth[i] = m.bottleneck.min + (m.bottleneck.max - m.bottleneck.min) * (i % 7) / 6.0f;
    state = state * 1664525u + 1013904223u;
    noisy[i] =
        m.bottleneck.min + (m.bottleneck.max - m.bottleneck.min) * (state >> 8) / 16777216.0f;
  }
  for (size_t r = 0; r < m.rates.size(); ++r)
    for (const auto* features : {&smooth, &noisy})
      for (bool raw : {false, true}) {
        codec.set_allowed(!raw, !raw);
        ASSIGN_OR_RETURN(auto encoded, codec.Encode(*features, m.bottleneck, m.rates[r]));
        transport::Request request{.seq = static_cast<std::uint16_t>(100 + r),
                                   .model = transport::ModelTag(m.fingerprint),
                                   .rate_index = static_cast<int>(r),
                                   .deadline_ms = 60000,
                                   .coding = static_cast<int>(encoded.coding),
                                   .payload = encoded.payload};
        auto bytes = transport::EncodeRequest(request);
        bytes.insert(bytes.begin(), 0x00);
        WriteBytes(dir / ("request-" + m.rates[r].name +
                          (features == &smooth ? "-smooth" : "-noisy") + (raw ? "-raw" : "")),
                   bytes);
      }
  return Status::Ok();
}

struct Frame {
  cv::Mat image;
  std::int64_t capture_us;
  int label;
  bool scene_start;
};

Status WriteTrace(const std::filesystem::path& path, trace::FrameTraceHeader header,
                  const std::vector<Frame>& frames) {
  header.created = "2026-01-01T00:00:00Z";  // reproducible bytes
  ASSIGN_OR_RETURN(auto writer, trace::FrameTraceWriter::Create(path.string(), header));
  for (const Frame& f : frames)
    RETURN_IF_ERROR(writer->Append(f.image, f.capture_us, f.label, f.scene_start));
  return writer->Finish();
}

// A small image with some structure, so its PNG is not all one run.
cv::Mat Pattern(int rows, int cols, int type) {
  cv::Mat image(rows, cols, type);
  for (int i = 0; i < static_cast<int>(image.total() * image.elemSize()); ++i)
    image.data[i] = static_cast<std::uint8_t>(i * 37);
  return image;
}

Status WriteFrameTraceSeeds(const std::filesystem::path& dir) {
  trace::FrameTraceHeader labelled{.fps = 10.0, .source = "fuzz-seed", .seed = 1};
  labelled.scene_starts_marked = true;
  labelled.classes = {"zero", "one"};
  RETURN_IF_ERROR(WriteTrace(dir / "gray-labelled.dcft", labelled,
                             {{Pattern(3, 4, CV_8UC1), 0, 0, true},
                              {Pattern(3, 4, CV_8UC1), 100000, 1, false},
                              {Pattern(3, 4, CV_8UC1), 200000, -1, true}}));
  trace::FrameTraceHeader plain{.source = "fuzz-seed"};
  RETURN_IF_ERROR(
      WriteTrace(dir / "bgr-one.dcft", plain, {{Pattern(2, 3, CV_8UC3), 5, -1, false}}));
  RETURN_IF_ERROR(
      WriteTrace(dir / "mixed-sizes.dcft", plain,
                 {{Pattern(2, 2, CV_8UC1), 0, 3, false}, {Pattern(3, 3, CV_8UC4), 40, 7, false}}));
  return WriteTrace(dir / "empty.dcft", plain, {});
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR MODEL_DIR (e.g. fuzz/corpus models/fmnist)\n",
                 argv[0]);
    return 2;
  }
  const std::filesystem::path root = argv[1];
  for (const char* target : {"protocol", "frame_trace", "cloud"})
    std::filesystem::create_directories(root / target);
  for (const Status& s :
       {WriteProtocolSeeds(root / "protocol"), WriteFrameTraceSeeds(root / "frame_trace"),
        WriteCloudSeeds(root / "cloud", argv[2])}) {
    if (!s.ok()) {
      std::fprintf(stderr, "fuzz_make_seeds: %s\n", s.ToString().c_str());
      return 1;
    }
  }
  return 0;
}
