"""The losses (smjac.maths.losses): torch's cross-entropy in full, and a one-output W read as binary
logistic regression. Against formulas written here by hand, central differences of the loss,
scikit-learn's documented predict_proba and, where installed, torch itself."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from numpy.testing import assert_allclose, assert_array_equal
from typer.testing import CliRunner

import smjac
from smjac.cli import app
from smjac.maths import CrossEntropy

from .conftest import BLOG_W, BLOG_X, ROOT
from .test_fuzz import magnitudes

ENV = {"COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
BATCH = ["-W", str(ROOT / "samples/batch/W.json"), "-x", str(ROOT / "samples/batch/X.json")]
BATCH_X = np.array([[0.1, 0.5, 0.4], [1.0, 0.0, -1.0], [0.3, 0.3, 0.3], [-0.2, 0.9, 0.1]])
BINARY = ["-W", str(ROOT / "samples/binary/coef.json"), "-b", str(ROOT / "samples/binary/intercept.json")]
BINARY += ["-x", str(ROOT / "samples/binary/X.json"), "--layout", "out-in"]
BINARY_NOTE = (
    "note: W has one output: read as binary logistic regression (two classes, p = [1 − σ(z), σ(z)]) "
    "as scikit-learn stores it"
)


def run(*args: str, input: str | None = None):
    return CliRunner().invoke(app, list(args), input=input, env=ENV)


# ---------------------------------------------------------------- references, written here


def by_hand(W, X, b, y, *, T=1.0, w=None, ignore=None, eps=0.0, reduce="mean"):
    """torch's CrossEntropyLoss, a sample at a time: q = (1 − ε) w_y e_y + (ε/K) w, ℓ = −Σ q log p,
    dℓ/dz = (Σq · p − q)/T; a mean divides by Σ w_y over the samples not ignored."""
    Z = (X @ W + (0 if b is None else b)) / T
    N, K = Z.shape
    w = np.ones(K) if w is None else np.asarray(w, float)
    G, loss, den = np.zeros((N, K)), 0.0, 0.0
    for s in range(N):
        if ignore is not None and y[s] == ignore:
            continue
        logp = Z[s] - Z[s].max()
        logp = logp - np.log(np.sum(np.exp(logp)))
        q = eps / K * w
        q[y[s]] += (1 - eps) * w[y[s]]
        loss -= np.sum(q * logp)
        G[s] = (q.sum() * np.exp(logp) - q) / T
        den += w[y[s]]
    if reduce == "mean":
        loss, G = loss / den, G / den
    return X.T @ G, G.sum(axis=0), loss


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def options(rng, K, y):
    """The cross-entropy's options, each on or off, as smjac and the reference take them."""
    out = {}
    if rng.random() < 0.6:
        out["class_weights"] = rng.uniform(0.1, 3.0, size=K)
    if rng.random() < 0.5:
        out["ignore_index"] = int(rng.choice([-100, 0, K - 1]))
        y[rng.random(y.size) < 0.3] = out["ignore_index"]
    if rng.random() < 0.6:
        out["label_smoothing"] = float(rng.choice([0.1, 0.5, 1.0]))
    return out


def reference(W, X, b, y, T, opts, reduce):
    return by_hand(
        W, X, b, y, T=T, w=opts.get("class_weights"), ignore=opts.get("ignore_index"),
        eps=opts.get("label_smoothing", 0.0), reduce=reduce,
    )  # fmt: skip


# ---------------------------------------------------------------- cross-entropy, every option


@pytest.mark.parametrize("trial", range(40))
def test_cross_entropy_with_its_options_is_the_formula_by_hand(trial):
    rng = np.random.default_rng(trial)
    N, n, K = rng.integers(1, 7), rng.integers(1, 5), rng.integers(2, 6)
    W, X, b = rng.normal(size=(n, K)), rng.normal(size=(N, n)), rng.normal(size=K)
    y = rng.integers(0, K, size=N)
    opts = options(rng, K, y)
    T = float(rng.choice([1.0, 0.4, 3.0]))
    layout = "in-out" if trial % 2 else "out-in"
    function = "softmax" if trial % 3 else "log-softmax"  # the cross-entropy of the logits either way
    for reduce in ("mean", "sum"):
        if reduce == "mean" and "ignore_index" in opts and np.all(y == opts["ignore_index"]):
            with pytest.raises(smjac.InputError, match="no sample counts"):
                smjac.grad(W, X, b, target=y, **opts)
            continue
        gW, gb, loss = reference(W, X, b, y, T, opts, reduce)
        Wl = W if layout == "in-out" else W.T
        g = smjac.grad(
            Wl, X, b, target=y, reduce=reduce, temperature=T, layout=layout, function=function, **opts
        )
        assert_allclose(g.W, gW if layout == "in-out" else gW.T, rtol=1e-12, atol=1e-15)
        assert_allclose(g.b, gb, rtol=1e-12, atol=1e-15)
        assert g.loss == pytest.approx(loss, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("reduce", ["mean", "sum"])
def test_cross_entropy_gradient_is_the_central_difference_of_its_loss(rng, reduce):
    W, X, b = rng.normal(size=(3, 4)), rng.normal(size=(6, 3)), rng.normal(size=4)
    y = np.array([0, 3, -1, 2, 1, -1])
    opts = {"class_weights": [0.5, 2.0, 1.0, 3.0], "ignore_index": -1, "label_smoothing": 0.2}
    g = smjac.grad(W, X, b, target=y, reduce=reduce, temperature=0.7, **opts)

    def loss(flat):
        Wf, bf = flat[:12].reshape(3, 4), flat[12:]
        return by_hand(Wf, X, bf, y, T=0.7, w=opts["class_weights"], ignore=-1, eps=0.2, reduce=reduce)[2]

    flat = np.concatenate([W.ravel(), b])
    eps = 1e-5
    fd = np.array([(loss(flat + e) - loss(flat - e)) / (2 * eps) for e in np.eye(flat.size) * eps])
    assert_allclose(np.concatenate([g.W.ravel(), g.b]), fd, atol=1e-9)


def test_an_ignored_sample_counts_for_nothing(rng):
    W, X = rng.normal(size=(3, 4)), rng.normal(size=(5, 3))
    y = np.array([1, -100, 2, -100, 0])
    g = smjac.grad(W, X, target=y, ignore_index=-100)
    kept = smjac.grad(W, X[y != -100], target=y[y != -100])  # the mean is over the other three
    assert_allclose(g.W, kept.W, rtol=1e-14)
    assert g.loss == pytest.approx(kept.loss, rel=1e-14)
    assert_array_equal(g.z[y == -100], 0.0)
    # an index in range is ignored too, as torch does
    assert_allclose(
        smjac.grad(W, X[:3], target=[1, 0, 2], ignore_index=0).W, smjac.grad(W, X[[0, 2]], target=[1, 2]).W
    )


def test_class_weights_divide_the_mean_by_the_targets_weights(rng):
    W, X = rng.normal(size=(3, 4)), rng.normal(size=(3, 3))
    w, y = np.array([1.0, 2.0, 3.0, 4.0]), np.array([3, 1, 1])
    g = smjac.grad(W, X, target=y, class_weights=w)
    each = [smjac.grad(W, X[s], target=y[s]) for s in range(3)]
    assert_allclose(g.W, sum(w[y[s]] * each[s].W for s in range(3)) / (4 + 2 + 2), rtol=1e-14)
    assert g.loss == pytest.approx(sum(w[y[s]] * each[s].loss for s in range(3)) / 8, rel=1e-14)
    # one sample: its weight cancels in the mean, not in the sum
    assert_allclose(smjac.grad(W, X[0], target=3, class_weights=w).W, each[0].W, rtol=1e-14)
    assert_allclose(smjac.grad(W, X[0], target=3, class_weights=w, reduce="sum").W, 4 * each[0].W, rtol=1e-14)


def test_plain_options_keep_the_plain_bits(rng):
    # an ignore_index no target takes is the plain cross-entropy, by the same path: the same bits
    W, X = rng.normal(size=(30, 20)), rng.normal(size=(50, 30))
    y = rng.integers(0, 20, size=50)
    plain = smjac.grad(W, X, target=y)
    same = smjac.grad(W, X, target=y, ignore_index=-100)
    assert_array_equal(same.W, plain.W)
    assert same.loss == plain.loss
    # weights of 1 and ε = 0 take the general path: equal to rounding
    assert_allclose(smjac.grad(W, X, target=y, class_weights=np.ones(20)).W, plain.W, rtol=1e-13, atol=1e-16)


def test_full_smoothing_ignores_the_target(rng):
    W, X = rng.normal(size=(3, 4)), rng.normal(size=(2, 3))
    a = smjac.grad(W, X, target=[0, 1], label_smoothing=1.0)
    b = smjac.grad(W, X, target=[3, 2], label_smoothing=1.0)
    assert_allclose(a.W, b.W, rtol=1e-14)
    assert a.loss == pytest.approx(b.loss, rel=1e-14)


def test_extreme_logits_stay_finite_and_quiet():
    W = np.array([[800.0, 0.0, -800.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g = smjac.grad(W, [1.0], target=0, class_weights=[1.0, 2.0, 0.0], label_smoothing=0.1)
    # p = [1, 0, 0]: q = 0.9 e_0 + 0.1/3 w; δ = Σq p − q
    q = np.array([0.9 + 0.1 / 3, 0.2 / 3, 0.0])
    assert_allclose(g.W[0], (q.sum() * np.array([1.0, 0.0, 0.0]) - q) / 1.0, rtol=1e-14)
    assert np.isfinite(g.loss)
    # a class of weight 0 at log p = −∞ adds nothing, not NaN; past the float range it is refused, never NaN
    far = np.array([[1e308, 0.0, -1e308]])
    assert np.isfinite(
        smjac.grad(far, [1.0], target=0, class_weights=[1.0, 1.0, 0.0], label_smoothing=0.1).loss
    )
    with pytest.raises(smjac.InputError, match="overflows"):
        smjac.grad(far, [1.0], target=0, label_smoothing=0.1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"target": -100}, r"target class -100 is out of range: K = 5.*pass ignore_index=-100"),
        (
            {"target": [-100] * 3, "ignore_index": -100},
            r"every target is ignore_index=-100: no sample counts",
        ),
        ({"target": [0, 1, 2], "class_weights": [0.0, 0.0, 0.0, 1.0, 1.0]}, r"class_weights sum to 0"),
        ({"target": 0, "class_weights": [1.0, 2.0]}, r"class_weights has 2 entries but W has K = 5 outputs"),
        (
            {"target": 0, "class_weights": [1.0, -1.0, 1.0, 1.0, 1.0]},
            r"class_weights must be finite and at least 0",
        ),
        ({"target": 0, "class_weights": [1.0, np.nan, 1.0, 1.0, 1.0]}, r"class_weights must be finite"),
        ({"target": 0, "label_smoothing": 1.5}, r"label_smoothing must be a number from 0 to 1"),
        ({"target": 0, "ignore_index": 1.5}, r"ignore_index must be a whole number"),
        (
            {"upstream": np.ones(5), "label_smoothing": 0.1},
            r"label_smoothing shape the cross-entropy of a target",
        ),
    ],
)
def test_what_cannot_be_meant_is_refused(kwargs, message):
    X = np.stack([BLOG_X] * 3)
    with pytest.raises(smjac.SmjacError, match=message):
        smjac.grad(BLOG_W, X, **kwargs)


def test_all_ignored_with_a_sum_is_zero():
    g = smjac.grad(BLOG_W, np.stack([BLOG_X] * 2), target=[-100, -100], ignore_index=-100, reduce="sum")
    assert g.loss == 0.0 and np.all(g.W == 0.0)


def test_grad_chunks_takes_the_options_over_the_whole_batch(rng):
    W, X = rng.normal(size=(3, 4)), rng.normal(size=(9, 3))
    y = np.array([0, 1, -100, 3, 2, 2, -100, 1, 0])
    opts = {"class_weights": [1.0, 2.0, 0.5, 4.0], "ignore_index": -100, "label_smoothing": 0.1}
    whole = smjac.grad(W, X, target=y, **opts)
    chunked = smjac.grad_chunks(W, X, target=y, chunk_bytes=100, **opts)  # a few rows a chunk
    assert_allclose(chunked.W, whole.W, rtol=1e-13)
    assert chunked.loss == pytest.approx(whole.loss, rel=1e-13)


def test_the_loss_classes_compose():
    # sklearn's _loss model: per-sample loss and gradient, combined by the denominator
    ce = CrossEntropy(class_weights=np.array([1.0, 3.0]), ignore_index=-1)
    S = np.log(np.array([[0.5, 0.5], [0.25, 0.75], [0.9, 0.1]]))
    t = np.array([1, 0, -1])
    assert_allclose(ce.loss(S, t), [3 * np.log(2), np.log(4), 0.0], rtol=1e-15)
    assert ce.denominator(t, "mean") == 4.0 and ce.denominator(t, "sum") == 1.0
    assert_allclose(ce.target_distribution(t, 2, np.float64), [[0, 3], [1, 0], [0, 0]])


# ---------------------------------------------------------------- against torch, where installed


def test_cross_entropy_agrees_with_torch():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(7)
    eps = np.finfo(np.float64).eps
    worst = 0.0
    for _ in range(60):
        N, n, K = rng.integers(1, 8), rng.integers(1, 5), rng.integers(2, 6)
        W, X, b = rng.normal(size=(n, K)), rng.normal(size=(N, n)), rng.normal(size=K)  # moderate logits
        y = rng.integers(0, K, size=N)
        opts = options(rng, K, y)
        kw = {k: v for k, v in opts.items() if k != "class_weights"}
        if "class_weights" in opts:
            kw["weight"] = torch.tensor(opts["class_weights"])
        T = float(rng.choice([1.0, 0.5, 2.0]))
        for reduce in ("mean", "sum"):
            if reduce == "mean" and "ignore_index" in opts and np.all(y == opts["ignore_index"]):
                continue
            tW = torch.tensor(W, requires_grad=True)
            tb = torch.tensor(b, requires_grad=True)
            loss = F.cross_entropy((torch.tensor(X) @ tW + tb) / T, torch.tensor(y), reduction=reduce, **kw)
            loss.backward()
            g = smjac.grad(W, X, b, target=y, reduce=reduce, temperature=T, **opts)
            for ours, theirs in ((g.W, tW.grad.numpy()), (g.b, tb.grad.numpy()), (g.loss, loss.item())):
                size = max(float(np.max(np.abs(theirs))), 1e-300)
                worst = max(worst, float(np.max(np.abs(ours - theirs))) / (eps * size))
    assert worst <= 64, f"{worst:.1f} ulps of the largest entry"  # sums over the batch cancel a little


def test_binary_agrees_with_torchs_bce_with_logits():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(8)
    W, X, b = rng.normal(size=(4, 1)), rng.normal(size=(10, 4)), rng.normal(size=1)
    y = rng.integers(0, 2, size=10)
    tW, tb = torch.tensor(W, requires_grad=True), torch.tensor(b, requires_grad=True)
    z = (torch.tensor(X) @ tW + tb)[:, 0]
    loss = torch.nn.functional.binary_cross_entropy_with_logits(z, torch.tensor(y, dtype=torch.float64))
    loss.backward()
    g = smjac.grad(W, X, b, target=y)
    assert_allclose(g.W, tW.grad.numpy(), rtol=1e-13, atol=1e-16)
    assert_allclose(g.b, tb.grad.numpy(), rtol=1e-13, atol=1e-16)
    assert g.loss == pytest.approx(loss.item(), rel=1e-14)


# ---------------------------------------------------------------- binary logistic regression


def test_one_output_is_binary_logistic_regression(rng):
    w, X, b = rng.normal(size=3), rng.normal(size=(6, 3)), 0.3
    y = np.array([1, 0, 0, 1, 1, 0])
    z = X @ w + b
    f = smjac.forward(w[:, None], X, [b])
    assert_allclose(f.p, np.stack([1 - sigmoid(z), sigmoid(z)], axis=1), rtol=1e-14)
    assert_allclose(f.z, np.stack([np.zeros(6), z], axis=1), rtol=1e-15)
    g = smjac.grad(w[:, None], X, [b], target=y)
    assert g.W.shape == (3, 1) and g.b.shape == (1,)
    assert_allclose(g.W[:, 0], X.T @ (sigmoid(z) - y) / 6, rtol=1e-13)  # dL/dw = (σ(z) − y)·x, averaged
    assert_allclose(g.b, [np.mean(sigmoid(z) - y)], rtol=1e-13)
    bce = -np.mean(y * np.log(sigmoid(z)) + (1 - y) * np.log(1 - sigmoid(z)))
    assert g.loss == pytest.approx(bce, rel=1e-13)
    # scikit-learn's layout: coef_ is 1×n (out-in), the same numbers
    assert_allclose(smjac.grad(w[None, :], X, [b], target=y, layout="out-in").W, g.W.T, rtol=0)


def test_binary_gradient_is_the_central_difference_of_its_loss(rng):
    w, X, y = rng.normal(size=3), rng.normal(size=(5, 3)), np.array([0, 1, 1, 0, 1])
    cw = np.array([2.0, 0.5])  # class weights and smoothing too: the same cross-entropy over two classes

    def loss(v):
        return by_hand(np.stack([np.zeros(3), v], axis=1), X, None, y, w=cw, eps=0.1, T=1.5)[2]

    g = smjac.grad(w[:, None], X, target=y, class_weights=cw, label_smoothing=0.1, temperature=1.5)
    fd = np.array([(loss(w + e) - loss(w - e)) / 2e-6 for e in np.eye(3) * 1e-6])
    assert_allclose(g.W[:, 0], fd, atol=1e-9)


def test_binary_log_softmax_and_upstream(rng):
    w, x = rng.normal(size=(3, 1)), rng.normal(size=3)
    p1 = sigmoid(float(x @ w[:, 0]))
    assert_allclose(smjac.forward(w, x, function="log-softmax").h, np.log([1 - p1, p1]), rtol=1e-14)
    # an upstream has one entry per class: dL/dz = g·dp/dz = (g₁ − g₀) σ(1 − σ)
    g = smjac.grad(w, x, upstream=[0.5, 2.0])
    assert_allclose(g.W[:, 0], x * (2.0 - 0.5) * p1 * (1 - p1), rtol=1e-13)
    with pytest.raises(smjac.ShapeError, match="W has one output, read as two classes; it needs 2 entries"):
        smjac.grad(w, x, upstream=[1.0])
    with pytest.raises(smjac.InputError, match="binary logistic regression, whose classes are 0 and 1"):
        smjac.grad(w, x, target=2)


def test_binary_stays_accurate_when_the_model_is_sure():
    # σ(40) − 1 is −4.2e-18: taken without cancelling (1 − σ would round it to 0)
    g = smjac.grad([[40.0]], [1.0], target=1)
    assert g.W[0, 0] == pytest.approx(-np.exp(-40.0), rel=1e-14)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        f = smjac.forward([[1e4]], [1.0])
    assert_array_equal(f.p, [0.0, 1.0])


def test_binary_jacobian_of_h_is_refused_with_the_way_on(rng):
    w, x = rng.normal(size=(3, 1)), rng.normal(size=3)
    with pytest.raises(smjac.InputError, match=r"ambiguous.*Give W a first output of zeros.*of=\"z\""):
        smjac.jacobian(w, x)
    assert_array_equal(smjac.jacobian(w, x, of="z"), x[None, :])  # dz/dW is one thing
    # the way the message gives: the two-class layer [0 | w] has the same p and row 1 is σ's
    two = np.hstack([np.zeros((3, 1)), w])
    p1 = sigmoid(float(x @ w[:, 0]))
    assert_allclose(smjac.forward(two, x).h, [1 - p1, p1], rtol=1e-14)
    assert_allclose(smjac.jacobian(two, x, wrt="x")[1], p1 * (1 - p1) * w[:, 0], rtol=1e-13)


def test_binary_check_and_verify(rng):
    w, X, y = rng.normal(size=(3, 1)), rng.normal(size=(4, 3)), np.array([1, 0, 1, 1])
    report = smjac.check(w, X, target=y)
    assert report.ok, report
    assert report.checks[-1].name == "loss grad (binary) = finite differences"
    g = smjac.grad(w, X, target=y)
    assert smjac.verify(w, X, grad=g.W, target=y).ok
    wrong = smjac.verify(w, X, grad=-g.W, target=y)
    assert not wrong.ok and wrong.diagnosis[0].mistake == "sign"


def test_predict_proba_of_scikit_learn():
    sklearn = pytest.importorskip("sklearn.linear_model")
    rng = np.random.default_rng(3)
    X = rng.normal(size=(40, 3))
    y = (X @ [1.0, -2.0, 0.5] + 0.3 * rng.normal(size=40) > 0).astype(int)
    model = sklearn.LogisticRegression().fit(X, y)
    f = smjac.forward(model.coef_, X, model.intercept_, layout="out-in")
    assert_allclose(f.h, model.predict_proba(X), rtol=1e-12, atol=1e-15)
    from sklearn.metrics import log_loss

    g = smjac.grad(model.coef_, X, model.intercept_, target=y, layout="out-in")
    assert g.loss == pytest.approx(log_loss(y, model.predict_proba(X)), rel=1e-12)


# ---------------------------------------------------------------- check and verify with the options


def test_check_checks_the_loss_gradient_with_its_options(rng, monkeypatch):
    W, X = rng.normal(size=(3, 4)), rng.normal(size=(5, 3))
    y = np.array([0, 3, -100, 2, 1])
    opts = {"class_weights": [1.0, 2.0, 3.0, 0.5], "ignore_index": -100, "label_smoothing": 0.1}
    report = smjac.check(W, X, target=y, **opts)
    assert report.ok, report
    last = report.checks[-1]
    assert last.id == "loss-grad-vs-finite-differences"
    assert (
        last.name == "loss grad (class weights, ignore index -100, label smoothing 0.1) = finite differences"
    )
    # a gradient that forgot the class weights fails it
    from smjac.checking import loss_check

    real = loss_check.layer_grad
    monkeypatch.setattr(
        loss_check,
        "layer_grad",
        lambda L, **kw: real(L, **{k: v for k, v in kw.items() if k != "class_weights"}),
    )
    assert not smjac.check(W, X, target=y, **opts).checks[-1].ok
    with pytest.raises(smjac.InputError, match="give target too"):
        smjac.check(W, X, label_smoothing=0.1)


def test_verify_compares_with_the_loss_the_options_give(rng):
    W, X = rng.normal(size=(3, 4)), rng.normal(size=(5, 3))
    y = np.array([0, 3, -100, 2, 1])
    opts = {"class_weights": [1.0, 2.0, 3.0, 0.5], "ignore_index": -100, "label_smoothing": 0.1}
    g = smjac.grad(W, X, target=y, **opts)
    assert smjac.verify(W, X, grad=g.W, target=y, **opts).ok
    assert smjac.verify(W, X, grad_b=g.b, target=y, **opts, b=np.zeros(4)).ok
    sign = smjac.verify(W, X, grad=-g.W, target=y, **opts)
    assert [d.mistake for d in sign.diagnosis] == ["sign"]
    y0 = np.where(y == -100, 0, y)
    plain = smjac.grad(W, X, target=y0).W  # the options left out: wrong, and said to be
    assert not smjac.verify(W, X, grad=plain, target=y, **opts).ok
    with pytest.raises(smjac.InputError, match="define the loss of a gradient"):
        smjac.verify(W, X, jacobian=np.zeros((5, 4, 12)), label_smoothing=0.1)


# ---------------------------------------------------------------- the command line


def test_cli_grad_with_every_option(tmp_path):
    weights = ROOT / "samples/batch/class-weights.json"
    r = run("grad", *BATCH, "--target", "3,0,-100,1", "--ignore-index", "-100", "--class-weights", str(weights),
            "--label-smoothing", "0.1", "--format", "json")  # fmt: skip
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    w = json.loads(weights.read_text())
    gW, _, loss = by_hand(BLOG_W, BATCH_X, None, np.array([3, 0, -100, 1]), w=w, ignore=-100, eps=0.1)
    assert_allclose(doc["grad"], gW, rtol=1e-13)
    assert doc["loss"] == pytest.approx(loss, rel=1e-13)
    # what grad writes, verify takes back exactly
    out = tmp_path / "g.json"
    out.write_text(json.dumps(doc["grad"]))
    v = run("verify", *BATCH, "--grad", str(out), "--target", "3,0,-100,1", "--ignore-index", "-100",
            "--class-weights", str(weights), "--label-smoothing", "0.1", "--format", "json")  # fmt: skip
    assert v.exit_code == 0, v.stdout + v.stderr
    assert json.loads(v.stdout)["ok"] is True and json.loads(v.stdout)["error"]["max_abs"] == 0.0
    c = run("check", *BATCH, "--target", "3,0,-100,1", "--ignore-index", "-100", "--class-weights", str(weights),
            "--label-smoothing", "0.1", "--format", "json")  # fmt: skip
    assert c.exit_code == 0, c.stdout + c.stderr
    assert json.loads(c.stdout)["checks"][-1]["id"] == "loss-grad-vs-finite-differences"


def test_cli_caption_says_how_the_batch_was_combined():
    r = run("grad", *BATCH, "--target", "3,0,-100,1", "--ignore-index", "-100", "--format", "table")
    assert r.exit_code == 0, r.stderr
    assert "loss (mean over 3 of 4 samples, 1 ignored) = " in r.stdout


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        (["--target", "3,0,-100,1"], 2, "Error: target class -100 is out of range: K = 5, so 0 ≤ target ≤ 4; "
         "torch ignores -100 by default: pass --ignore-index -100 to do the same"),
        (["--target", "-100", "--ignore-index", "-100"], 2, "Error: every target is --ignore-index -100: no sample "
         "counts, so the mean loss is 0/0 (torch gives NaN); give at least one other target, or --reduce sum (0)"),
        (["--upstream", str(ROOT / "samples/batch/class-weights.json"), "--label-smoothing", "0.2"], 2,
         "--label-smoothing is an option of the cross-entropy of --target"),
        (["--target", "1", "--class-weights", str(ROOT / "samples/blog/x.json")], 2,
         "blog/x.json holds 3 class weights but W has K = 5 outputs; give one weight per class, in class order"),
        (["--target", "1", "--label-smoothing", "1.5"], 2, "1.5 is not a finite number in [0, 1]"),
    ],
)  # fmt: skip
def test_cli_refuses_what_it_cannot_be_sure_of(args, status, message):
    r = run("grad", *BATCH, *args)
    assert r.exit_code == status
    assert message in " ".join(r.stderr.split())


def test_cli_binary_is_said_once_on_stderr():
    r = run("forward", *BINARY, "--format", "json")
    assert r.exit_code == 0, r.stderr
    assert r.stderr.strip() == BINARY_NOTE
    doc = json.loads(r.stdout)
    coef = np.array(json.loads((ROOT / "samples/binary/coef.json").read_text()))
    X = np.array(json.loads((ROOT / "samples/binary/X.json").read_text()))
    z = X @ coef[0] + json.loads((ROOT / "samples/binary/intercept.json").read_text())[0]
    assert_allclose(np.array(doc["h"]), np.stack([1 - sigmoid(z), sigmoid(z)], axis=1), rtol=1e-14)
    g = run("grad", *BINARY, "--target", str(ROOT / "samples/binary/y.csv"), "--format", "json")
    assert g.exit_code == 0 and g.stderr.count("binary logistic regression") == 1
    y = np.loadtxt(ROOT / "samples/binary/y.csv", delimiter=",")
    assert_allclose(json.loads(g.stdout)["grad"], [X.T @ (sigmoid(z) - y) / len(y)], rtol=1e-13)
    j = run("jacobian", *BINARY)
    assert j.exit_code == 2 and j.stderr.count("binary logistic regression") == 1
    assert "smjac does not guess" in j.stderr and "--of z" in j.stderr
    c = run("check", *BINARY, "--format", "json")
    assert c.exit_code == 0 and "checked as the two-class softmax" in c.stderr


# ---------------------------------------------------------------- wild numbers


@st.composite
def wild_binary(draw):
    n, N = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    scale_w, scale_x = draw(st.integers(-150, 150)), draw(st.integers(-150, 150))
    W = draw(arrays(np.float64, (n, 1), elements=magnitudes(scale_w - 3, scale_w + 3)))
    X = draw(arrays(np.float64, (N, n), elements=magnitudes(scale_x - 3, scale_x + 3)))
    y = draw(arrays(np.int64, (N,), elements=st.integers(0, 1)))
    return W, X, y


@settings(max_examples=100, deadline=None)
@given(wild_binary())
def test_any_finite_binary_layer_is_right_or_refused(layer):
    W, X, y = layer
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy must not warn on the way
        try:
            g = smjac.grad(W, X, target=y, label_smoothing=0.1, class_weights=[1.0, 2.0])
        except smjac.InputError as e:
            assert "overflows" in str(e)
            return
        f = smjac.forward(W, X)
        report = smjac.check(W, X, target=y)
    assert np.all(np.isfinite(g.W)) and np.isfinite(g.loss)
    assert np.all(np.isfinite(f.h)) and np.all(f.h >= 0)
    assert_allclose(np.atleast_2d(f.h).sum(axis=1), 1.0, rtol=1e-15)
    assert report.ok, [c for c in report.checks if not c.ok]


def test_cli_a_mapped_batch_takes_the_options_over_the_whole_batch(tmp_path, rng):
    # an x past --max-input-bytes is walked in chunks: the mean still divides by the whole batch's weights
    W, X = rng.normal(size=(3, 4)), rng.normal(size=(120000, 3))  # about 7 chunks at --max-memory 16M
    y = rng.integers(0, 4, size=120000)
    y[::7] = -100
    np.save(tmp_path / "W.npy", W)
    np.save(tmp_path / "X.npy", X)
    (tmp_path / "y.csv").write_text("\n".join(map(str, y)) + "\n")
    (tmp_path / "w.json").write_text("[1.0, 2.0, 0.5, 4.0]")
    args = [
        "--max-input-bytes",
        "1000000",
        "grad",
        "-W",
        str(tmp_path / "W.npy"),
        "-x",
        str(tmp_path / "X.npy"),
    ]
    args += [
        "--target",
        str(tmp_path / "y.csv"),
        "--ignore-index",
        "-100",
        "--class-weights",
        str(tmp_path / "w.json"),
    ]
    out = tmp_path / "g.npy"
    r = run(*args, "--label-smoothing", "0.2", "--max-memory", "16M", "-o", str(out))
    assert r.exit_code == 0, r.stderr
    opts = {"class_weights": [1.0, 2.0, 0.5, 4.0], "ignore_index": -100, "label_smoothing": 0.2}
    assert_allclose(np.load(out), smjac.grad(W, X, target=y, **opts).W, rtol=1e-12)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"reduce": "sum"},
        {"class_weights": [1.0, 2.0, 3.0, 4.0]},
        {"label_smoothing": 0.1},
        {"ignore_index": 3},
    ],
)
def test_dloss_dz_and_dx_of_a_batch_are_of_the_reduced_loss(options, rng):
    # finite differences of g.loss itself: a mean's 1/N (or 1/Σw) is in .z and .x, as in W and b
    # and in torch's x.grad (they were the summed loss's: N times too large under the default mean)
    from .conftest import central_diff

    W, X = rng.standard_normal((3, 4)), rng.standard_normal((5, 3))
    t = np.array([0, 1, 2, 3, 0])
    g = smjac.grad(W, X, target=t, **options)

    def loss_of_x(flat):
        return smjac.grad(W, flat.reshape(X.shape), target=t, **options).loss

    def loss_of_b(b):
        return smjac.grad(W, X, b, target=t, **options).loss

    assert_allclose(central_diff(loss_of_x, X.ravel()).reshape(X.shape), g.x, atol=1e-8)
    assert_allclose(g.z.sum(axis=0), g.b, atol=1e-15)  # dLoss/db = Σ_n dLoss/dz_n
    assert_allclose(central_diff(loss_of_b, np.zeros(4))[0], g.b, atol=1e-8)
