#!/usr/bin/env bash
# Installs what the project needs into the project itself, once:
# .venv with PyPI's torch==2.11.0 (the libtorch tch 0.24.0 links) and the
# stable link .venv/libtorch that .cargo/config.toml points tch at.
# Safe to rerun: a venv with the right torch is reused.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
TORCH_VERSION=2.11.0

have_torch() {
  [ -x .venv/bin/python ] &&
    .venv/bin/python -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" 2>/dev/null
}

if ! have_torch; then
  command -v python3 >/dev/null || { echo "setup: python3 is needed to install torch==$TORCH_VERSION" >&2; exit 1; }
  command -v cargo >/dev/null || { echo "setup: cargo (Rust) is needed" >&2; exit 1; }
  echo "setup: installing torch==$TORCH_VERSION into $root/.venv (about 4.6 GB, a few minutes the first time)" >&2
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check "torch==$TORCH_VERSION" numpy pandas onnxruntime
  have_torch || { echo "setup: torch==$TORCH_VERSION did not install into .venv" >&2; exit 1; }
fi
# ONNX Runtime runs `searcher export`'s ONNX files in the round-trip tests;
# a venv made before it was needed gets it here.
if ! .venv/bin/python -c "import onnxruntime" 2>/dev/null; then
  echo "setup: installing onnxruntime into $root/.venv" >&2
  .venv/bin/pip install --quiet --disable-pip-version-check onnxruntime
fi
# The C++ binding to c10d (c10d-tch) compiles NCCL's process group in
# against torch's CUDA headers; the wheel's CUDA runtime headers include
# crt/ and nv/target, which only NVIDIA's crt and CCCL wheels bring (3 MB,
# the same CUDA 13.0, headers only). Without them the binding offers Gloo
# alone.
if [ -d "$(.venv/bin/python -c 'import torch, os; print(os.path.dirname(torch.__file__))')/../nvidia/cu13/include" ] &&
  ! .venv/bin/python -c "import importlib.metadata as m; m.version('nvidia-cuda-crt'); m.version('nvidia-cuda-cccl')" 2>/dev/null; then
  echo "setup: installing CUDA 13.0's crt and CCCL headers (for NCCL's process group) into $root/.venv" >&2
  .venv/bin/pip install --quiet --disable-pip-version-check --no-deps "nvidia-cuda-crt==13.0.88" "nvidia-cuda-cccl==13.0.85"
fi
# realpath: where .venv is itself a link (a clone sharing a checkout's venv),
# the link must not name the clone's path, which may go away.
torch_dir="$(.venv/bin/python -c 'import torch, os; print(os.path.realpath(os.path.dirname(torch.__file__)))' 2>/dev/null)"
ln -sfn "$torch_dir" .venv/libtorch

# NVRTC needs no GPU, so the tests compile the engine's CUDA kernels with the
# NVRTC that torch's wheel brings (CUDA 13.0, as on the GPU machine). Only
# NVRTC is linked into .venv/nvrtc, so putting that folder on the loader's
# path exposes none of the wheel's cuDNN or cuBLAS (docs/gpu-facts.md pitfall 1).
rm -rf .venv/nvrtc
nvrtc_lib="$(ls "$torch_dir"/../nvidia/cu13/lib/libnvrtc.so.* 2>/dev/null | head -1 || true)"
if [ -n "$nvrtc_lib" ]; then
  mkdir -p .venv/nvrtc
  for f in "$(dirname "$nvrtc_lib")"/libnvrtc*.so*; do
    ln -sfn "$(cd "$(dirname "$f")" && pwd)/$(basename "$f")" .venv/nvrtc/
  done
else
  echo "setup: torch's wheel brought no libnvrtc; the kernel compile tests will skip" >&2
fi
