# Shell helpers shared by the bench scripts (source it).

# wait_addr LOG → prints the base URL once a colm process logged "listening on URL".
wait_addr() {
  for _ in $(seq 1 600); do
    if grep -q "listening on" "$1" 2>/dev/null; then
      sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' "$1" | head -1
      return
    fi
    sleep 0.1
  done
  echo "no listening line in $1" >&2
  exit 1
}

# machine → "CPU model, N cores, M GiB RAM"
machine() {
  echo "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs), $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB RAM"
}

# free_port → a free TCP port on 127.0.0.1 (free when asked; the caller binds it next).
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# wait_ready URL → returns once URL/health answers (at most 120 s).
wait_ready() {
  for _ in $(seq 1 600); do
    curl -sf "$1/health" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "server at $1 did not become ready" >&2; return 1
}
