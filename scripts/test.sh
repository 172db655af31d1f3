#!/usr/bin/env bash
# Installs what is needed, builds, checks formatting and runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh test
scripts/build.sh
scripts/check-format.sh
cd "${BUILD_DIR:-build}"
ctest --output-on-failure --timeout 900 -j 2
