#!/usr/bin/env bash
# Builds llama-cpp-python once, with portable CPU flags, into a wheel folder outside
# the clone so that every fresh clone (CI's included) reuses it.
# Why the flags: the default -DGGML_NATIVE=ON build segfaults in decode on CPUs with AMX.
# Why a folder of our own: pip's wheel cache ignores CMAKE_ARGS, so an unflagged
# build could be picked up from it.
set -euo pipefail
PY="${1:-python3}"
VERSION="${LLAMA_CPP_VERSION:-0.3.36}"
FLAGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
TAG="avx2-fma-f16c-nonative"
DIR="${CHATWATCH_WHEEL_DIR:-$HOME/.cache/chatwatch/wheels/llama-cpp-python-$VERSION-$TAG}"
if ls "$DIR"/llama_cpp_python-"$VERSION"-*.whl >/dev/null 2>&1; then
  echo "$DIR"
  exit 0
fi
mkdir -p "$DIR.tmp"
echo "building llama-cpp-python $VERSION with $FLAGS (5-8 minutes on 2 cores)..." >&2
CMAKE_ARGS="$FLAGS" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
  "$PY" -m pip wheel --no-deps --no-cache-dir --no-binary llama-cpp-python \
  -w "$DIR.tmp" "llama-cpp-python==$VERSION" >&2
rm -rf "$DIR"
mv "$DIR.tmp" "$DIR"
echo "$DIR"
