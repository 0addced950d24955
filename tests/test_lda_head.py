"""The shrinkage-LDA head: scikit-learn's model, computed a chunk at a time."""
import numpy as np
import pytest

from graft.trainer import lda_head, linear_head


def _blobs(n, d, k, seed, scale_spread=True):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    centres = rng.normal(size=(k, d))
    x = centres[y] + rng.normal(size=(n, d)) * (rng.uniform(0.2, 3.0, d) if scale_spread else 1)
    return (x + rng.normal(size=d) * 5).astype(np.float32), y


@pytest.mark.parametrize("n,d,k", [(300, 40, 3), (120, 200, 4), (400, 30, 2)])
def test_matches_scikit_learn(n, d, k, monkeypatch):
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    x, y = _blobs(n, d, k, seed=n + d)
    monkeypatch.setattr(lda_head, "_CHUNK", 37)  # several chunks, one cut mid-class
    head = lda_head.fit(x, y, k)
    ref = LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto").fit(
        x.astype(np.float64), y)
    ours = linear_head_softmax(head.logits(x))
    np.testing.assert_allclose(ours, ref.predict_proba(x.astype(np.float64)), atol=2e-4)
    assert head.kind == "lda" and head.kernel.dtype == np.float32


def test_classes_larger_and_smaller_than_the_feature_count_mix(monkeypatch):
    """A class with more rows than features sums its [d, d] scatter; smaller ones go
    through their Gram matrices and one weighted pass: the same model."""
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    x, _ = _blobs(310, 60, 3, seed=8)
    y = np.array([0] * 250 + [1] * 30 + [2] * 30)
    x[y == 1] += 1.5
    monkeypatch.setattr(lda_head, "_CHUNK", 64)
    head = lda_head.fit(x, y, 3)
    ref = LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto").fit(
        x.astype(np.float64), y)
    np.testing.assert_allclose(linear_head_softmax(head.logits(x)),
                               ref.predict_proba(x.astype(np.float64)), atol=2e-4)


def test_a_feature_flat_within_a_class_takes_its_overall_scale():
    """EfficientNet's ReLU6 features are often 0 for every image of a class. The head is
    then scikit-learn's LDA on standardised features (units do not matter)."""
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.preprocessing import StandardScaler
    x, y = _blobs(300, 30, 3, seed=7)
    x[:, :5] *= 40.0
    x[y == 1, :8] = 0.0              # flat within class 1, in two different units
    head = lda_head.fit(x, y, 3)
    sc = StandardScaler().fit(x.astype(np.float64))
    ref = LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto").fit(
        sc.transform(x.astype(np.float64)), y)
    np.testing.assert_allclose(linear_head_softmax(head.logits(x)),
                               ref.predict_proba(sc.transform(x.astype(np.float64))),
                               atol=2e-4)
    scaled = x * np.float32(1000.0)  # other units: the same predictions
    np.testing.assert_allclose(linear_head_softmax(lda_head.fit(scaled, y, 3).logits(scaled)),
                               linear_head_softmax(head.logits(x)), atol=2e-4)


def linear_head_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def test_absent_class_is_never_predicted_and_constant_features_are_harmless():
    x, y = _blobs(200, 20, 3, seed=1)
    x[:, 5] = 7.0                    # a constant feature
    x[:, 6] = 7.0 + 1e-9 * np.arange(len(x), dtype=np.float32)  # float noise only
    head = lda_head.fit(x, y, 5)     # classes 3 and 4 have no images
    z = head.logits(x)
    assert np.isfinite(z).all()
    assert set(z.argmax(1)) <= {0, 1, 2}
    assert np.mean(z.argmax(1) == y) > 0.9
    assert not head.kernel[:, 3:].any()


def test_cross_validated_accuracy_on_the_logistic_heads_folds():
    x, y = _blobs(300, 50, 3, seed=2)
    head = lda_head.train(x, y, 3, folds=5, seed=0)
    assert head.cv_folds == 5 and head.cv_rows == 300
    assert 0.5 < head.cv_accuracy <= 1.0
    sub = lda_head.train(x, y, 3, folds=3, seed=0, cv_max_rows=90)
    assert sub.cv_rows == 90 and sub.cv_folds == 3
    # The fit itself always uses every row.
    np.testing.assert_allclose(sub.kernel, head.kernel, rtol=1e-5, atol=1e-6)


def test_one_image_per_class_still_fits():
    x, y = _blobs(3, 10, 3, seed=3)
    head = lda_head.train(x, np.array([0, 1, 2]), 3, folds=5, seed=0)
    assert head.cv_folds == 0 and np.isfinite(head.logits(x)).all()


def test_needs_two_classes():
    x, _ = _blobs(20, 5, 2, seed=4)
    with pytest.raises(ValueError, match="two classes"):
        lda_head.fit(x, np.zeros(20, np.int64), 2)


def test_same_head_type_as_the_logistic_one():
    x, y = _blobs(200, 20, 3, seed=5)
    a = linear_head.train(x, y, 3, [0.1, 1.0], 3, 0)
    b = lda_head.train(x, y, 3, 3, 0)
    assert type(a) is type(b) and a.kernel.shape == b.kernel.shape
    assert np.mean(a.logits(x).argmax(1) == b.logits(x).argmax(1)) > 0.9
