"""Phase 1's head: L2-regularised multinomial logistic regression on frozen features.

The features of every training image are computed once (the backbone is
frozen), so the head is a convex problem on a few hundred to a few thousand
vectors. We solve it exactly (scikit-learn, L-BFGS) on standardised features,
with the L2 strength C chosen by stratified k-fold cross-validation over a
grid - the standard linear-probe protocol - instead of training a dense layer
by SGD with early stopping on a small validation slice. Why: it is
deterministic, needs no validation slice (every training image is used), and
it measured better than the SGD head on the same features (the figures are in
the README and bench/results/, where they are re-measured).

The fitted model is folded into one Dense layer's kernel and bias
(standardisation included), so the exported graph is the same plain
MatMul + BiasAdd that phase 2 fine-tunes and TF Serving runs.
"""
from __future__ import annotations

import dataclasses
import types
import warnings
from typing import List, Optional, Sequence

import numpy as np

# A class absent from the training features can never be predicted: its bias sits this far
# below the lowest fitted bias (its kernel column is zero).
ABSENT_CLASS_MARGIN = 30.0
_MAX_ITER = 2000


@dataclasses.dataclass
class LinearHead:
    kernel: np.ndarray            # [features, classes], float32, standardisation folded in
    bias: np.ndarray              # [classes], float32
    c: float                      # inverse L2 strength used for the fit
    cv_folds: int                 # 0 when the data was too small to cross-validate
    cv_accuracy: Optional[float]  # mean held-out-fold accuracy at the chosen C
    converged: bool
    cv_rows: int = 0              # rows C was chosen on (all, or a stratified subsample)
    cv_curve: List[List[float]] = dataclasses.field(default_factory=list)  # [[C, mean acc]]
    kind: str = "logistic"        # or "lda" (lda_head.py): the same Dense layer either way

    def logits(self, features: np.ndarray) -> np.ndarray:
        return features @ self.kernel + self.bias


def _fold(scaler, lr, num_classes: int):
    """(kernel, bias) of one Dense layer from a scikit-learn fit on standardised features."""
    coef, intercept = lr.coef_, lr.intercept_
    if coef.shape[0] == 1:  # two classes: sklearn returns the log-odds of the second
        coef = np.concatenate([-coef / 2, coef / 2])
        intercept = np.concatenate([-intercept / 2, intercept / 2])
    # x_std = (x - mean) / scale  =>  x_std @ W + b = x @ (W / scale) + (b - (mean / scale) @ W)
    w = (coef / scaler.scale_).T                                   # [features, present]
    b = intercept - (scaler.mean_ / scaler.scale_) @ coef.T        # [present]
    kernel = np.zeros((w.shape[0], num_classes), np.float32)
    bias = np.full(num_classes, float(b.min()) - ABSENT_CLASS_MARGIN, np.float32)
    cols: List[int] = [int(k) for k in lr.classes_]
    kernel[:, cols], bias[cols] = w, b
    return kernel, bias


@dataclasses.dataclass
class _Standardiser:
    """Per-feature mean and scale, as sklearn's StandardScaler has them (mean_, scale_)."""
    mean_: np.ndarray
    scale_: np.ndarray


_CHUNK = 4096  # rows per step while standardising: bounds the temporaries


def _statistics(features: np.ndarray) -> _Standardiser:
    """Per-feature mean and scale (float64), in row chunks: no full-size temporary."""
    n = len(features)
    total = np.zeros(features.shape[1], np.float64)
    for i in range(0, n, _CHUNK):
        total += features[i:i + _CHUNK].sum(axis=0, dtype=np.float64)
    mean = total / n
    sq = np.zeros(features.shape[1], np.float64)
    for i in range(0, n, _CHUNK):
        block = features[i:i + _CHUNK] - mean  # float64, one chunk
        sq += np.einsum("ij,ij->j", block, block)
    scale = np.sqrt(sq / n)
    # sklearn's _handle_zeros_in_scale: a constant feature is left unscaled. Constant here
    # also means a spread below float32's resolution of the typical one (all-MiniLM-L6-v2
    # has a feature whose spread is 4.7e-9 against a median 0.04): standardising it blows
    # float noise up to unit variance, and its folded kernel weight (coef / scale) up by
    # 1e8 - phase 2 then moves that feature a little and the logits by thousands.
    median = float(np.median(scale)) if scale.size else 0.0
    scale[scale < max(10 * np.finfo(np.float64).eps, 1e-5 * median)] = 1.0
    return _Standardiser(mean, scale)


def _standardise(features: np.ndarray) -> "tuple[_Standardiser, np.ndarray]":
    """(mean/scale, the standardised float64 matrix scikit-learn's L-BFGS needs), in row
    chunks into one preallocated array. Why not StandardScaler: fit + transform +
    L-BFGS's float64 made about three full-size copies (measured 3.2x the float32 features
    at their peak); this makes one. Used for cross-validation, on at most cv_max_rows."""
    scaler = _statistics(features)
    out = np.empty(features.shape, np.float64)
    for i in range(0, len(features), _CHUNK):
        out[i:i + _CHUNK] = (features[i:i + _CHUNK] - scaler.mean_) / scaler.scale_
    return scaler, out


def _solve(estimator, features: np.ndarray, labels: np.ndarray):
    """Fits a scikit-learn estimator on standardised features; (scaler, converged).

    Standardised once on all the data (also under cross-validation): the
    per-feature mean and scale leak nothing about labels."""
    from sklearn.exceptions import ConvergenceWarning

    _, counts = np.unique(labels, return_counts=True)
    if len(counts) < 2:
        raise ValueError("the head needs images of at least two classes to train on")
    scaler, x = _standardise(features)
    x, basis = _row_space(x)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        estimator.fit(x, labels)
    del x
    if basis is not None:  # back to one weight per feature
        estimator.coef_ = estimator.coef_ @ basis
    return scaler, not any(issubclass(w.category, ConvergenceWarning) for w in caught)


_ROW_SPACE_BELOW = 0.75  # rows per feature under which the head is solved in the row space


def _row_space(x: np.ndarray):
    """(coordinates, basis): x in an orthonormal basis of its row space when it has
    clearly fewer rows than columns (a few hundred images, 1 000s of features), else
    (x, None). Exact, not an approximation: an L2-regularised linear model's weights lie
    in the span of its training rows (the loss's gradient is X^T g, the penalty's is w/C),
    and every CV fold's rows are a subset of these; a rotation changes neither the
    predictions nor ||w||, so the optimum is the same (L-BFGS's stopping test reads the
    largest gradient component, which a rotation changes, so where it stops within its
    tolerance can differ slightly). Each step then multiplies by [n, n] instead of
    [n, d]: the demo's cross-validation (1 088 x 2 704) measured 1.7x faster, SVD
    included, and an ensemble's wider vectors gain more."""
    n, d = x.shape
    if n >= _ROW_SPACE_BELOW * d:
        return x, None
    u, s, vt = np.linalg.svd(x, full_matrices=False)
    keep = s > s[0] * max(n, d) * np.finfo(x.dtype).eps  # numerical rank, as matrix_rank
    return u[:, keep] * s[keep], vt[keep]


_ROWS = 8192  # rows per step of _lbfgs's passes: bounds its temporaries


def _log_loss(x: np.ndarray, y: np.ndarray, w: np.ndarray, b: np.ndarray, binary: bool,
              mean: np.ndarray, inv: np.ndarray):
    """(summed multinomial log loss, its gradient for w and b) over the standardised rows
    of x, standardised chunk by chunk (float32; the sums in float64). ``binary``: one
    column of logits against a fixed zero (scikit-learn's binomial model for two
    classes). Why not fold the standardisation into w and b instead of a pass per chunk:
    a nearly constant feature (scale 1e-6) made the folded terms cancel in float32.
    ``mean`` and ``inv`` (1 / scale) are float32, or None for rows standardised already."""
    loss = 0.0
    grad_w = np.zeros(w.shape, np.float64)
    grad_b = np.zeros(b.shape, np.float64)
    for i in range(0, len(x), _ROWS):
        if mean is None:  # the rows are standardised already
            xb = x[i:i + _ROWS]
        else:
            xb = x[i:i + _ROWS] - mean
            xb *= inv  # in place: one chunk-sized temporary, not two
        yb = y[i:i + _ROWS]
        z = xb @ w + b
        if binary:
            z = np.concatenate([np.zeros_like(z), z], axis=1)
        z -= z.max(axis=1, keepdims=True)
        lse = np.log(np.exp(z).sum(axis=1, keepdims=True))
        rows = np.arange(len(yb))
        loss += float((lse[:, 0] - z[rows, yb]).sum(dtype=np.float64))
        p = np.exp(z - lse)
        p[rows, yb] -= 1.0
        if binary:
            p = p[:, 1:]
        grad_w += xb.T @ p
        grad_b += p.sum(axis=0, dtype=np.float64)
    return loss, grad_w, grad_b


def _lbfgs(x: np.ndarray, y: np.ndarray, k: int, c: float, scaler: Optional[_Standardiser],
           start: Optional[np.ndarray] = None):
    """(coef [k or 1, d], intercept, converged, the solution as one vector - a warm
    ``start`` for the next C on a path) on the standardised features: scikit-learn's
    L-BFGS logistic regression - mean log loss + ||W||^2 / (2 C n), the intercept not
    penalised, its gtol and ftol, binomial for two classes - computed from the raw float32
    rows, standardised a chunk at a time (no standardised copy; ``scaler`` None: the rows
    are standardised already). Why not scikit-learn's
    own solver: it copies the features to float64 first (1.3 GB for 60 000 2 704-d
    vectors, the Trainer's whole peak)."""
    from scipy.optimize import minimize
    n, d = x.shape
    binary = k == 2
    cols = 1 if binary else k
    l2 = 1.0 / (c * n)
    mean = inv = None
    if scaler is not None:
        mean, inv = scaler.mean_.astype(np.float32), (1.0 / scaler.scale_).astype(np.float32)

    def f(theta):
        w = theta[:d * cols].reshape(d, cols)
        b = theta[d * cols:]
        loss, gw, gb = _log_loss(x, y, w.astype(np.float32), b.astype(np.float32), binary,
                                 mean, inv)
        value = loss / n + 0.5 * l2 * float(w.ravel() @ w.ravel())
        return value, np.concatenate([(gw / n + l2 * w).ravel(), gb / n])

    # Started from W = 0 and the intercept that is optimal there (the classes' log
    # frequencies, centred as scikit-learn's symmetric parametrisation keeps them), not
    # from zero: with a strong penalty the weights' curvature dwarfs the intercept's, and
    # from zero L-BFGS stopped on float32-sized decreases before the intercept had moved.
    if start is None:
        prior = np.log(np.bincount(y, minlength=k) + 1e-12)
        start = np.zeros(d * cols + cols)
        start[d * cols:] = prior[1:] - prior[:1] if binary else prior - prior.mean()
    res = minimize(f, start, jac=True, method="L-BFGS-B",
                   options={"maxiter": _MAX_ITER, "maxls": 50, "gtol": 1e-4,
                            "ftol": 64 * np.finfo(float).eps})
    return (res.x[:d * cols].reshape(d, cols).T, res.x[d * cols:],
            bool(res.success) and res.nit < _MAX_ITER, res.x)


def _cv_scores(x: np.ndarray, y: np.ndarray, k: int, grid: Sequence[float], splitter,
               scaler: _Standardiser) -> np.ndarray:
    """[folds, len(grid)] held-out accuracy: what LogisticRegressionCV computes - per
    fold, the C path in grid order, each fit warm-started from the previous C's - with
    _lbfgs on float32 rows. Why not LogisticRegressionCV here: it standardises into a
    float64 copy and copies each fold again (about 0.8 GB on a 10 000 x 2 704 subsample,
    the Trainer's peak at 60 000 images). Here the rows are standardised once into one
    float32 copy (every fold and C then reads it as it is; standardising per step made
    the cross-validation 1.8x slower, measured on 6 000 x 2 704), and a fold copies its
    training rows."""
    mean, inv = scaler.mean_.astype(np.float32), (1.0 / scaler.scale_).astype(np.float32)
    xs = np.empty(x.shape, np.float32)
    for i in range(0, len(x), _ROWS):
        np.subtract(x[i:i + _ROWS], mean, out=xs[i:i + _ROWS])
        np.multiply(xs[i:i + _ROWS], inv, out=xs[i:i + _ROWS])
    folds = list(splitter.split(np.zeros((len(y), 1)), y))
    scores = np.zeros((len(folds), len(grid)))
    for f, (tr, te) in enumerate(folds):
        x_tr, y_tr = xs[tr], y[tr]
        start = None
        for j, c in enumerate(grid):
            coef, intercept, _, start = _lbfgs(x_tr, y_tr, k, c, None, start)
            z = xs[te] @ coef.T.astype(np.float32) + intercept
            pred = (z[:, 0] > 0).astype(np.int64) if k == 2 else z.argmax(axis=1)
            scores[f, j] = float((pred == y[te]).mean())
        del x_tr
    return scores


def fit(features: np.ndarray, labels: np.ndarray, num_classes: int, c: float,
        scaler: Optional[_Standardiser] = None) -> LinearHead:
    """Fits on all the given features at strength C: scikit-learn's model and stopping
    rule (_lbfgs), on the float32 rows as they are (standardised chunk by chunk: no copy).
    ``scaler``: these features' statistics, when the caller already has them."""
    classes, y = np.unique(labels, return_inverse=True)
    if len(classes) < 2:
        raise ValueError("the head needs images of at least two classes to train on")
    scaler = scaler or _statistics(features)
    coef, intercept, converged, _ = _lbfgs(features, y.astype(np.int64), len(classes), c,
                                           scaler)
    lr = types.SimpleNamespace(coef_=coef, intercept_=intercept, classes_=classes)
    kernel, bias = _fold(scaler, lr, num_classes)
    return LinearHead(kernel, bias, c=float(c), cv_folds=0, cv_accuracy=None,
                      converged=converged)


def subsample(labels: np.ndarray, rows: int, seed: int) -> np.ndarray:
    """Indices of a stratified random subsample of ``rows`` rows (every class kept)."""
    from sklearn.model_selection import train_test_split
    idx, _ = train_test_split(np.arange(len(labels)), train_size=rows, stratify=labels,
                              random_state=seed)
    return np.sort(idx)


def train(features: np.ndarray, labels: np.ndarray, num_classes: int, grid: Sequence[float],
          folds: int, seed: int, cv_max_rows: int = 0) -> LinearHead:
    """C chosen from the grid by stratified k-fold accuracy (ties: the smaller C),
    then the fit on everything given. With fewer than 2 images in some class there
    is nothing to cross-validate: the grid's middle value is used.

    With more than ``cv_max_rows`` rows (0: no limit), C is chosen on a stratified
    subsample of that many and the model is then fit once on all rows: k folds x the
    grid on every row would cost k x len(grid) full fits. sklearn's C multiplies the
    summed loss, so the same C regularises each row less on the larger set, as it should."""
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import StratifiedKFold

    grid = sorted(float(c) for c in grid)
    k = int(min(folds, np.unique(labels, return_counts=True)[1].min()))
    if len(grid) == 1 or k < 2:
        return fit(features, labels, num_classes, grid[len(grid) // 2])
    sub = cv_max_rows and len(labels) > cv_max_rows
    cv_x, cv_y = features, labels
    if sub:
        idx = subsample(labels, cv_max_rows, seed)
        cv_x, cv_y = features[idx], labels[idx]
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    if len(cv_y) >= _ROW_SPACE_BELOW * cv_x.shape[1]:
        # Many rows: each fold's C path on the float32 rows (_cv_scores), the same folds
        # and the same choice of C as below, then one fit on all the rows given.
        classes, y = np.unique(cv_y, return_inverse=True)
        cv_stats = _statistics(cv_x)
        mean_scores = _cv_scores(cv_x, y.astype(np.int64), len(classes), grid, splitter,
                                 cv_stats).mean(axis=0)
        best = int(np.argmax(mean_scores))  # the first best: the smallest C
        curve = [[float(g), float(a)] for g, a in zip(grid, mean_scores)]
        del cv_x, cv_y
        # Without a subsample the CV's rows are all the rows: their statistics serve again.
        head = fit(features, labels, num_classes, grid[best], None if sub else cv_stats)
        return dataclasses.replace(head, cv_folds=k, cv_accuracy=float(mean_scores[best]),
                                   cv_rows=cv_max_rows if sub else len(labels), cv_curve=curve)
    # Few rows (then _solve works in their row space): LogisticRegressionCV, which
    # warm-starts along the C path (about 3x faster than separate fits) and refits on all
    # the data it was given at the best C.
    lr = LogisticRegressionCV(Cs=grid, cv=splitter, scoring="accuracy", max_iter=_MAX_ITER,
                              refit=not sub)
    scaler, converged = _solve(lr, cv_x, cv_y)
    # Mean fold accuracy per C; the first best is the smallest C (the grid is sorted), as
    # sklearn's refit picks it. Without refit sklearn averages the folds' best Cs instead.
    mean_scores = np.asarray(next(iter(lr.scores_.values()))).mean(axis=0)  # [len(grid)]
    best = int(np.argmax(mean_scores))
    c, accuracy = grid[best], float(mean_scores[best])
    curve = [[float(g), float(a)] for g, a in zip(grid, mean_scores)]
    if sub:
        del cv_x, cv_y
        head = fit(features, labels, num_classes, c)
        return dataclasses.replace(head, cv_folds=k, cv_accuracy=accuracy, cv_rows=cv_max_rows,
                                   cv_curve=curve)
    kernel, bias = _fold(scaler, lr, num_classes)
    return LinearHead(kernel, bias, c=c, cv_folds=k, cv_accuracy=accuracy, converged=converged,
                      cv_rows=len(labels), cv_curve=curve)
