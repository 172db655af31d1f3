// libFuzzer entry point; the body and its properties are in fuzz_bodies.h.
#include <cstddef>
#include <cstdint>

#include "fuzz/fuzz_bodies.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return deepcut::fuzz::FuzzCloud(data, size);
}
