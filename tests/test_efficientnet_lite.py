"""The Keras EfficientNet-Lite builder and the weight mapping, without saving."""
import numpy as np

from graft.backbones import efficientnet_lite, torch_weights


def test_lite0_has_16_blocks_as_in_the_paper():
    specs = efficientnet_lite.block_specs("efficientnet_lite0")
    assert len(specs) == 16
    assert specs[0] == (32, 16, 3, 1, 1)
    assert specs[-1] == (192, 320, 3, 1, 6)


def test_every_layer_gets_a_weight_and_parameter_count_matches(weights_file):
    sd = torch_weights.load_state_dict(weights_file)
    features, logits = efficientnet_lite.build("efficientnet_lite0")
    efficientnet_lite.load_weights(features, logits, sd, "efficientnet_lite0")
    n_keras = features.count_params() + logits.count_params()
    n_torch = sum(v.size for k, v in sd.items() if not k.endswith("num_batches_tracked"))
    assert n_keras == n_torch
    # Layout conversions: spot-check a conv, a depthwise conv and the classifier.
    k = features.get_layer("stem_conv").get_weights()[0]
    np.testing.assert_array_equal(k[:, :, 1, 7], sd["_conv_stem.weight"][7, 1])
    dw = features.get_layer("block05_dw_conv").get_weights()[0]
    np.testing.assert_array_equal(dw[:, :, 9, 0], sd["_blocks.5._depthwise_conv.weight"][9, 0])
    np.testing.assert_array_equal(logits.get_weights()[0], sd["_fc.weight"].T)


def test_names_let_the_top_blocks_be_selected():
    features, _ = efficientnet_lite.build("efficientnet_lite0")
    names = [v.name for v in features.trainable_variables]
    assert any(n.startswith("block15_") for n in names)
    assert all(n.split("_")[0] in {"stem", "head"} or n.startswith("block") for n in names)
