# Sourced by the demos: serve_model NAME BASE_PATH LOG starts `graft serve` for one model on
# 127.0.0.1 (REST :$REST_PORT, gRPC :$GRPC_PORT), stops it when the script exits, waits
# until the model is AVAILABLE (or says why not) and prints its status. Needs G and PY.
serve_model() {
  local name=$1 base=$2 log=$3
  $G serve --model_name "$name" --model_base_path "$base" \
    --rest_api_port "$REST_PORT" --port "$GRPC_PORT" > "$log" 2>&1 &
  SERVER=$!
  trap 'kill $SERVER 2>/dev/null || true' EXIT
  local url="http://127.0.0.1:$REST_PORT/v1/models/$name"
  status() { $PY -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=2).read().decode())' \
    "$url" 2>/dev/null; }
  for _ in $(seq 1 120); do
    if status | grep -q AVAILABLE; then break; fi
    if ! kill -0 $SERVER 2>/dev/null; then echo "graft serve exited:"; cat "$log"; exit 1; fi
    sleep 1
  done
  status
}
