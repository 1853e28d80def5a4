#!/usr/bin/env bash
# Install, build and run the whole test suite: a Release build, then again under
# AddressSanitizer + UndefinedBehaviorSanitizer + LeakSanitizer, the thread tests
# under ThreadSanitizer, and the libFuzzer harnesses (clang). Used by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
jobs="${JOBS:-2}"
# Each stage says when it starts (seconds since the start), so a slow CI run shows where.
stage() { echo "== [$SECONDS s] $*"; }
# The sanitizer builds use -O1 with line tables only (-g1): enough for the reports'
# stack traces, and about 40% less compile time than RelWithDebInfo's -O2 -g.
sanitizer_flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG"
                 -DTAPEGRAD_BUILD_EXAMPLES=OFF)

stage "Release build and tests"
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/release -j "$jobs"
(cd build/release && ctest --output-on-failure -j "$jobs")

stage "AddressSanitizer + UndefinedBehaviorSanitizer build and tests"
cmake -S . -B build/sanitize "${sanitizer_flags[@]}" -DTAPEGRAD_SANITIZE=ON >/dev/null
cmake --build build/sanitize -j "$jobs"
# LeakSanitizer is on: tests/lsan.supp names only OpenBLAS (its thread pool keeps
# its buffers until exit), so a leak of ours still fails the test.
supp="$PWD/tests/lsan.supp"
(cd build/sanitize && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
   LSAN_OPTIONS="suppressions=$supp:print_suppressions=0" \
   UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 TAPEGRAD_SANITIZED=1 ctest --output-on-failure -j "$jobs")

stage "ThreadSanitizer build of the library and the thread tests"
# Only the thread tests (test_threads, and test_inference_leaves for the per-thread leaf
# pools): the rest of the suite is single-threaded and ran above. OpenBLAS
# is not instrumented, so it runs single-threaded here.
cmake -S . -B build/tsan "${sanitizer_flags[@]}" -DTAPEGRAD_TSAN=ON >/dev/null
cmake --build build/tsan -j "$jobs" --target test_threads test_inference_leaves
(cd build/tsan && OPENBLAS_NUM_THREADS=1 TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
   ctest -R '^(test_threads|test_inference_leaves)$' --output-on-failure)

stage "libFuzzer harnesses (clang): committed corpora, then 60 s of fresh fuzzing each"
# scripts/fuzz.sh documents longer runs (--seconds, --runs).
JOBS="$jobs" bash scripts/fuzz.sh --seconds "${FUZZ_SECONDS:-60}" --jobs "$jobs"
stage "all passed"
