"""The Evaluator's choice between the models' heads on EmbeddingGen's vectors and the full
models on the images (components/embedding_evaluator/executor.py)."""
import json
import os

import pytest
from tfx.types import standard_artifacts

from graft import contract
from graft.components.embedding_evaluator import executor
from graft.components.embedding_gen.component import Embeddings

KEY = "lite0-160-v3"


def _embeddings(tmp_path, key=KEY):
    e = Embeddings()
    e.uri = str(tmp_path / "embeddings")
    e.set_string_custom_property(contract.PROP_EMBEDDING_KEY, key)
    e.set_string_custom_property(contract.PROP_SPLIT_NAMES, '["train", "eval"]')
    return e


def _model(tmp_path, name, head_key=None):
    m = standard_artifacts.Model()
    m.uri = str(tmp_path / name)
    os.makedirs(os.path.join(m.uri, "Format-Serving"))
    if head_key is not None:
        extra = os.path.join(m.uri, contract.HEAD_MODEL_DIR, "Format-Serving",
                             contract.ASSETS_EXTRA)
        os.makedirs(extra)
        with open(os.path.join(extra, contract.HEAD_INFO_FILE), "w") as f:
            json.dump({"embedding_key": head_key, "classes": ["a", "b"], "dim": 4}, f)
    return m


def _inputs(tmp_path, candidate, champion=None):
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / "examples")
    d = {"examples": [examples], "model": [candidate]}
    if champion is not None:
        d["baseline_model"] = [champion]
    return d


def test_both_heads_on_these_vectors_are_scored_on_the_vectors(tmp_path):
    cand, champ = _model(tmp_path, "cand", KEY), _model(tmp_path, "champ", KEY)
    emb = _embeddings(tmp_path)
    swapped, why = executor.on_vectors(_inputs(tmp_path, cand, champ), [emb])
    assert why == "" and swapped is not None
    [examples] = swapped["examples"]
    assert examples.type_name == standard_artifacts.Examples.TYPE_NAME
    assert examples.uri == emb.uri and json.loads(examples.split_names) == ["train", "eval"]
    for key, model in (("model", cand), ("baseline_model", champ)):
        [head] = swapped[key]
        assert head.uri == os.path.join(model.uri, contract.HEAD_MODEL_DIR)
        assert head.type_name == standard_artifacts.Model.TYPE_NAME
    # The caller's artifacts are left as they were.
    assert cand.uri == str(tmp_path / "cand")


def test_a_first_run_needs_only_the_challengers_head(tmp_path):
    swapped, why = executor.on_vectors(_inputs(tmp_path, _model(tmp_path, "cand", KEY)),
                                       [_embeddings(tmp_path)])
    assert swapped is not None and "baseline_model" not in swapped


@pytest.mark.parametrize("cand_key,champ_key,embeddings,words", [
    (KEY, KEY, False, "no vectors"),
    (None, KEY, True, "challenger has no head export"),
    (KEY, None, True, "champion has no head export"),
    (KEY, "lite2-260-v3", True, "champion's head takes other vectors"),
    ("lite2-260-v3", KEY, True, "challenger's head takes other vectors"),
])
def test_otherwise_the_full_models_run_on_the_images(tmp_path, cand_key, champ_key,
                                                     embeddings, words):
    inputs = _inputs(tmp_path, _model(tmp_path, "cand", cand_key),
                     _model(tmp_path, "champ", champ_key))
    swapped, why = executor.on_vectors(inputs, [_embeddings(tmp_path)] if embeddings else [])
    assert swapped is None and words in why


def test_embeddings_without_a_key_are_never_taken_for_a_match(tmp_path):
    swapped, why = executor.on_vectors(_inputs(tmp_path, _model(tmp_path, "cand", "")),
                                       [_embeddings(tmp_path, key="")])
    assert swapped is None and "other vectors" in why


def test_an_unreadable_head_record_means_the_full_models(tmp_path):
    champ = _model(tmp_path, "champ", KEY)
    with open(os.path.join(champ.uri, contract.HEAD_MODEL_DIR, "Format-Serving",
                           contract.ASSETS_EXTRA, contract.HEAD_INFO_FILE), "w") as f:
        f.write("{half a record")
    swapped, why = executor.on_vectors(_inputs(tmp_path, _model(tmp_path, "cand", KEY), champ),
                                       [_embeddings(tmp_path)])
    assert swapped is None and "champion has no head export" in why
