#!/usr/bin/env bash
# One-command set-up: Debian packages, Caffe 1.0 source (pinned, verified,
# patched) built with the project's layers, the Python environment, and the
# shell integration that makes `caffe` and `python -c "import caffe"` work in
# a new shell.  Idempotent: on a built tree it finishes in seconds.
#
# Environment knobs:
#   SEPNETS_CUDA=1               build with CUDA into build-cuda/ (cuBLAS/cuRAND,
#                                cuDNN and NCCL from the nvidia-* wheels when the
#                                system has none)
#   SEPNETS_CUDNN=0              with SEPNETS_CUDA=1: without cuDNN and NCCL
#   SEPNETS_CAFFE_SOURCE=PATH    Caffe tarball or checkout to use instead of Debian's
#   SEPNETS_CAFFE_FROM=github    download the GitHub archive of the pinned commit
#   SEPNETS_JOBS=N               parallel build jobs (default: nproc)
#   SEPNETS_NO_SHELL_HOOK=1      do not touch ~/.bashrc or /etc/profile.d
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
say() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }

SEPNETS_CUDA=${SEPNETS_CUDA:-0}
SEPNETS_CUDNN=${SEPNETS_CUDNN:-1}
JOBS=${SEPNETS_JOBS:-$(nproc)}
BUILD_DIR="$ROOT/build"
[ "$SEPNETS_CUDA" = 1 ] && BUILD_DIR="$ROOT/build-cuda"
VENV="$ROOT/.venv"
PY=/usr/bin/python3.11

APT_PACKAGES=(
  build-essential cmake pkg-config patch git ca-certificates
  libboost-system-dev libboost-thread-dev libboost-filesystem-dev libboost-python-dev
  libgoogle-glog-dev libgflags-dev libprotobuf-dev protobuf-compiler
  libhdf5-dev liblmdb-dev libleveldb-dev libsnappy-dev libopenblas-dev
  libopencv-dev libdnnl-dev python3-dev python3-venv graphviz
)

# The main Debian archive this machine already uses (not the security one).
debian_mirror() {
  local uri
  uri=$(awk '/^Types:/{deb=($0 ~ /(^|[ \t])deb([ \t]|$)/)} /^URIs:/{u=$2}
             /^Suites:/{ if (deb && $0 !~ /security/ && u != "") {print u; exit} }' \
        /etc/apt/sources.list.d/*.sources 2>/dev/null)
  [ -n "$uri" ] || uri=$(awk '$1=="deb" && $0 !~ /security/ {print ($2 ~ /^\[/ ? $3 : $2); exit}' \
        /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null)
  [ -n "$uri" ] && printf '%s\n' "$uri"
}

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# ---- 1. Debian packages -----------------------------------------------------
apt_updated=0
apt_update_once() {
  if [ $apt_updated = 0 ]; then
    say "apt-get update"
    as_root apt-get update -q >/dev/null || die "apt-get update failed"
    apt_updated=1
  fi
}
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt_update_once
  say "installing Debian packages: ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    "${missing[@]}" >/dev/null || die "apt-get install failed for: ${missing[*]}"
else
  say "Debian packages: all ${#APT_PACKAGES[@]} present"
fi

# ---- 2. Caffe source: a deb-src entry for bullseye, from this machine's mirror --
DEB_ORIG="third_party/downloads/caffe_1.0.0+git20180821.99bd997.orig.tar.gz"
if [ -z "${SEPNETS_CAFFE_SOURCE:-}" ] && [ "${SEPNETS_CAFFE_FROM:-debian}" = debian ] \
   && [ ! -f "$DEB_ORIG" ]; then
  if ! apt-cache showsrc caffe 2>/dev/null | grep -q '^Version: 1.0.0+git20180821.99bd997-8'; then
    mirror=$(debian_mirror) \
      || die "no Debian mirror found in /etc/apt; pass SEPNETS_CAFFE_SOURCE=<caffe tarball or checkout>"
    say "adding deb-src entry for bullseye from mirror $mirror"
    printf 'Types: deb-src\nURIs: %s\nSuites: bullseye\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      "$mirror" | as_root tee /etc/apt/sources.list.d/sepnets-bullseye-src.sources >/dev/null
    apt_updated=0
    apt_update_once
  fi
fi

# ---- 3. Python environment ----------------------------------------------------
[ -x "$PY" ] || die "$PY not found (apt-get install python3-dev python3-venv)"
if [ ! -x "$VENV/bin/python" ]; then
  say "creating Python environment $VENV"
  "$PY" -m venv "$VENV"
fi
req_hash=$(cat requirements.txt | sha256sum | cut -c1-16)
[ "$SEPNETS_CUDA" = 1 ] && req_hash="$req_hash-cuda"
[ "$SEPNETS_CUDA" = 1 ] && [ "$SEPNETS_CUDNN" = 1 ] && req_hash="$req_hash-cudnn"
if [ "$(cat "$VENV/.sepnets-req" 2>/dev/null)" != "$req_hash" ]; then
  say "installing Python packages (requirements.txt)"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r requirements.txt \
    || die "pip install -r requirements.txt failed"
  if [ "$SEPNETS_CUDA" = 1 ] && [ ! -e /usr/local/cuda/lib64/libcublas.so ]; then
    say "installing cuBLAS/cuRAND wheels (nvidia-cublas, nvidia-curand)"
    "$VENV/bin/pip" install -q --disable-pip-version-check nvidia-cublas nvidia-curand \
      || die "pip install nvidia-cublas nvidia-curand failed"
  fi
  if [ "$SEPNETS_CUDA" = 1 ] && [ "$SEPNETS_CUDNN" = 1 ]; then
    wheels=()
    [ -e /usr/local/cuda/include/cudnn.h ] || [ -e /usr/include/cudnn.h ] || wheels+=(nvidia-cudnn-cu13)
    [ -e /usr/local/cuda/include/nccl.h ] || [ -e /usr/include/nccl.h ] || wheels+=(nvidia-nccl-cu13)
    if [ ${#wheels[@]} -gt 0 ]; then
      say "installing cuDNN/NCCL wheels (${wheels[*]})"
      "$VENV/bin/pip" install -q --disable-pip-version-check "${wheels[@]}" \
        || die "pip install ${wheels[*]} failed (or set SEPNETS_CUDNN=0: no cuDNN, no NCCL)"
    fi
  fi
  echo "$req_hash" > "$VENV/.sepnets-req"
else
  say "Python packages: up to date"
fi

# ---- 4. Configure and build Caffe with the project's layers --------------------
cmake_args=(-S "$ROOT" -B "$BUILD_DIR" -DPYTHON_EXECUTABLE="$VENV/bin/python")
[ "$SEPNETS_CUDA" = 1 ] && cmake_args+=(-DSEPNETS_CUDA=ON)
if [ "$SEPNETS_CUDA" = 1 ]; then
  if [ "$SEPNETS_CUDNN" = 1 ]; then cmake_args+=(-DSEPNETS_CUDNN=ON); else cmake_args+=(-DSEPNETS_CUDNN=OFF); fi
fi
[ -n "${SEPNETS_CAFFE_SOURCE:-}" ] && cmake_args+=(-DSEPNETS_CAFFE_SOURCE="$SEPNETS_CAFFE_SOURCE")
[ -n "${SEPNETS_CAFFE_FROM:-}" ] && cmake_args+=(-DSEPNETS_CAFFE_FROM="$SEPNETS_CAFFE_FROM")
# Caffe's GTest binary holds the whole of Caffe's test suite and the project's
# tests (SEPNETS_CAFFE_TESTS=a,b: only those test files); it is built for
# scripts/test.sh (SEPNETS_BUILD_TESTS=1), not for the main job.
cmake_args+=(-DSEPNETS_CAFFE_TESTS="${SEPNETS_CAFFE_TESTS-}")
BUILD_TESTS=${SEPNETS_BUILD_TESTS:-0}
say "configuring $BUILD_DIR"
cmake "${cmake_args[@]}" > "$BUILD_DIR.configure.log" 2>&1 || {
  grep -h "sepnets:" "$BUILD_DIR.configure.log" >&2 || tail -20 "$BUILD_DIR.configure.log" >&2
  die "cmake configure failed (log: $BUILD_DIR.configure.log)"
}
what="Caffe and pycaffe"
[ "$BUILD_TESTS" = 1 ] && what="Caffe, pycaffe and the test binary (Caffe's whole suite)"
say "building $what ($JOBS jobs; log: $BUILD_DIR.build.log)"
start=$(date +%s)
cmake --build "$BUILD_DIR" -j "$JOBS" > "$BUILD_DIR.build.log" 2>&1 &&
{ [ "$BUILD_TESTS" != 1 ] ||
  cmake --build "$BUILD_DIR" -j "$JOBS" --target test.testbin >> "$BUILD_DIR.build.log" 2>&1; } || {
  grep -E "error|Error" "$BUILD_DIR.build.log" | head -20 >&2
  die "build failed (log: $BUILD_DIR.build.log)"
}
say "build done in $(( $(date +%s) - start )) s"

# ---- 5. Install: tools on PATH, pycaffe and the project package in the venv -----
TOOLS_DIR="$BUILD_DIR/caffe/tools"
if [ "$SEPNETS_CUDA" != 1 ] || [ ! -x "$ROOT/build/caffe/tools/caffe" ]; then
  for t in caffe convert_imageset compute_image_mean upgrade_net_proto_text \
           upgrade_net_proto_binary upgrade_solver_proto_text extract_features; do
    [ -x "$TOOLS_DIR/$t" ] && as_root ln -sfn "$TOOLS_DIR/$t" "/usr/local/bin/$t"
  done
  say "installed Caffe tools into /usr/local/bin (caffe -> $TOOLS_DIR/caffe)"
fi
site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
# pycaffe from the build; the project's package as an editable install
# (pyproject.toml), so tools and tests import it without sys.path edits.
printf '%s\n' "$BUILD_DIR/caffe-src/python" > "$site/caffe.pth"
rm -f "$site/sepnets.pth"       # the path file of earlier set-ups
if ! grep -qxF "$ROOT/python" "$site"/__editable__.sepnets-*.pth 2>/dev/null; then
  "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps --no-build-isolation \
    -e "$ROOT" || die "pip install -e $ROOT (the sepnets package) failed"
fi
ln -sfn "$TOOLS_DIR/caffe" "$VENV/bin/caffe"
say "pycaffe and the sepnets package (editable) are importable from $VENV"

# ---- 6. New shells use the environment -------------------------------------------
if [ "${SEPNETS_NO_SHELL_HOOK:-0}" != 1 ]; then
  block="# >>> sepnets >>>
[ -f '$VENV/bin/activate' ] && . '$VENV/bin/activate'
# <<< sepnets <<<"
  rc="$HOME/.bashrc"
  touch "$rc"
  sed -i '/^# >>> sepnets >>>$/,/^# <<< sepnets <<<$/d' "$rc"
  printf '%s\n' "$block" >> "$rc"
  printf '%s\n' "$block" | as_root tee /etc/profile.d/sepnets.sh >/dev/null
  say "new shells activate $VENV (block in $rc and /etc/profile.d/sepnets.sh)"
fi

"$VENV/bin/python" -c "import caffe" || die "import caffe failed in $VENV"
"$TOOLS_DIR/caffe" --version >/dev/null 2>&1 || die "$TOOLS_DIR/caffe does not run"
say "ready: $("$TOOLS_DIR/caffe" --version 2>&1 | tail -1), pycaffe in $VENV"
