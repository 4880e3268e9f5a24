"""smjac.verify on the slips it once missed (issue 21): each alone, two at once, and never on noise.

Every wrong answer is written from its own formula, the way the slip is made (a delta of y − p, a
softmax over the wrong array, a loss that applies softmax again), never by perturbing smjac's
answer. Right answers come from other routes: float32 loops, log-sum-exp, the other layout,
complex-step differentiation.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import smjac
from smjac.cli import app

from .conftest import BLOG_W, BLOG_X, central_diff


def sm(Z, axis=-1):
    E = np.exp(Z - Z.max(axis=axis, keepdims=True))
    return E / E.sum(axis=axis, keepdims=True)


def ids(v):
    return [d.mistake for d in v.diagnosis]


class Batch:
    """A random batch layer, its probabilities and one-hot targets, written out by hand."""

    def __init__(self, rng, n=3, K=5, N=4, layout="in-out"):
        self.n, self.K, self.N, self.layout = n, K, N, layout
        self.Wio = rng.normal(size=(n, K))
        self.X = rng.normal(size=(N, n))
        self.y = rng.integers(0, K, size=N)
        self.Y = np.eye(K)[self.y]
        self.Z = self.X @ self.Wio
        self.P = sm(self.Z)

    @property
    def W(self):
        return self.Wio if self.layout == "in-out" else self.Wio.T

    def grad(self, delta, reduce):
        """dL/dW in the layer's layout from a per-sample dL/dz, summed or averaged."""
        g = self.X.T @ delta / (self.N if reduce == "mean" else 1)
        return g if self.layout == "in-out" else g.T

    def verify(self, answer, **kw):
        return smjac.verify(self.W, self.X, grad=answer, layout=self.layout, **kw)


def softmax_backward(P, g):
    """gᵀ(diag(p) − p pᵀ), row by row: the right backward of softmax."""
    return P * (g - np.sum(g * P, axis=1, keepdims=True))


# ------------------------------------------------------------- a value slip and a factor slip at once


VALUES = {
    # the delta a person computes (dL/dz per sample), and what verify needs to know the loss
    "wrong-axis": lambda c: (sm(c.Z, axis=0) - c.Y, "target"),
    "missing-one-hot": lambda c: (c.P, "target"),
    "logits-for-probabilities": lambda c: (c.Z - c.Y, "target"),
    "softmax-over-all": lambda c: (np.exp(c.Z) / np.exp(c.Z).sum() - c.Y, "target"),
    "softmax-twice": lambda c: (softmax_backward(c.P, sm(c.P) - c.Y), "target"),
    "diagonal-only": lambda c: (2 * (c.P - c.Y) * c.P * (1 - c.P), "mse"),  # neuroph's out·(1 − out)
    "identity-backward": lambda c: (2 * (c.P - c.Y) * np.arange(1, c.K + 1), "weighted"),
}


def loss_kw(c, how):
    if how == "target":
        return {"target": c.y}
    if how == "mse":
        return {"upstream": 2 * (c.P - c.Y)}  # ‖h − y‖²
    return {"upstream": 2 * (c.P - c.Y) * np.arange(1, c.K + 1)}  # a weighted squared error: Σg ≠ 0


@pytest.mark.parametrize("value", sorted(VALUES))
@pytest.mark.parametrize("reduce", ["sum", "mean"])
@pytest.mark.parametrize("layout", ["in-out", "out-in"])
def test_each_value_slip_alone_and_with_a_sign_a_reduction_or_both(rng, value, reduce, layout):
    c = Batch(rng, layout=layout)
    delta, how = VALUES[value](c)
    kw = dict(reduce=reduce, **loss_kw(c, how))
    other = "sum" if reduce == "mean" else "mean"
    assert ids(c.verify(c.grad(delta, reduce), **kw)) == [value]
    assert ids(c.verify(c.grad(-delta, reduce), **kw)) == [value, "sign"]  # darknet's y − p
    assert ids(c.verify(c.grad(delta, other), **kw)) == [value, "batch-reduction"]
    v = c.verify(c.grad(-delta, other), **kw)
    assert ids(v) == [value, "batch-reduction", "sign"], v
    assert all(d.fix for d in v.diagnosis)


@pytest.mark.parametrize("reduce", ["sum", "mean"])
def test_sign_and_reduction_are_both_named_not_a_scale_of_minus_n(rng, reduce):
    c = Batch(rng, N=6)
    other = "sum" if reduce == "mean" else "mean"
    v = c.verify(c.grad(c.Y - c.P, other), target=c.y, reduce=reduce)
    assert ids(v) == ["batch-reduction", "sign"], v
    assert "scale" not in str(v)


def test_diagonal_only_jacobian_with_a_lost_sign(rng):
    c = Batch(rng, N=1)
    p, x = c.P[0], c.X[0]
    wrong = -np.kron(np.diag(p * (1 - p)), x[None, :])
    assert ids(smjac.verify(c.Wio, x, jacobian=wrong)) == ["diagonal-only", "sign"]


def test_json_lists_the_pair_in_order_for_a_ci_script(tmp_path, rng):
    c = Batch(rng)
    for name, a in (("W", c.Wio), ("X", c.X), ("answer", c.grad(c.Y - sm(c.Z, axis=0), "sum"))):
        (tmp_path / f"{name}.json").write_text(json.dumps(a.tolist()))
    (tmp_path / "t.csv").write_text("\n".join(map(str, c.y)))
    files = ["-W", str(tmp_path / "W.json"), "-x", str(tmp_path / "X.json")]
    args = ["verify", *files, "--grad", str(tmp_path / "answer.json"), "--target", str(tmp_path / "t.csv")]
    result = CliRunner().invoke(app, [*args, "--reduce", "sum", "-f", "json"])
    assert result.exit_code == 1, result.output
    doc = json.loads(result.stdout)
    assert doc["schema"] == 1 and [d["mistake"] for d in doc["diagnosis"]] == ["wrong-axis", "sign"]


# ------------------------------------------------------------- the new ids, each by its own slip


def test_logits_for_probabilities_in_a_jacobian(rng):
    c = Batch(rng, N=1)
    z, p, x = c.Z[0], c.P[0], c.X[0]
    outer = np.diag(z) - np.outer(z, z)
    inner = np.array([[p[t] * ((t == i) - z[i]) for i in range(c.K)] for t in range(c.K)])
    for wrong in (outer, inner):
        assert ids(smjac.verify(c.Wio, x, jacobian=wrong, wrt="z")) == ["logits-for-probabilities"]
    assert ids(smjac.verify(c.Wio, x, jacobian=np.kron(outer, x[None, :]))) == ["logits-for-probabilities"]
    log_version = np.eye(c.K) - z[None, :]  # log-softmax's I − 1pᵀ with z for p
    v = smjac.verify(c.Wio, x, jacobian=log_version, wrt="z", function="log-softmax")
    assert ids(v) == ["logits-for-probabilities"]


def test_softmax_over_all_in_a_jacobian(rng):
    c = Batch(rng, N=3)
    E = np.exp(c.Z)
    P = E / E.sum()  # one sum over every sample and class
    wrong = np.array([np.diag(p) - np.outer(p, p) for p in P])
    v = smjac.verify(c.Wio, c.X, jacobian=wrong, wrt="z")
    assert ids(v) == ["softmax-over-all"], v
    assert "whole N×K = 3×5 array" in v.diagnosis[0].detail


def test_softmax_twice_is_what_cross_entropy_of_probabilities_differentiates_to(rng):
    c = Batch(rng)

    def loss(flat):  # nn.CrossEntropyLoss()(softmax(z), y), summed: softmax applied twice
        Q = sm(sm(c.X @ flat.reshape(c.n, c.K)))
        return -np.log(Q[np.arange(c.N), c.y]).sum()

    g = central_diff(loss, c.Wio.ravel()).reshape(c.n, c.K)
    assert ids(c.verify(g, target=c.y, reduce="sum", rtol=1e-6, atol=1e-8)) == ["softmax-twice"]


def test_l2_term_reports_lambda_alone_and_under_a_sign_and_a_mean(rng):
    c = Batch(rng, layout="out-in")
    v = c.verify(c.grad(c.P - c.Y, "sum") + 0.003 * c.W, target=c.y, reduce="sum")
    assert ids(v) == ["l2-term"] and "λ = 0.003" in v.diagnosis[0].detail, v
    # the descent direction −(g + λW), with the batch summed where the loss averages
    v = c.verify(-(c.grad(c.P - c.Y, "sum") + 0.003 * c.W), target=c.y, reduce="mean")
    assert ids(v) == ["batch-reduction", "sign", "l2-term"], v
    assert "λ = 0.003" in v.diagnosis[-1].detail
    b = rng.normal(size=c.K)
    P = sm(c.Z + b)
    v = smjac.verify(c.Wio, c.X, grad_b=(P - c.Y).sum(axis=0) + 0.5 * b, b=b, target=c.y, reduce="sum")
    assert ids(v) == ["l2-term"] and "λ = 0.5" in v.diagnosis[0].detail


def test_identity_backward_under_a_squared_error_says_both_readings_agree(rng):
    c = Batch(rng)
    g = c.P - c.Y  # ½‖h − y‖²: sums to 0 in each sample
    v = c.verify(c.grad(g, "mean"), upstream=g, reduce="mean")
    assert ids(v) == ["identity-backward", "log-softmax-confusion"], v
    assert "the two readings agree" in v.diagnosis[0].detail
    assert any("cannot tell them apart" in n for n in v.notes)


def test_identity_backward_is_right_for_log_softmax_when_the_upstream_sums_to_zero(rng):
    c = Batch(rng)
    g = rng.normal(size=(c.N, c.K))
    g -= g.mean(axis=1, keepdims=True)
    v = c.verify(c.grad(g, "sum"), upstream=g, reduce="sum", function="log-softmax")
    assert v.ok and v.diagnosis == () and len(v.notes) == 1, v
    assert v.notes[0].startswith("identity-backward: the upstream sums to 0")
    assert "note: identity-backward" in str(v)
    assert v.to_dict()["notes"] == list(v.notes)
    g[:, 0] += 1.0  # an upstream that does not sum to 0: the identity is a mistake again
    v = c.verify(c.grad(g, "sum"), upstream=g, reduce="sum", function="log-softmax")
    assert ids(v) == ["identity-backward"], v


def test_identity_backward_in_a_jacobian_is_dz_given_for_dh(rng):
    c = Batch(rng, N=1)
    assert ids(smjac.verify(c.Wio, c.X[0], jacobian=np.eye(c.K), wrt="z")) == ["identity-backward"]


def test_log_softmax_nll_shortcut_says_when_it_holds(rng):
    c = Batch(rng)
    logp = c.Z - c.Z.max(axis=1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(axis=1, keepdims=True))
    w = np.array([1.0, 2.0, 0.5, 1.0, 3.0])
    c.y[:2] = [1, 2]  # two classes of different weights at least
    c.Y = np.eye(c.K)[c.y]
    g = -w[c.y][:, None] * c.Y  # NLLLoss(weight=w): sums to −w[y], not −1
    shortcut = c.grad(g + np.exp(logp), "mean")
    v = c.verify(shortcut, upstream=g, reduce="mean", function="log-softmax")
    assert ids(v) == ["log-softmax-nll-shortcut"], v
    low, high = -w[c.y].max(), -w[c.y].min()
    assert f"sums to between {low:g} and {high:g} over the samples" in v.diagnosis[0].detail
    # under NLL itself the shortcut is right: verify agrees, and says why it holds
    v = c.verify(c.grad(np.exp(logp) - c.Y, "mean"), target=c.y, reduce="mean", function="log-softmax")
    assert v.ok and v.diagnosis == () and "sums to −1" in v.notes[0], v


# ------------------------------------------------------------- what a factor is, in words


@pytest.mark.parametrize(
    ("factor", "expect", "said"),
    [
        (1 / 5, ["scale"], "1/K: averaged over the K = 5 classes"),
        (2.0, ["scale"], "a squared loss differentiated without its ½"),
        (0.5, ["scale"], "a ½ too many"),
        (2 / 5, ["scale"], "2/K"),
        (0.01, ["scale"], "a learning rate lr = 0.01"),
        (-0.01, ["sign", "scale"], "the update −lr·g"),
        (-2.0, ["sign", "scale"], "a squared loss"),
        (3.7, ["scale"], "the truth times 3.7"),
    ],
)
def test_scale_names_what_the_factor_is(rng, factor, expect, said):
    c = Batch(rng, N=1)
    v = c.verify(factor * c.grad(c.P - c.Y, "sum"), target=c.y)
    assert ids(v) == expect, v
    assert said in v.diagnosis[-1].detail


def test_a_jacobian_divided_by_n_is_a_scale_of_1_over_n(rng):
    c = Batch(rng, N=4)
    wrong = np.array([np.diag(p) - np.outer(p, p) for p in c.P]) / 4
    v = smjac.verify(c.Wio, c.X, jacobian=wrong, wrt="z")
    assert ids(v) == ["scale"] and "1/N: divided by the batch size N = 4" in v.diagnosis[0].detail


def test_temperature_squared_is_read_as_distillation_on_purpose(rng):
    c = Batch(rng, N=1)
    p = sm(c.Z[0] / 3)
    v = smjac.verify(c.Wio, c.X[0], jacobian=9 * (np.diag(p) - np.outer(p, p)) / 3, wrt="z", temperature=3)
    assert ids(v) == ["temperature"]
    assert "deliberate" in v.diagnosis[0].fix and "divide it by T² = 9" in v.diagnosis[0].fix


# ------------------------------------------------------------- a transposed answer says so first


def test_a_transposed_answer_says_so_on_its_first_line(rng):
    c = Batch(rng, n=3, K=4)
    v = c.verify(c.grad(c.P - c.Y, "sum").T, target=c.y, reduce="sum")
    first = str(v).splitlines()[0]
    assert first.startswith("dL/dW DISAGREES: answer of shape (4, 3) is transposed (expected (3, 4))"), first
    assert "its entries are the truth's, transposed" in first
    assert ids(v) == ["transposed"]


# ------------------------------------------------------------- stable ids and a schema for scripts


def test_check_has_stable_ids_whatever_the_function_or_probes():
    soft = smjac.check(BLOG_W, BLOG_X).to_dict()
    logs = smjac.check(BLOG_W, BLOG_X, function="log-softmax", probes=2).to_dict()
    assert soft["schema"] == logs["schema"] == 1
    soft_ids = [c["id"] for c in soft["checks"]]
    assert len(set(soft_ids)) == len(soft_ids) and all(soft_ids)
    assert {c["id"] for c in logs["checks"]} <= set(soft_ids)  # log-softmax has no symmetry check
    assert [c["name"] for c in logs["checks"]][-1] != [c["name"] for c in soft["checks"]][-1]  # names vary
    assert soft_ids[-1] == [c["id"] for c in logs["checks"]][-1] == "cross-entropy-grad-vs-finite-differences"


def test_check_json_carries_the_schema_and_the_ids(layer_files):
    W, x = layer_files()
    result = CliRunner().invoke(app, ["check", "-W", str(W), "-x", str(x), "-f", "json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["schema"] == 1 and doc["checks"][0]["id"] == "sums-to-one"


# ------------------------------------------------------------- the keywords users guess


def test_the_answer_may_be_given_by_what_it_is(rng):
    c = Batch(rng)
    g = c.grad(c.P - c.Y, "mean")
    assert smjac.verify(c.Wio, c.X, grad=g, target=c.y, reduce="mean").ok
    assert smjac.verify(c.Wio, c.X, g, kind="grad", target=c.y, reduce="mean").ok
    assert smjac.verify(c.Wio, c.X, grad_b=(c.P - c.Y).mean(axis=0), target=c.y, reduce="mean").ok
    J = np.array([np.diag(p) - np.outer(p, p) for p in c.P])
    assert smjac.verify(c.Wio, c.X, jacobian=J, wrt="z").ok
    L = smjac.make_layer(c.Wio, c.X)
    assert smjac.layer_verify(L, jacobian=J, wrt="z").ok
    with pytest.raises(smjac.InputError, match="give the answer once"):
        smjac.verify(c.Wio, c.X, g, grad=g, target=c.y)
    with pytest.raises(smjac.InputError, match="give the answer once"):
        smjac.verify(c.Wio, c.X, target=c.y)
    with pytest.raises(smjac.InputError, match="leave kind out"):
        smjac.verify(c.Wio, c.X, grad=g, kind="jacobian", target=c.y)


# ------------------------------------------------------------- noise and right answers get no id


def _layer(seed, n, K, N):
    rng = np.random.default_rng(seed)
    W, X = rng.normal(size=(n, K)), rng.normal(size=(N, n))
    return rng, W, X, rng.integers(0, K, size=N)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    n=st.integers(1, 4),
    K=st.integers(3, 6),
    N=st.integers(1, 4),
    kind=st.sampled_from(["jacobian-z", "jacobian-W", "grad", "grad-upstream", "grad_b"]),
    function=st.sampled_from(["softmax", "log-softmax"]),
    on_truth=st.booleans(),
)
def test_random_noise_is_never_given_an_id(seed, n, K, N, kind, function, on_truth):
    rng, W, X, y = _layer(seed, n, K, N)
    kw: dict = {"function": function}
    if kind == "jacobian-z":
        kw["wrt"] = "z"
        truth = smjac.jacobian(W, X, wrt="z", function=function)
    elif kind == "jacobian-W":
        truth = smjac.jacobian(W, X, function=function)
    elif kind == "grad_b":
        kw |= {"target": y, "reduce": "sum"}
        truth = smjac.grad(W, X, target=y, reduce="sum", function=function).b
    else:
        loss = {"target": y} if kind == "grad" else {"upstream": rng.normal(size=(N, K))}
        kw |= {**loss, "reduce": "mean"}
        truth = smjac.grad(W, X, **kw).W
    scale = float(np.max(np.abs(truth))) or 1.0
    noise = rng.normal(size=truth.shape) * scale * (0.1 if on_truth else 1.0)
    answer = truth + noise if on_truth else noise
    key = "jacobian" if kind.startswith("jacobian") else ("grad_b" if kind == "grad_b" else "grad")
    v = smjac.verify(W, X, **{key: answer}, **kw)
    assert not v.ok and v.diagnosis == (), v


def _loops_float32(W, x, y):
    """The cross-entropy gradient in float32, entry by entry, as a C kernel would."""
    W32, x32 = W.astype(np.float32), x.astype(np.float32)
    z = [np.float32(sum(W32[j, i] * x32[j] for j in range(len(x32)))) for i in range(W.shape[1])]
    m = max(z)
    e = [np.exp(v - m) for v in z]
    s = np.float32(sum(e))
    return np.array([[x32[j] * (e[i] / s - (i == y)) for i in range(W.shape[1])] for j in range(len(x32))])


def _logsumexp_route(W, x, y):
    z = x @ W
    lse = np.max(z) + np.log(np.sum(np.exp(z - np.max(z))))
    return np.outer(x, np.exp(z - lse) - np.eye(W.shape[1])[y])


def _complex_step(W, x, y):
    """dLoss/dW by the complex step: Im f(w + iε) / ε, exact to rounding."""
    g = np.zeros_like(W)
    for idx in np.ndindex(W.shape):
        Wc = W.astype(complex)
        Wc[idx] += 1e-30j
        z = x @ Wc
        z = z - np.max(z.real)
        loss = -(z[y] - np.log(np.sum(np.exp(z))))
        g[idx] = loss.imag / 1e-30
    return g


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(1, 4), K=st.integers(2, 6))
def test_right_answers_from_other_routes_get_no_id(seed, n, K):
    _, W, X, y = _layer(seed, n, K, 1)
    x, t = X[0], int(y[0])
    assume(np.max(np.abs(x @ W)) < 30)
    for answer in (_loops_float32(W, x, t), _logsumexp_route(W, x, t), _complex_step(W, x, t)):
        v = smjac.verify(W, x, grad=answer, target=t)
        assert v.ok and v.diagnosis == (), v
    # the other layout: PyTorch's K×n weight and its gradient, said so
    v = smjac.verify(W.T, x, grad=_logsumexp_route(W, x, t).T, target=t, layout="out-in")
    assert v.ok and v.diagnosis == (), v


# ------------------------------------------------------------- the loss's options left out


def _torch_ce_grad(W, X, y, w=None, ignore=None, eps=0.0, reduce="mean"):
    """dLoss/dW (n×K) of torch's CrossEntropyLoss(weight=w, ignore_index=ignore, label_smoothing=eps),
    sample by sample from its formula ℓ = (1 − ε) w_y (−log p_y) + (ε/K) Σ_k w_k (−log p_k)."""
    K = W.shape[1]
    w = np.ones(K) if w is None else np.asarray(w, float)
    G, total = np.zeros_like(W), 0.0
    for x, t in zip(X, y, strict=True):
        if t == ignore:
            continue
        p = sm(x @ W)
        dz = (1 - eps) * w[t] * (p - np.eye(K)[t]) + (eps / K) * (w.sum() * p - w)
        G += np.outer(x, dz)
        total += w[t]
    return G / total if reduce == "mean" else G


@pytest.mark.parametrize("reduce", ["mean", "sum"])
@pytest.mark.parametrize(
    ("options", "left_out", "mistake"),
    [
        ({"class_weights": [1.0, 2.0, 0.5, 1.0, 3.0]}, "class_weights", "missing-class-weights"),
        (
            {"class_weights": [1.0, 2.0, 0.5, 1.0, 3.0], "label_smoothing": 0.2},
            "class_weights",
            "missing-class-weights",
        ),
        ({"ignore_index": 1, "label_smoothing": 0.1}, "ignore_index", "missing-ignore-index"),
        (
            {"ignore_index": 1, "class_weights": [1.0, 2.0, 0.5, 1.0, 3.0]},
            "ignore_index",
            "missing-ignore-index",
        ),
        ({"label_smoothing": 0.1}, "label_smoothing", "missing-label-smoothing"),
        ({"label_smoothing": 0.3, "ignore_index": 1}, "label_smoothing", "missing-label-smoothing"),
    ],
)
def test_a_loss_option_left_out_is_named(rng, reduce, options, left_out, mistake):
    W, X, y = rng.normal(size=(3, 5)), rng.normal(size=(6, 3)), np.array([1, 0, 4, 1, 2, 3])
    names = {"class_weights": "w", "ignore_index": "ignore", "label_smoothing": "eps"}
    full = {names[k]: v for k, v in options.items()}
    right = _torch_ce_grad(W, X, y, **full, reduce=reduce)
    assert smjac.verify(W, X, grad=right, target=y, reduce=reduce, **options).ok
    wrong = _torch_ce_grad(W, X, y, **{k: v for k, v in full.items() if k != names[left_out]}, reduce=reduce)
    v = smjac.verify(W, X, grad=wrong, target=y, reduce=reduce, **options)
    assert ids(v) == [mistake], v
    assert "--" not in v.diagnosis[0].detail + v.diagnosis[0].fix


def test_an_ignore_index_no_class_has_is_not_said_forgotten(rng):
    # torch's −100 is no class: a gradient that took no notice of it is simply right
    W, X, y = rng.normal(size=(3, 5)), rng.normal(size=(4, 3)), np.array([1, 0, 4, 2])
    v = smjac.verify(W, X, grad=_torch_ce_grad(W, X, y), target=y, ignore_index=-100)
    assert v.ok and not v.notes
