#!/usr/bin/env bash
# Install what the benchmarks need, build them in Release and run the
# three-engine comparison (tapegrad, hand-written xtensor + BLAS, LibTorch).
#   bash scripts/bench.sh                 the comparison table, then Fashion-MNIST end to end
#   bash scripts/bench.sh --suite         also the Google Benchmark suite (tapegrad_bench)
#   bash scripts/bench.sh --no-fashion    skip the Fashion-MNIST run (~40 s)
#   bash scripts/bench.sh -- ARGS...      extra arguments for tapegrad_compare
# Environment: BUILD_DIR (default build-bench), JOBS (default 1).
set -euo pipefail
cd "$(dirname "$0")/.."

suite=0
fashion=1
compare_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --suite) suite=1 ;;
    --no-fashion) fashion=0 ;;
    --) shift; compare_args=("$@"); break ;;
    *) echo "bench.sh: unknown option '$1' (use --suite, or -- ARGS for tapegrad_compare)" >&2; exit 2 ;;
  esac
  shift
done

bash scripts/setup.sh
[ "$fashion" -eq 1 ] && bash scripts/setup.sh --data
# Google Benchmark and LibTorch are benchmark-only dependencies.
need=()
for p in libbenchmark-dev libtorch-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

build="${BUILD_DIR:-build-bench}"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DTAPEGRAD_BUILD_BENCHMARKS=ON \
      -DTAPEGRAD_BUILD_TESTS=OFF -DTAPEGRAD_BUILD_EXAMPLES=OFF
targets=(tapegrad_compare)
[ "$suite" -eq 1 ] && targets+=(tapegrad_bench)
cmake --build "$build" -j "${JOBS:-1}" --target "${targets[@]}"

echo "== machine"
lscpu | head -20
"$build/benchmarks/tapegrad_compare" "${compare_args[@]}"
if [ "$fashion" -eq 1 ]; then
  echo
  "$build/benchmarks/tapegrad_compare" --fashion --epochs 10
fi
if [ "$suite" -eq 1 ]; then
  "$build/benchmarks/tapegrad_bench" --benchmark_min_time=0.2
fi
