#!/bin/sh
# Configures and builds swarmc into build/ (or $BUILD_DIR). Extra arguments
# go to cmake, e.g. -DSWARMC_ASAN=ON -DSWARMC_UBSAN=ON.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$top/build}
cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=${BUILD_TYPE:-RelWithDebInfo} "$@" >/dev/null
cmake --build "$build" -j"$(nproc)"
