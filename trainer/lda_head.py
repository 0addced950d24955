"""Phase 1's other head: linear discriminant analysis with Ledoit-Wolf shrinkage.

A class-conditional Gaussian model with one shared covariance, shrunk towards a
scaled identity by the analytic Ledoit-Wolf intensity: no hyper-parameter to choose,
so no C grid. It errs differently from the logistic head, which is why averaging the
two per view helps an ensemble (measured: README, bench/results/). It is still a
linear model - logits = x @ kernel + bias - so it folds into the same Dense layer the
logistic head uses, and serving sees no difference.

The model is scikit-learn's ``LinearDiscriminantAnalysis(solver="lsqr",
shrinkage="auto")`` on standardised features (tests/test_lda_head.py checks the two
agree). Why not call it: it standardises a float64 copy of every class's rows and
builds the covariance from them in one piece, so its memory grows with the rows; here
every statistic is summed a chunk of rows at a time, and beyond the features
themselves the fit holds a few [features, features] float64 matrices at most.
"""
from __future__ import annotations

import numpy as np

from graft.trainer import linear_head

_CHUNK = 4096  # rows per step: bounds the temporaries


def _one_hot(y: np.ndarray, k: int) -> np.ndarray:
    """[k, rows]: a matrix product with it sums rows per class (np.add.at is unbuffered:
    many times slower on a chunk of wide rows)."""
    out = np.zeros((k, len(y)))
    out[y, np.arange(len(y))] = 1.0
    return out


def _class_statistics(features: np.ndarray, y: np.ndarray, rows: np.ndarray, k: int):
    """Per class: (row count, mean, scale) over ``rows``, in float64, a chunk at a time.

    A feature that does not vary within a class (a ReLU6 feature that is 0 for every
    image of it, common in EfficientNet's vectors) has no scale of its own
    there; it takes the feature's scale over all the rows - what scikit-learn does when
    the features are standardised first (StandardScaler, then LDA), which makes the head
    independent of the features' units (left at 1 in raw units, that feature's share of
    the shrinkage target would depend on them)."""
    d = features.shape[1]
    counts = np.bincount(y[rows], minlength=k).astype(np.float64)
    sums = np.zeros((k, d))
    for i in range(0, len(rows), _CHUNK):
        idx = rows[i:i + _CHUNK]
        sums += _one_hot(y[idx], k) @ features[idx].astype(np.float64)
    means = sums / np.maximum(counts, 1)[:, None]
    sq = np.zeros((k, d))
    for i in range(0, len(rows), _CHUNK):
        idx = rows[i:i + _CHUNK]
        diff = features[idx] - means[y[idx]]
        sq += _one_hot(y[idx], k) @ (diff * diff)
    scales = np.sqrt(sq / np.maximum(counts, 1)[:, None])
    # Over all rows: total spread = within-class + between-class (no further pass).
    n = counts.sum()
    overall_mean = sums.sum(axis=0) / n
    overall = np.sqrt((sq.sum(axis=0) + counts @ np.square(means - overall_mean)) / n)
    # linear_head's rule for a feature constant overall (or float noise): left unscaled.
    median = float(np.median(overall)) if d else 0.0
    overall[overall < max(10 * np.finfo(np.float64).eps, 1e-5 * median)] = 1.0
    for c in range(k):
        relative = scales[c] / overall  # scikit-learn's zero test is on standardised rows
        med = float(np.median(relative)) if d else 0.0
        flat = relative < max(10 * np.finfo(np.float64).eps, 1e-5 * med)
        scales[c][flat] = overall[flat]
    return counts, means, scales


def _standardised(features, members, mean, scale):
    """A class's rows, standardised (float64), a chunk at a time."""
    for i in range(0, len(members), _CHUNK):
        yield (features[members[i:i + _CHUNK]] - mean) / scale


def _shrinkage(norms: np.ndarray, frob: float, d: int):
    """(shrinkage, mu) as scikit-learn's ledoit_wolf computes them on standardised rows Z,
    from ||z||^2 per row and ||Z'Z / n||_F^2."""
    n = float(len(norms))
    trace = float(norms.sum()) / n
    mu = trace / d
    if d == 1:
        return 0.0, mu
    beta = (float(np.square(norms).sum()) / n - frob) / (d * n)
    delta = (frob - 2.0 * mu * trace + d * mu * mu) / d
    beta = min(beta, delta)
    return (0.0 if beta == 0 else beta / delta), mu


def _shared_covariance(features, y, rows, counts, means, scales) -> np.ndarray:
    """sum over classes of prior x the class's Ledoit-Wolf covariance, each estimated on
    its own standardised rows Z and scaled back (scikit-learn's _class_cov with
    shrinkage="auto"): (1 - shrinkage) x the scatter of its centred rows / n, plus
    shrinkage x mu x scale^2 on the diagonal.

    Ledoit-Wolf needs ||Z'Z / n||_F^2. A class with fewer rows than features (a few
    hundred images, thousands of features) gets it from its [n, n] Gram matrix, far
    cheaper, and its rows' scatter is then summed with the other such classes' in one
    pass, each row weighted by its class. A larger class sums its [d, d] scatter once,
    chunk by chunk, and adds it to the total itself."""
    d = features.shape[1]
    order = rows[np.argsort(y[rows], kind="stable")]
    starts = np.concatenate([[0], np.cumsum(counts.astype(np.int64))])
    n_all = float(counts.sum())
    total = np.zeros((d, d))
    row_weight = np.zeros(len(counts))   # small classes: prior x (1 - shrinkage) / n
    for c in np.flatnonzero(counts):
        members = order[starts[c]:starts[c + 1]]
        n = float(len(members))
        prior = n / n_all
        if len(members) <= d:
            z = np.concatenate(list(_standardised(features, members, means[c], scales[c])))
            gram = z @ z.T
            del z
            shrinkage, mu = _shrinkage(np.diag(gram).copy(),
                                       float(np.einsum("ij,ij->", gram, gram)) / (n * n), d)
            del gram
            row_weight[c] = prior * (1.0 - shrinkage) / n
        else:
            scatter = np.zeros((d, d))
            norms = []
            for z in _standardised(features, members, means[c], scales[c]):
                scatter += z.T @ z
                norms.append(np.einsum("ij,ij->i", z, z))
            shrinkage, mu = _shrinkage(np.concatenate(norms),
                                       float(np.einsum("ij,ij->", scatter, scatter)) / (n * n),
                                       d)
            # Scaled back: D (Z'Z) D is the scatter of the centred rows.
            scatter *= scales[c][:, None]
            scatter *= scales[c][None, :]
            total += (prior * (1.0 - shrinkage) / n) * scatter
            del scatter
        total.flat[::d + 1] += prior * shrinkage * mu * np.square(scales[c])
    small = rows[row_weight[y[rows]] > 0]
    for i in range(0, len(small), _CHUNK):
        idx = small[i:i + _CHUNK]
        xc = (features[idx] - means[y[idx]]) * np.sqrt(row_weight[y[idx]])[:, None]
        total += xc.T @ xc
    return total


def _fit_rows(features: np.ndarray, y: np.ndarray, rows: np.ndarray, k: int):
    """(coef [present classes, d], intercept, the present classes) of the model fit on
    ``rows``."""
    import scipy.linalg
    counts, means, scales = _class_statistics(features, y, rows, k)
    present = np.flatnonzero(counts)
    cov = _shared_covariance(features, y, rows, counts, means, scales)
    m = means[present]
    try:  # shrunk, the covariance is positive definite: Cholesky is the fast exact solve
        coef = scipy.linalg.cho_solve(scipy.linalg.cho_factor(cov, overwrite_a=True),
                                      m.T).T
    except (np.linalg.LinAlgError, scipy.linalg.LinAlgError):
        # Singular (e.g. one image per class: no within-class spread at all): the
        # least-squares solution, as scikit-learn's lsqr solver takes.
        cov = _shared_covariance(features, y, rows, counts, means, scales)
        coef = scipy.linalg.lstsq(cov, m.T)[0].T
    priors = counts[present] / counts.sum()
    intercept = -0.5 * np.einsum("ij,ij->i", m, coef) + np.log(priors)
    return coef, intercept, present


def _head(coef, intercept, present, num_classes: int, **facts) -> linear_head.LinearHead:
    kernel = np.zeros((coef.shape[1], num_classes), np.float32)
    bias = np.full(num_classes, float(intercept.min()) - linear_head.ABSENT_CLASS_MARGIN,
                   np.float32)
    kernel[:, present], bias[present] = coef.T, intercept
    return linear_head.LinearHead(kernel, bias, kind="lda", converged=True, **facts)


def fit(features: np.ndarray, labels: np.ndarray, num_classes: int) -> linear_head.LinearHead:
    """The model on all the given rows (labels are class indices < num_classes)."""
    y = np.asarray(labels, np.int64)
    if len(np.unique(y)) < 2:
        raise ValueError("the head needs images of at least two classes to train on")
    coef, intercept, present = _fit_rows(features, y, np.arange(len(y)), num_classes)
    return _head(coef, intercept, present, num_classes, c=0.0, cv_folds=0, cv_accuracy=None)


def train(features: np.ndarray, labels: np.ndarray, num_classes: int, folds: int, seed: int,
          cv_max_rows: int = 0) -> linear_head.LinearHead:
    """fit on everything, with its k-fold cross-validated accuracy on the same stratified
    folds linear_head.train uses (on a stratified subsample of ``cv_max_rows`` when there
    are more rows): nothing is chosen by it here, but the report shows it and
    ``combine = "auto"`` compares it."""
    from sklearn.model_selection import StratifiedKFold
    y = np.asarray(labels, np.int64)
    head = fit(features, y, num_classes)
    k = int(min(folds, np.unique(y, return_counts=True)[1].min()))
    if k < 2:
        return head
    rows = np.arange(len(y))
    if cv_max_rows and len(y) > cv_max_rows:
        rows = linear_head.subsample(y, cv_max_rows, seed)
    accs = []
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    for tr, te in splitter.split(np.zeros((len(rows), 1)), y[rows]):
        coef, intercept, present = _fit_rows(features, y, rows[tr], num_classes)
        z = features[rows[te]] @ coef.T + intercept
        accs.append(float(np.mean(present[z.argmax(axis=1)] == y[rows[te]])))
    head.cv_folds, head.cv_accuracy, head.cv_rows = k, float(np.mean(accs)), len(rows)
    return head
