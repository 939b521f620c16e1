#!/usr/bin/env bash
# Pack a CUDA build of the project's Caffe so that it runs on a GPU host that
# has the NVIDIA driver and the CUDA libraries (e.g. a CUDA build of PyTorch
# with the nvidia-cublas/-curand/-cudnn-cu13/-nccl-cu13 wheels) but none of
# Caffe's Debian packages: the caffe tool, the GTest binary, libcaffe and
# every shared library they load except the C runtime and the CUDA libraries
# the host provides (cuBLAS, cuRAND, cuDNN, NCCL), plus Caffe's generated
# caffe_pb2 so the Python tools can read and write prototxts.
#
#   bash scripts/device_bundle.sh [BUILD_DIR] [OUT_DIR]
#
# BUILD_DIR defaults to build-cuda, OUT_DIR to .device/bundle.  Configure a
# lean CUDA build for one architecture (with cuDNN and NCCL from .venv's
# nvidia wheels; the GTest files scripts/device_check.sh runs) with:
#   cmake -S . -B build-gpu -DSEPNETS_CUDA=ON -DSEPNETS_CUDA_ARCHS=90 \
#         -DSEPNETS_CUDA_PTX= -DUSE_OPENCV=OFF -DUSE_LEVELDB=OFF \
#         -DPYTHON_EXECUTABLE=$PWD/.venv/bin/python \
#         -DSEPNETS_CAFFE_TESTS=binary_pattern_conv_layer,dnnl_conv_layer,omp_batch_norm_layer,omp_scale_layer,convolution_layer,deconvolution_layer,nccl_single_rank,layer_factory
#   make -C build-gpu -j"$(nproc)" caffe.bin test.testbin
# On the host:  source OUT_DIR/env.sh  (sets PATH, LD_LIBRARY_PATH, PYTHONPATH).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${1:-build-cuda}
OUT=${2:-.device/bundle}
say() { printf '[device-bundle] %s\n' "$*"; }
die() { printf '[device-bundle] error: %s\n' "$*" >&2; exit 1; }

cd "$ROOT"
[ -f "$BUILD/sepnets-paths.txt" ] || die "$BUILD/sepnets-paths.txt: not a build folder of this project"
grep -qx 'cuda=ON' "$BUILD/sepnets-paths.txt" || die "$BUILD: not a CUDA build (configure with -DSEPNETS_CUDA=ON)"
tool="$BUILD/caffe/tools/caffe"
testbin="$BUILD/caffe/test/test.testbin"
pb2="$BUILD/caffe/include/caffe/proto/caffe_pb2.py"
for f in "$tool" "$testbin" "$pb2"; do
  [ -f "$f" ] || die "$f: missing (make -C $BUILD caffe.bin test.testbin)"
done

rm -rf "$OUT.part"
mkdir -p "$OUT.part/bin" "$OUT.part/lib" "$OUT.part/python/caffe/proto"
cp "$tool" "$testbin" "$OUT.part/bin/"
# The C runtime and the CUDA driver/libraries come from the host.
host_provided='^(linux-vdso|ld-linux|libc\.|libm\.|libdl\.|libpthread\.|librt\.|libstdc\+\+|libgcc_s|libcuda\.|libcublas|libcublasLt|libcurand|libcudnn|libnccl|libnvidia)'
ldd "$tool" "$testbin" | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}' | sort -u |
  while read -r name path; do
    if [[ "$name" =~ $host_provided ]]; then continue; fi
    cp -L "$path" "$OUT.part/lib/$name"
  done
missing=$(ldd "$tool" "$testbin" | awk '/not found/ {print $1}' | grep -Ev 'libcublas|libcurand|libcudnn|libnccl' | sort -u || true)
[ -z "$missing" ] || die "unresolved libraries here: $missing"
touch "$OUT.part/python/caffe/__init__.py" "$OUT.part/python/caffe/proto/__init__.py"
cp "$pb2" "$OUT.part/python/caffe/proto/"
# What the build has (cudnn=ON/OFF, nccl=ON/OFF), for the check on the host.
grep -E "^(cuda|cudnn|nccl)=" "$BUILD/sepnets-paths.txt" > "$OUT.part/features.txt" || true
cat > "$OUT.part/env.sh" <<'SH'
# source this file: the bundle's caffe first on PATH, its libraries and the
# host's cuBLAS/cuRAND/cuDNN/NCCL (from the Python environment's nvidia
# wheels) on LD_LIBRARY_PATH, and caffe_pb2 (no compiled pycaffe) on PYTHONPATH.
_b=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
_nv=$(python3 -m sepnets.caffeio.env nvidia-lib-path 2>/dev/null || true)   # needs sepnets on PYTHONPATH
export PATH="$_b/bin:$PATH" SEPNETS_CAFFE_TOOLS="$_b/bin"
export LD_LIBRARY_PATH="$_b/lib${_nv:+:$_nv}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PYTHONPATH="$_b/python${PYTHONPATH:+:$PYTHONPATH}"
unset _b _nv
SH
rm -rf "$OUT"
mv "$OUT.part" "$OUT"
say "wrote $OUT ($(du -sh "$OUT" | cut -f1)): $(ls "$OUT/lib" | wc -l) libraries"
