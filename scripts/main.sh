#!/usr/bin/env bash
# Install, build in Release, and run the main job.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --data
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/release -j "${JOBS:-2}"
./build/release/apps/tapegrad train --model seed --loss mse
./build/release/apps/tapegrad graph --model seed --out runs/graph/seed_graph.dot
./build/release/apps/tapegrad gradcheck
