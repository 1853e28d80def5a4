#!/usr/bin/env bash
# Install what tapegrad needs on a fresh Debian 12 machine, with apt-get.
#   bash scripts/setup.sh           build + test dependencies (lean: no LibTorch)
#   bash scripts/setup.sh --data    also Fashion-MNIST (for the trainer) and Graphviz (tapegrad graph's SVG):
#                                   the main job's set-up (scripts/main.sh)
#   bash scripts/setup.sh --bench   also Google Benchmark and LibTorch (benchmarks only)
# Packages already installed are skipped, so re-running is cheap.
set -euo pipefail

packages=(build-essential cmake pkg-config ca-certificates
          libxtensor-dev libxtensor-blas-dev xtl-dev libxsimd-dev libopenblas-dev
          doctest-dev zlib1g-dev libcli11-dev gnuplot-nox
          clang-14 libclang-rt-14-dev  # clang + libFuzzer for tests/fuzz (scripts/fuzz.sh)
          libopenmpi-dev openmpi-bin)  # tapegrad::distributed and its mpirun -np 2 tests
packages+=(doxygen)  # scripts/docs.sh, the API reference (test api_docs)
for arg in "$@"; do
  case "$arg" in
    --data)  packages+=(dataset-fashion-mnist graphviz) ;;
    --bench) packages+=(libbenchmark-dev libtorch-dev dataset-fashion-mnist) ;;
    *) echo "setup.sh: unknown option '$arg' (use --data or --bench)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages already installed"
  exit 0
fi

sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
