#!/usr/bin/env bash
# Builds a llama.cpp tool as the peer of colm's engine — `llama-bench` (engine speed) or
# `llama-server` (serving speed) — on the llama.cpp library that the llama-cpp-sys-2 crate
# vendors (src/ and ggml/: the engine's exact compute code), with the same CPU flags
# (GGML_NATIVE=ON, no OpenMP: ggml's own thread pool, Release). The crate's copy has no tool
# sources, so they are taken from the llama-cpp-python sdist (`pip download`): llama-bench
# alone; llama-server with the sdist's common/ and mtmd/ it is written against (its HTTP,
# slots and batching code, not the compute kernels). If that does not compile, the sdist's
# whole llama.cpp is built instead and the script says so on stderr (the benchmark scripts
# record which one was used). Nothing here is
# committed: sources and binaries live under $BENCH_DIR (default target/bench-peers).
# llama-server is built without its web UI (LLAMA_BUILD_UI=OFF, no prebuilt assets).
#
# Usage: bench/build-llama-peer.sh [llama-bench|llama-server]  → prints the path of the binary
set -euo pipefail
tool="${1:-llama-bench}"
case "$tool" in llama-bench|llama-server) ;; *) echo "unknown tool $tool" >&2; exit 2;; esac
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${BENCH_DIR:-$root/target/bench-peers}"
mkdir -p "$out"
log="$out/build-$tool.log"
sys_version=$(cd "$root" && cargo metadata --format-version 1 2>/dev/null |
  python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"]=="llama-cpp-sys-2"))')
vendored=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"llama-cpp-sys-2-$sys_version"/llama.cpp | head -1)
[ -d "$vendored" ] || { echo "vendored llama.cpp of llama-cpp-sys-2 $sys_version not found; run cargo build first" >&2; exit 1; }

if [ ! -d "$out/sdist/llama.cpp" ]; then
  rm -rf "$out/sdist" && mkdir -p "$out/sdist"
  pip download --no-deps --no-binary llama-cpp-python llama-cpp-python==0.3.36 -d "$out/sdist" -q >&2
  tar xzf "$out"/sdist/llama_cpp_python-*.tar.gz -C "$out/sdist"
  mv "$out"/sdist/llama_cpp_python-*/vendor/llama.cpp "$out/sdist/llama.cpp"
fi

flags=(-DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DGGML_OPENMP=OFF -DBUILD_SHARED_LIBS=OFF
  -DLLAMA_BUILD_COMMON=ON -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF
  -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_APP=OFF
  -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF)

build() { # $1 = source tree, $2 = build dir
  cmake -S "$1" -B "$2" "${flags[@]}" >>"$log" 2>&1 &&
    cmake --build "$2" --target "$tool" -j "$(nproc)" >>"$log" 2>&1
}

# Rebuild when the flags change.
if [ "$(cat "$out/flags.txt" 2>/dev/null)" != "${flags[*]}" ]; then
  rm -rf "$out"/*-build "$out"/*-src
  echo "${flags[*]}" >"$out/flags.txt"
fi
# One source tree per tool: the vendored library plus the sdist sources the tool needs.
src="$out/$tool-src"; bld="$out/$tool-build"
if [ ! -x "$bld/bin/$tool" ] && [ ! -x "$out/sdist-build/bin/$tool" ]; then
  : >"$log"
  rm -rf "$src" && cp -r "$vendored" "$src"
  if [ "$tool" = llama-server ]; then from=(common tools/mtmd tools/server tools/ui); else from=(tools/llama-bench); fi
  for d in "${from[@]}"; do rm -rf "${src:?}/$d"; cp -r "$out/sdist/llama.cpp/$d" "$src/$d"; done
  mkdir -p "$src/scripts"
  cp -n "$out"/sdist/llama.cpp/scripts/*.cmake "$src/scripts/" 2>/dev/null || true
  printf 'add_subdirectory(llama-bench)\n' >"$src/tools/CMakeLists.txt"
  [ "$tool" = llama-server ] && printf 'add_subdirectory(mtmd)\nadd_subdirectory(ui)\nadd_subdirectory(server)\n' >"$src/tools/CMakeLists.txt"
  if ! build "$src" "$bld"; then
    echo "$tool does not build against the vendored llama.cpp (see $log); building the sdist's llama.cpp" >&2
    build "$out/sdist/llama.cpp" "$out/sdist-build"
  fi
fi
if [ -x "$bld/bin/$tool" ]; then
  echo "$bld/bin/$tool"
else
  echo "$out/sdist-build/bin/$tool"
fi
