// The bodies of the fuzz targets (docs/fuzzing.md), shared by the libFuzzer
// executables (fuzz_*.cpp, clang) and the regression test in the unit suite
// (tests/fuzz_regression_test.cpp, any compiler).
//
// Each body feeds one input to a decoder the cloud or the replay trusts with
// outside bytes, and checks properties of whatever the decoder accepts. A
// violated property calls abort() with a message on stderr: that is what the
// fuzzer looks for, besides the sanitizers' findings. A refused input is an
// ordinary outcome.
//
//   FuzzProtocol    transport::DecodeRequest and DecodeReply; an accepted message
//                   re-encodes to one that decodes to the same value and
//                   re-encodes to the same bytes.
//   FuzzMahimahi    network::ParseMahimahi; an accepted trace is non-decreasing
//                   within [0, period_us], period_us > 0 is its last time, and
//                   OpportunityUs and FirstAtOrAfter agree across loops.
//   FuzzFrameTrace  trace::FrameTraceReader::Open, then Next until the end; the
//                   input is the file. It is read twice when its record
//                   checksums are wrong: as given, and with them recomputed,
//                   so that the fuzzer reaches the image decoding behind them.
//                   Records read satisfy the header and the format's limits.
//   FuzzManifest    splitnet::ParseManifest, in a directory holding head.onnx,
//                   exit.onnx and tail.onnx; an accepted manifest is consistent
//                   (rates, default rate, calibration, fingerprint).
//   FuzzCloud       the cloud's whole receive path over a real socket: message
//                   frames, sizes, every field and coding, through admission,
//                   the workers' decoding and the tail (fuzz_cloud_body.cpp).
//
// Thread-safety: FuzzFrameTrace and FuzzManifest use one scratch file or folder
// per process; call them from one thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/status.h"

namespace deepcut::fuzz {

// The decoder's verdict on one input after the properties were checked: ok when
// it was accepted (for the protocol: by either decoder; for a frame trace: every
// record read), else the first error it gave.
Status RunProtocol(const std::uint8_t* data, std::size_t size);
Status RunMahimahi(const std::uint8_t* data, std::size_t size);
Status RunFrameTrace(const std::uint8_t* data, std::size_t size);
Status RunManifest(const std::uint8_t* data, std::size_t size);
// Ok when the cloud answered the message with status ok.
Status RunCloud(const std::uint8_t* data, std::size_t size);

// A violated property: says which on stderr and aborts, so that the fuzzer
// keeps the input.
void Require(bool property, const std::string& what);

// LLVMFuzzerTestOneInput bodies: Run*, verdict ignored; always 0.
int FuzzProtocol(const std::uint8_t* data, std::size_t size);
int FuzzMahimahi(const std::uint8_t* data, std::size_t size);
int FuzzFrameTrace(const std::uint8_t* data, std::size_t size);
int FuzzManifest(const std::uint8_t* data, std::size_t size);
int FuzzCloud(const std::uint8_t* data, std::size_t size);

}  // namespace deepcut::fuzz
