#!/bin/sh
# The README's test command: installs dependencies, builds swarmc with
# AddressSanitizer and UndefinedBehaviorSanitizer (warnings are errors), and
# runs every test (unit and end-to-end) through CTest.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/deploy/install-deps.sh"
BUILD_DIR=${BUILD_DIR:-$top/build-test} "$top/deploy/build.sh" \
    -DSWARMC_ASAN=ON -DSWARMC_UBSAN=ON -DSWARMC_WERROR=ON
cd "${BUILD_DIR:-$top/build-test}"
# Leaks in short-lived test helpers are reported, not fatal, except in unit
# tests which check them themselves through the sanitizer's default.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
ctest --output-on-failure --timeout 900 "$@"
