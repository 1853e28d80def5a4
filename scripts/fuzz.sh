#!/usr/bin/env bash
# Build the libFuzzer harnesses of tests/fuzz with clang (ASan + UBSan +
# LeakSanitizer) and run them.
#
#   bash scripts/fuzz.sh                      every harness: its corpus, then 60 s of fresh fuzzing
#   bash scripts/fuzz.sh --seconds 3600 npz   one harness for an hour
#   bash scripts/fuzz.sh --runs 10000000 csv  one harness for 10 million executions
#   bash scripts/fuzz.sh --corpus-only        only replay the committed corpora (seeds + regressions)
#   bash scripts/fuzz.sh --jobs 2             run two harnesses at a time
#   bash scripts/fuzz.sh --runs 10000000 --max-len 1024 idx_gzip
#                                             inputs of at most 1 KiB (default 64 KiB): gzip
#                                             bombs of 64 KiB inflate to 64 MB and run ~250/s
#
# Harnesses: idx_raw idx_gzip csv npz checkpoint. Inputs found during fresh
# fuzzing go to build/fuzz/work/<harness>/ (not the committed corpus); a crash,
# leak, timeout or out-of-memory input is written to build/fuzz/artifacts/ and
# the script fails. To keep a finding as a regression input, fix the bug, then
# copy the file into tests/fuzz/corpus/<harness>/ with a name saying what it is.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=60
runs=""
corpus_only=0
jobs=1
max_len=65536
harnesses=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    --corpus-only) corpus_only=1; shift ;;
    --jobs) jobs="$2"; shift 2 ;;
    --max-len) max_len="$2"; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    idx_raw|idx_gzip|csv|npz|checkpoint) harnesses+=("$1"); shift ;;
    *) echo "fuzz.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[ ${#harnesses[@]} -gt 0 ] || harnesses=(idx_raw idx_gzip csv npz checkpoint)

cxx="${FUZZ_CXX:-}"
if [ -z "$cxx" ]; then
  for c in clang++-14 clang++; do command -v "$c" >/dev/null && { cxx="$c"; break; }; done
fi
if [ -z "$cxx" ]; then
  echo "fuzz.sh: clang++ not found; install clang-14 and libclang-rt-14-dev (bash scripts/setup.sh)" >&2
  exit 1
fi

build=build/fuzz
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER="$cxx" -DTAPEGRAD_BUILD_FUZZERS=ON \
      -DTAPEGRAD_BUILD_TESTS=OFF -DTAPEGRAD_BUILD_EXAMPLES=OFF "${launcher[@]}" >/dev/null
cmake --build "$build" -j "${JOBS:-2}" --target $(printf 'fuzz_%s ' "${harnesses[@]}")

# LeakSanitizer is on; the suppressions name only OpenBLAS's thread pool.
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:allocator_may_return_null=0"
export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export OPENBLAS_NUM_THREADS=1
# Limits: no loader may allocate far beyond what its (at most 64 KiB) input
# holds; -malloc_limit_mb catches a length field trusted for an allocation.
limits=(-rss_limit_mb=1024 -malloc_limit_mb=256 -timeout=20 -max_len="$max_len")

run_one() {
  local h="$1" bin="$build/tests/fuzz/fuzz_$1" corpus="tests/fuzz/corpus/$1"
  local work="$build/work/$h" art="$build/artifacts/$h"
  mkdir -p "$work" "$art"
  echo "== fuzz_$h: replaying $(ls "$corpus" | wc -l) committed inputs"
  "$bin" "${limits[@]}" -runs=0 "$corpus" >"$build/$h.corpus.log" 2>&1 ||
    { tail -40 "$build/$h.corpus.log"; echo "fuzz_$h: a committed input fails (log: $build/$h.corpus.log)"; return 1; }
  [ "$corpus_only" -eq 1 ] && return 0
  local budget=(-max_total_time="$seconds")
  [ -n "$runs" ] && budget=(-runs="$runs")
  echo "== fuzz_$h: fresh fuzzing ($([ -n "$runs" ] && echo "$runs runs" || echo "$seconds s"))"
  "$bin" "${limits[@]}" "${budget[@]}" -print_final_stats=1 -artifact_prefix="$art/" "$work" "$corpus" \
      >"$build/$h.fuzz.log" 2>&1 ||
    { tail -60 "$build/$h.fuzz.log"; echo "fuzz_$h: FINDING (input in $art/, log $build/$h.fuzz.log)"; return 1; }
  grep -E "stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb" "$build/$h.fuzz.log" | sed "s/^/   fuzz_$h /"
}

failed=0
pids=()
for h in "${harnesses[@]}"; do
  if [ "$jobs" -le 1 ]; then
    run_one "$h" || failed=1
  else
    run_one "$h" & pids+=($!)
    if [ ${#pids[@]} -ge "$jobs" ]; then wait "${pids[0]}" || failed=1; pids=("${pids[@]:1}"); fi
  fi
done
for p in "${pids[@]}"; do wait "$p" || failed=1; done
[ "$failed" -eq 0 ] && echo "fuzz: all harnesses clean" || { echo "fuzz: FAILED" >&2; exit 1; }
