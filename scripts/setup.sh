#!/usr/bin/env bash
# Installs the Debian 12 packages PIVOT Workbench needs (only those missing) and configures a build.
# Usage: scripts/setup.sh [BUILD_DIR]      (default: build)
set -euo pipefail
cd "$(dirname "$0")/.."

# Why each package: Qt 6 for the window and the Qt Test suites; LibTorch (CPU) for models and
# training; oneDNN's headers (libdnnl-dev: LibTorch already loads the library) for the linear layers'
# float32 GEMMs on the CPU, about twice OpenBLAS's speed on AVX-512 machines; OpenBLAS (OpenMP
# build) because with Debian's reference BLAS LibTorch trains ~17x slower; SQLite for the run store; nlohmann-json and CLI11 (header-only) for configs and the command line;
# OpenCV for overlays; QCustomPlot for curves; Xvfb to run the window headless; ccache + Ninja for
# fast rebuilds; python3-torch for the C++-vs-Python benchmark; zlib + dataset-fashion-mnist for the
# encoder probe on a real labelled dataset; clang with its sanitizer and libFuzzer runtimes for the
# parser fuzz targets (scripts/fuzz.sh); clang-format for the format check (scripts/check-format.sh);
# Oniguruma (the regex engine HF tokenizers run tokenizer.json's patterns with) and utf8proc (NFC)
# for Hugging Face tokenizers; Gloo's headers (libgloo-dev: libtorch has its symbols) for
# data-parallel training on torch.distributed.
PACKAGES=(build-essential cmake ninja-build ccache pkg-config
  qt6-base-dev libqt6sql6-sqlite qt6-svg-dev libqcustomplot-dev
  libtorch-dev libdnnl-dev libopenblas0-openmp libsqlite3-dev nlohmann-json3-dev libcli11-dev
  libopencv-dev xvfb xauth python3-torch zlib1g-dev dataset-fashion-mnist
  clang libclang-rt-14-dev clang-format libonig-dev libutf8proc-dev libgloo-dev)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

BUILD_DIR="${1:-build}"
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release
fi
cmake --build "$BUILD_DIR" -j"$(nproc)"
