#!/usr/bin/env bash
# Installs the Debian (bookworm) packages DeepCut needs. Idempotent; run as root.
#   scripts/install-deps.sh run    what building and running the demo needs
#   scripts/install-deps.sh test   the above plus what the test suite needs
#   scripts/install-deps.sh fuzz   the run packages plus clang and its libFuzzer runtime
#                                  (scripts/fuzz.sh)
set -euo pipefail
mode="${1:-run}"

run_packages=(
  build-essential cmake pkg-config git
  cppzmq-dev libzmq3-dev libmsgpack-cxx-dev libopencv-dev libzstd-dev
  libspdlog-dev libcli11-dev nlohmann-json3-dev zlib1g-dev libbenchmark-dev
  libgtest-dev libgmock-dev libeigen3-dev libsqlite3-dev prometheus-cpp-dev libcivetweb-dev
  dataset-fashion-mnist python3 python3-matplotlib python3-numpy
)
# Tests also train a tiny model (python3-torch) and read the sample videos.
test_packages=(python3-torch python3-numpy python3-onnx python3-opencv python3-matplotlib opencv-doc clang-format
  python3-zmq python3-msgpack python3-zstandard python3-yaml haproxy prometheus)
# The fuzz targets are built with clang's -fsanitize=fuzzer,address,undefined.
fuzz_packages=(clang libclang-rt-14-dev)

packages=("${run_packages[@]}")
[[ "$mode" == "test" ]] && packages+=("${test_packages[@]}")
[[ "$mode" == "fuzz" ]] && packages+=("${fuzz_packages[@]}")

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
SUDO=""
[[ $(id -u) -ne 0 ]] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
