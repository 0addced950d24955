"""Phase 1's logistic-regression head, on real data (scikit-learn's 8x8 digits)."""
import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from graft.trainer import linear_head, model


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(y))
    x, y = x[order].astype(np.float32), y[order]
    return x[:1200], y[:1200], x[1200:], y[1200:]


def test_folded_layer_reproduces_the_standardised_fit(digits):
    """The same model as scikit-learn's: at least as close to the exact optimum (a fit
    with tol 1e-10) as scikit-learn's own fit at its default tolerance, which graft uses."""
    x, y, _, _ = digits
    head = linear_head.fit(x, y, 10, c=0.1)
    sc = StandardScaler().fit(x)
    xs = sc.transform(x)
    exact = LogisticRegression(C=0.1, max_iter=50000, tol=1e-10).fit(xs, y).decision_function(xs)
    default = LogisticRegression(C=0.1, max_iter=5000).fit(xs, y).decision_function(xs)
    ours = head.logits(x)
    assert np.abs(ours - exact).max() <= 1.2 * np.abs(default - exact).max()
    assert np.mean(ours.argmax(1) == exact.argmax(1)) > 0.995
    assert head.kernel.dtype == np.float32 and head.kernel.shape == (64, 10)


def test_cross_validated_head_generalises(digits):
    x, y, xt, yt = digits
    head = linear_head.train(x, y, 10, grid=[0.001, 0.01, 0.1, 1.0], folds=5, seed=0)
    assert head.cv_folds == 5 and head.c in (0.001, 0.01, 0.1, 1.0)
    assert head.cv_accuracy > 0.9
    assert np.mean(head.logits(xt).argmax(1) == yt) > 0.9
    # The same head, loaded into the Keras model that is exported and fine-tuned.
    keras_head = model.build_head(10, 0.2, 64, seed=0)
    model.set_head_weights(keras_head, head.kernel, head.bias)
    np.testing.assert_allclose(keras_head.predict(xt, verbose=0), head.logits(xt),
                               rtol=1e-4, atol=1e-4)


def test_choice_is_by_cross_validation_not_the_first_grid_value(digits):
    x, y, _, _ = digits
    # C = 1e-6 barely moves the weights off zero: cross-validation must reject it.
    head = linear_head.train(x, y, 10, [1e-6, 0.1], folds=3, seed=0)
    assert (head.c, head.cv_folds) == (0.1, 3) and head.cv_accuracy > 0.9


def test_two_classes_give_two_logit_columns(digits):
    x, y, _, _ = digits
    keep = y < 2
    head = linear_head.train(x[keep], y[keep], 2, grid=[0.1], folds=5, seed=0)
    assert head.kernel.shape == (64, 2)
    assert np.mean(head.logits(x[keep]).argmax(1) == y[keep]) > 0.95


def test_a_class_missing_from_training_is_never_predicted(digits):
    x, y, xt, _ = digits
    keep = y != 3
    head = linear_head.fit(x[keep], y[keep], 10, c=0.1)
    assert not np.any(head.logits(xt).argmax(1) == 3)
    assert not head.kernel[:, 3].any()


def test_too_few_images_to_cross_validate_uses_the_grid_middle():
    x = np.array([[0.0, 1.0], [1.0, 0.0], [0.9, 0.1]], np.float32)
    y = np.array([0, 1, 1])
    head = linear_head.train(x, y, 2, grid=[0.01, 0.1, 1.0], folds=5, seed=0)
    assert head.c == 0.1 and head.cv_folds == 0 and head.cv_accuracy is None


def test_one_class_is_refused():
    with pytest.raises(ValueError, match="at least two classes"):
        linear_head.fit(np.ones((4, 3), np.float32), np.zeros(4, int), 2, c=1.0)


def test_large_sets_pick_c_on_a_subsample_then_fit_everything(digits):
    x, y, xt, yt = digits
    head = linear_head.train(x, y, 10, [0.001, 0.01, 0.1, 1.0], folds=3, seed=0,
                             cv_max_rows=300)
    assert head.cv_rows == 300 and head.cv_folds == 3 and head.cv_accuracy > 0.8
    # The final fit saw every row: it equals a plain fit on all of them at that C.
    full = linear_head.fit(x, y, 10, head.c)
    np.testing.assert_allclose(head.logits(xt), full.logits(xt), rtol=1e-4, atol=1e-4)
    assert np.mean(head.logits(xt).argmax(1) == yt) > 0.9
    whole = linear_head.train(x, y, 10, [0.01, 0.1], folds=3, seed=0, cv_max_rows=5000)
    assert whole.cv_rows == len(y)


def test_few_rows_many_features_fit_in_the_row_space_gives_the_same_model(digits):
    """Fewer images than features (the usual case: hundreds of images, 1 000s of
    features) is solved in the rows' span: the same logits as the fit in feature space."""
    x, y, xt, _ = digits
    proj = np.random.default_rng(1).normal(size=(64, 200)).astype(np.float32)
    wide = np.concatenate([x, x @ proj], axis=1)[:150]
    coords, basis = linear_head._row_space(wide.astype(np.float64))
    assert basis is not None and coords.shape[0] == 150 and basis.shape[1] == 264
    np.testing.assert_allclose(basis @ basis.T, np.eye(len(basis)), atol=1e-8)
    assert linear_head._row_space(np.zeros((300, 264)))[1] is None  # rows >= 3/4 of columns
    # The cross-validation's solver (scikit-learn's, through _solve) in the rows' span,
    # against the same solver on the standardised features; both run to tol 1e-10.
    reduced = LogisticRegression(C=0.05, max_iter=50000, tol=1e-10)
    scaler, _ = linear_head._solve(reduced, wide, y[:150])
    sc = StandardScaler().fit(wide)
    ref = LogisticRegression(C=0.05, max_iter=50000, tol=1e-10).fit(sc.transform(wide), y[:150])
    test = sc.transform(np.concatenate([xt, xt @ proj], axis=1))
    assert reduced.coef_.shape == ref.coef_.shape
    np.testing.assert_allclose(test @ reduced.coef_.T + reduced.intercept_,
                               ref.decision_function(test), rtol=1e-3, atol=1e-3)


def test_two_classes_match_scikit_learns_binomial_fit(digits):
    """Two classes are scikit-learn's binomial model (C means the same as in the
    cross-validation that chose it), not a two-column softmax."""
    x, y, _, _ = digits
    keep = np.isin(y, [3, 8])
    x2, y2 = x[keep], (y[keep] == 8).astype(int)
    head = linear_head.fit(x2, y2, 2, c=0.05)
    sc = StandardScaler().fit(x2)
    ref = LogisticRegression(C=0.05, max_iter=5000).fit(sc.transform(x2), y2)
    logits = head.logits(x2)
    np.testing.assert_allclose(logits[:, 1] - logits[:, 0], ref.decision_function(sc.transform(x2)),
                               rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("classes", [None, (3, 8)])
def test_float32_cross_validation_matches_logistic_regression_cv(digits, classes):
    """Many rows (the float32 path): each C's mean fold accuracy is scikit-learn's
    LogisticRegressionCV's on the same folds and standardisation, and so is the C chosen."""
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import StratifiedKFold
    x, y, _, _ = digits
    x = x + np.random.default_rng(2).normal(0, 4, x.shape).astype(np.float32)  # not separable
    if classes:
        keep = np.isin(y, classes)
        x, y = x[keep], (y[keep] == classes[1]).astype(int)
    grid = [0.0003, 0.003, 0.03, 0.3]
    head = linear_head.train(x, y, 10, grid, folds=4, seed=3)
    ref = LogisticRegressionCV(Cs=grid, cv=StratifiedKFold(4, shuffle=True, random_state=3),
                               scoring="accuracy", max_iter=5000)
    ref.fit(StandardScaler().fit_transform(x), y)
    expected = np.asarray(next(iter(ref.scores_.values()))).mean(axis=0)
    got = np.array([a for _, a in head.cv_curve])
    assert np.abs(got - expected).max() < 0.01, (got, expected)
    assert head.c == ref.C_[0] and head.cv_rows == len(y)
    assert len(set(np.round(expected, 3))) > 1  # the grid's Cs do differ here
