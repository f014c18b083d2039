#!/usr/bin/env bash
# Builds llama.cpp's `llama-bench` as the peer of colm's engine, from the llama.cpp sources that
# the llama-cpp-sys-2 crate vendors (same commit as the engine), with the same CPU flags
# (GGML_NATIVE=ON, no OpenMP: ggml's own thread pool, Release). The crate's copy has no tools/
# sources, so the llama-bench source files are taken from the llama-cpp-python sdist
# (`pip download`), whose llama.cpp has them; if that source does not compile against the vendored headers, the whole llama.cpp of the
# sdist is built instead and the script says so. Nothing here is committed: sources and
# binaries live under $BENCH_DIR (default target/bench-peers).
#
# Usage: bench/build-llama-bench.sh        → prints the path of the llama-bench binary
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${BENCH_DIR:-$root/target/bench-peers}"
mkdir -p "$out"
log="$out/build.log"
sys_version=$(cd "$root" && cargo metadata --format-version 1 2>/dev/null |
  python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"]=="llama-cpp-sys-2"))')
vendored=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"llama-cpp-sys-2-$sys_version"/llama.cpp | head -1)
[ -d "$vendored" ] || { echo "vendored llama.cpp of llama-cpp-sys-2 $sys_version not found; run cargo build first" >&2; exit 1; }

if [ ! -d "$out/sdist/llama.cpp" ]; then
  rm -rf "$out/sdist" && mkdir -p "$out/sdist"
  pip download --no-deps --no-binary :all: llama-cpp-python==0.3.36 -d "$out/sdist" -q >&2
  tar xzf "$out"/sdist/llama_cpp_python-*.tar.gz -C "$out/sdist"
  mv "$out"/sdist/llama_cpp_python-*/vendor/llama.cpp "$out/sdist/llama.cpp"
fi

flags=(-DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DGGML_OPENMP=OFF -DBUILD_SHARED_LIBS=OFF
  -DLLAMA_BUILD_COMMON=ON -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF
  -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF)

build() { # $1 = source tree, $2 = build dir
  cmake -S "$1" -B "$2" "${flags[@]}" >>"$log" 2>&1 &&
    cmake --build "$2" --target llama-bench -j "$(nproc)" >>"$log" 2>&1
}

# Rebuild when the flags change.
if [ "$(cat "$out/flags.txt" 2>/dev/null)" != "${flags[*]}" ]; then
  rm -rf "$out/vendored-build" "$out/sdist-build"
  echo "${flags[*]}" >"$out/flags.txt"
fi
if [ ! -x "$out/vendored-build/bin/llama-bench" ] && [ ! -x "$out/sdist-build/bin/llama-bench" ]; then
  : >"$log"
  rm -rf "$out/vendored-src" && cp -r "$vendored" "$out/vendored-src"
  rm -rf "$out/vendored-src/tools/llama-bench"
  cp -r "$out/sdist/llama.cpp/tools/llama-bench" "$out/vendored-src/tools/llama-bench"
  echo 'add_subdirectory(llama-bench)' >"$out/vendored-src/tools/CMakeLists.txt"
  if ! build "$out/vendored-src" "$out/vendored-build"; then
    echo "llama-bench does not build against the vendored llama.cpp (see $log); building the sdist's llama.cpp" >&2
    build "$out/sdist/llama.cpp" "$out/sdist-build"
  fi
fi
if [ -x "$out/vendored-build/bin/llama-bench" ]; then
  echo "$out/vendored-build/bin/llama-bench"
else
  echo "$out/sdist-build/bin/llama-bench"
fi
