#!/usr/bin/env bash
# The GPU check (issue 2), for a lent CUDA machine (reached through the device tool): builds the
# torch-only targets against the machine's pip LibTorch, runs a short DPO chain of the mini preset on
# CUDA and prints steps/s and the final metrics. Run through the device tool with
# carry: [".devicedeps"] after preparing .devicedeps once on the development machine:
#   echo /.devicedeps/ >> .git/info/exclude; mkdir -p .devicedeps && cd .devicedeps
#   apt-get download libsqlite3-dev nlohmann-json3-dev libcli11-dev libgloo-dev
#   for f in *.deb; do dpkg -x "$f" root; done; rm -f *.deb
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH_PREFIX=$(python3 -c "import torch;print(torch.utils.cmake_prefix_path)")
# NCCL's header comes with pip torch's nvidia-nccl wheel: data-parallel training on CUDA uses it.
NCCL_INCLUDE=$(python3 -c "import nvidia.nccl, os; print(os.path.join(list(nvidia.nccl.__path__)[0], 'include'))" 2>/dev/null || true)
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DPIVOT_BUILD_GUI=OFF \
  -DCMAKE_PREFIX_PATH="$TORCH_PREFIX;$PWD/.devicedeps/root/usr" \
  -DSQLite3_INCLUDE_DIR="$PWD/.devicedeps/root/usr/include" \
  -DSQLite3_LIBRARY=/usr/lib/x86_64-linux-gnu/libsqlite3.so.0 \
  ${NCCL_INCLUDE:+-DNCCL_INCLUDE_DIR="$NCCL_INCLUDE"} | grep "data-parallel backends" || true
cmake --build build-gpu -j"$(nproc)"
WS=$(mktemp -d)
OUT=${OUT:-$WS}
time build-gpu/app/pivot --workspace "$WS" train --preset mini --stage dpo --set device=cuda \
  --set steps=200 --quiet | tee "$OUT/gpu-dpo.txt"
build-gpu/app/pivot --workspace "$WS" runs | tee -a "$OUT/gpu-dpo.txt"
for run in $(build-gpu/app/pivot --workspace "$WS" runs | awk 'NR>1 {print $1}'); do
  build-gpu/app/pivot --workspace "$WS" metrics "$run" --key throughput/samples_per_s | tail -2
done | tee -a "$OUT/gpu-dpo.txt"
