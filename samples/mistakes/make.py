"""Write one wrong answer per known mistake, each derived by hand the way a person would.

Run from the repository root: ``python samples/mistakes/make.py``. Nothing here imports smjac: each
answer is the slip itself (a loop with a term dropped, a sign flipped, an axis mixed up), so that
``smjac verify`` has something real to recognise. ``index.json`` lists each file with the mistake
it holds and the ``smjac verify`` options it is meant for.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SAMPLES = HERE.parent
W = np.array(json.loads((SAMPLES / "blog/W.json").read_text()))  # n×K = 3×5, the post's layout
x = np.array(json.loads((SAMPLES / "blog/x.json").read_text()))
WB = np.array(json.loads((SAMPLES / "batch/W.json").read_text()))
XB = np.array(json.loads((SAMPLES / "batch/X.json").read_text()))
TARGETS = [int(line) for line in (SAMPLES / "batch/targets.csv").read_text().split()]
n, K = W.shape
BLOG = ["-W", "samples/blog/W.json", "-x", "samples/blog/x.json"]
BATCH = ["-W", "samples/batch/W.json", "-x", "samples/batch/X.json"]


def softmax(z):
    e = np.exp(z - max(z))  # the careful student shifts by the max
    return e / sum(e)


def h_of(xv, T=1.0):
    return softmax(W.T @ xv / T)


def jac_loops(A, xv, order="i*n+j"):
    """dh/dW from a K×K dh/dz, entry by entry, as the post's loops build it."""
    J = np.zeros((K, K * n))
    for t in range(K):
        for i in range(K):
            for j in range(n):
                col = i * n + j if order == "i*n+j" else j * K + i
                J[t, col] = A[t][i] * xv[j]
    return J


def diag_only(h):
    A = np.zeros((K, K))
    for t in range(K):
        A[t][t] = h[t] * (1 - h[t])  # "the derivative of softmax is h(1 − h)"
    return A


def full(h):
    A = np.zeros((K, K))
    for t in range(K):
        for i in range(K):
            A[t][i] = h[t] * ((t == i) - h[i])
    return A


def main() -> None:
    h = h_of(x)
    files: dict[str, tuple[str, object, list[str]]] = {}

    files["diagonal-only.json"] = (
        "diagonal-only",
        jac_loops(diag_only(h), x),
        ["--jacobian", "--of", "h", "--wrt", "W"],
    )

    # the post prints dh/dW with one row per weight: K·n × K
    post = np.zeros((K * n, K))
    for t in range(K):
        for i in range(K):
            for j in range(n):
                post[i * n + j][t] = h[t] * ((i == t) - h[i]) * x[j]
    files["transposed.json"] = ("transposed", post, ["--jacobian", "--of", "h", "--wrt", "W"])

    files["column-order.json"] = (
        "column-order",
        jac_loops(full(h), x, order="j*K+i"),
        ["--jacobian", "--of", "h", "--wrt", "W"],
    )

    # dLoss/dW for cross-entropy over the batch, summed although the loss averages
    g = np.zeros(WB.shape)
    for s, xs in enumerate(XB):
        z = WB.T @ xs
        p = softmax(z)
        for i in range(K):
            for j in range(n):
                g[j][i] += xs[j] * (p[i] - (i == TARGETS[s]))
    files["batch-reduction.json"] = (
        "batch-reduction",
        g,
        ["--grad", "--target", "samples/batch/targets.csv", "--reduce", "mean"],
    )

    # dh/dz at temperature 2, forgetting that z/T brings a 1/T down
    hT = h_of(x, T=2.0)
    files["temperature.json"] = (
        "temperature",
        full(hT),
        ["--jacobian", "--of", "h", "--wrt", "z", "--temperature", "2"],
    )

    # log-softmax was asked for; softmax's Jacobian was given
    files["log-softmax-confusion.json"] = (
        "log-softmax-confusion",
        full(h),
        ["--jacobian", "--of", "h", "--wrt", "z", "--function", "log-softmax"],
    )

    target = 2
    files["missing-one-hot.json"] = (
        "missing-one-hot",
        [[x[j] * h[i] for i in range(K)] for j in range(n)],
        ["--grad", "--target", "2"],
    )
    files["sign.json"] = (
        "sign",
        [[x[j] * ((i == target) - h[i]) for i in range(K)] for j in range(n)],
        ["--grad", "--target", "2"],
    )

    # softmax over the batch axis: each class normalised across the samples
    Z = XB @ WB
    E = np.exp(Z - Z.max(axis=0))
    P = E / E.sum(axis=0)
    files["wrong-axis.json"] = ("wrong-axis", [full(p) for p in P], ["--jacobian", "--of", "h", "--wrt", "z"])

    # the post's last step: sum the columns of dh/dW and call it the update
    sums = jac_loops(full(h), x).sum(axis=0)
    files["zero-update.json"] = (
        "zero-update",
        [[sums[i * n + j] for i in range(K)] for j in range(n)],
        ["--grad", "--target", "2"],
    )

    # a squared-error habit: the gradient of ½‖·‖² written without the ½
    files["scale.json"] = (
        "scale",
        [[2 * x[j] * (h[i] - (i == target)) for i in range(K)] for j in range(n)],
        ["--grad", "--target", "2"],
    )

    # exp without the max shift, at a temperature that makes z/T pass 709
    T = 0.0004
    zT = W.T @ x / T
    with np.errstate(over="ignore", invalid="ignore"):
        e = np.exp(zT)
        hn = e / e.sum()
        files["non-finite.npy"] = (
            "non-finite",
            np.array([[hn[t] * ((t == i) - hn[i]) / T for i in range(K)] for t in range(K)]),
            ["--jacobian", "--of", "h", "--wrt", "z", "--temperature", str(T)],
        )

    # dh/dW given as K × n: one number per (output, input), the weights' own index lost
    files["shape.json"] = (
        "shape",
        [[full(h)[t][t] * x[j] for j in range(n)] for t in range(K)],
        ["--jacobian", "--of", "h", "--wrt", "W"],
    )

    # on the batch too: the diagonal-only dh/dz of every sample
    hb = [softmax(WB.T @ xs) for xs in XB]
    files["batch-diagonal-only.json"] = (
        "diagonal-only",
        [diag_only(p) for p in hb],
        ["--jacobian", "--of", "h", "--wrt", "z"],
    )

    files.update(bugs_from_real_code())

    index = {}
    for name, (mistakes, answer, options) in files.items():
        path = HERE / name
        arr = np.array(answer, dtype=float)
        if name.endswith(".npy"):
            np.save(path, arr, allow_pickle=False)
        else:
            path.write_text(json.dumps(arr.tolist()) + "\n")
        flag = next(o for o in options if o in ("--jacobian", "--grad", "--grad-b"))
        on_batch = any(s in name for s in ("batch", "wrong-axis", "over-all", "twice", "over-classes"))
        layer = BATCH if on_batch else BLOG
        at = options.index(flag)
        args = [*layer, *options[: at + 1], f"samples/mistakes/{name}", *options[at + 1 :]]
        index[name] = {"mistakes": [mistakes] if isinstance(mistakes, str) else list(mistakes), "args": args}
    for name, values in UPSTREAMS.items():
        (HERE / name).write_text(json.dumps(np.asarray(values).tolist()) + "\n")
    (HERE / "index.json").write_text(json.dumps(index, indent=1) + "\n")
    (HERE / "README.md").write_text(readme(index))


def readme(index: dict) -> str:
    """README.md: what each file holds and the command that verifies it."""
    rows = "\n".join(
        f"| `{name}` | {', '.join(f'`{m}`' for m in e['mistakes'])} | `smjac verify {' '.join(e['args'])}` |"
        for name, e in index.items()
    )
    return f"""# Mistaken answers, one or more per known mistake

Each file is a derivative of the post's layer (`samples/blog`) or of the batch (`samples/batch`)
worked out by hand with one of the slips `smjac verify` knows, or two of them at once. `make.py`
writes them with plain loops and numpy, the way a person would, and never calls smjac; `index.json`
lists each file with the mistakes `smjac verify` names for it, in its order, and the options it is
meant for. `upstream-*.json` are the upstream gradients dLoss/dh some of them use. Run from the
repository root:

```
python samples/mistakes/make.py
```

| file | mistakes | verify it with |
|---|---|---|
{rows}

Every command exits 1 (the answer disagrees) and names the mistakes in its diagnosis.
`non-finite.npy` is an .npy file because JSON cannot hold NaN.
"""


def onehot(k):
    return [1.0 if i == k else 0.0 for i in range(K)]


h_blog = h_of(x)
UPSTREAMS = {
    # ½‖h − y‖² after softmax, target 2: dLoss/dh = h − y, which sums to 0
    "upstream-half-mse.json": [h_blog[i] - (i == 2) for i in range(K)],
    # NLLLoss(weight=w) on log-softmax with w[2] = 2: dLoss/d(log p) = −2·y, which sums to −2
    "upstream-weighted-nll.json": [-2.0 * (i == 2) for i in range(K)],
}


def bugs_from_real_code() -> dict[str, tuple[list[str], object, list[str]]]:
    """The slips `smjac verify` once missed, as they were written: alone, and two at once."""
    files: dict[str, tuple[list[str], object, list[str]]] = {}
    h = h_blog
    z = W.T @ x
    mean = ["--reduce", "mean"]
    targets = ["--target", "samples/batch/targets.csv"]

    # the logits where the probabilities belong: the post's loop with z for h
    files["logits-for-probabilities.json"] = (
        ["logits-for-probabilities"],
        [[z[t] * ((t == i) - z[i]) for i in range(K)] for t in range(K)],
        ["--jacobian", "--of", "h", "--wrt", "z"],
    )

    # P = np.exp(Z) / np.exp(Z).sum(): one sum over the whole batch array
    Z = XB @ WB
    P_all = np.exp(Z) / np.exp(Z).sum()
    g = np.zeros(WB.shape)
    for s, xs in enumerate(XB):
        for i in range(K):
            for j in range(n):
                g[j][i] += xs[j] * (P_all[s][i] - (i == TARGETS[s])) / len(XB)
    files["softmax-over-all.json"] = (["softmax-over-all"], g, ["--grad", *targets, *mean])

    # nn.CrossEntropyLoss()(torch.softmax(z, -1), y): the loss applies log-softmax to probabilities
    g = np.zeros(WB.shape)
    for s, xs in enumerate(XB):
        p = softmax(WB.T @ xs)
        q = softmax(p)  # CrossEntropyLoss's own softmax, of p
        dp = [q[t] - (t == TARGETS[s]) for t in range(K)]
        dz = [sum(dp[t] * p[t] * ((t == i) - p[i]) for t in range(K)) for i in range(K)]
        for i in range(K):
            for j in range(n):
                g[j][i] += xs[j] * dz[i] / len(XB)
    files["softmax-twice.json"] = (["softmax-twice"], g, ["--grad", *targets, *mean])

    # weight decay folded into the gradient: grad + weight_decay * W, as SGD(weight_decay=0.01) does
    files["l2-term.json"] = (
        ["l2-term"],
        [[x[j] * (h[i] - (i == 2)) + 0.01 * W[j][i] for i in range(K)] for j in range(n)],
        ["--grad", "--target", "2"],
    )

    # class Softmax: def backward(self, grad): return grad  (used under ½‖h − y‖²)
    up = UPSTREAMS["upstream-half-mse.json"]
    files["identity-backward.json"] = (
        ["identity-backward", "log-softmax-confusion"],  # the two readings agree: this upstream sums to 0
        [[x[j] * up[i] for i in range(K)] for j in range(n)],
        ["--grad", "--upstream", "samples/mistakes/upstream-half-mse.json"],
    )

    # LogSoftmax.backward written as grad + exp(out): NLL's shortcut, here under a weighted NLL
    up = UPSTREAMS["upstream-weighted-nll.json"]
    logp = z - max(z) - np.log(sum(np.exp(z - max(z))))
    files["log-softmax-nll-shortcut.json"] = (
        ["log-softmax-nll-shortcut"],
        [[x[j] * (up[i] + np.exp(logp[i])) for i in range(K)] for j in range(n)],
        ["--grad", "--upstream", "samples/mistakes/upstream-weighted-nll.json", "--function", "log-softmax"],
    )

    # darknet's delta = truth − output, on a softmax taken over the batch axis
    E = np.exp(Z - Z.max(axis=0))
    P0 = E / E.sum(axis=0)
    delta = np.array([[(i == TARGETS[s]) - P0[s][i] for i in range(K)] for s in range(len(XB))])
    files["sign-wrong-axis.json"] = (
        ["wrong-axis", "sign"],
        XB.T @ delta / len(XB),
        ["--grad", *targets, *mean],
    )

    # neuroph: error = target − output, times the sigmoid's derivative out·(1 − out), under ½‖h − y‖²
    files["sign-diagonal-only.json"] = (
        ["diagonal-only", "sign"],
        [[x[j] * ((i == 2) - h[i]) * h[i] * (1 - h[i]) for i in range(K)] for j in range(n)],
        ["--grad", "--upstream", "samples/mistakes/upstream-half-mse.json"],
    )

    # delta = y − p with the one-hot forgotten: −x pᵀ
    files["sign-missing-one-hot.json"] = (
        ["missing-one-hot", "sign"],
        [[-x[j] * h[i] for i in range(K)] for j in range(n)],
        ["--grad", "--target", "2"],
    )

    # the one-hot forgotten, and the batch summed where the loss averages
    g = np.zeros(WB.shape)
    for xs in XB:
        p = softmax(WB.T @ xs)
        for i in range(K):
            for j in range(n):
                g[j][i] += xs[j] * p[i]
    files["batch-reduction-missing-one-hot.json"] = (
        ["missing-one-hot", "batch-reduction"],
        g,
        ["--grad", *targets, *mean],
    )

    # DL4J-style delta y − p, averaged over the batch where the loss sums
    g = np.zeros(WB.shape)
    for s, xs in enumerate(XB):
        p = softmax(WB.T @ xs)
        for i in range(K):
            for j in range(n):
                g[j][i] += xs[j] * ((i == TARGETS[s]) - p[i]) / len(XB)
    files["batch-sign-reduction.json"] = (
        ["batch-reduction", "sign"],
        g,
        ["--grad", *targets, "--reduce", "sum"],
    )

    # the cross-entropy written elementwise, −y·log p, then loss.mean() over all N×K entries
    Y = np.array([onehot(k) for k in TARGETS])
    P = np.array([softmax(WB.T @ xs) for xs in XB])
    files["scale-over-classes.json"] = (["scale"], XB.T @ (P - Y) / P.size, ["--grad", *targets, *mean])

    # the update the optimizer applies, W −= lr·grad, taken for the gradient
    files["learning-rate.json"] = (
        ["sign", "scale"],
        [[-0.1 * x[j] * (h[i] - (i == 2)) for i in range(K)] for j in range(n)],
        ["--grad", "--target", "2"],
    )

    # the loss has options (torch's CrossEntropyLoss(weight=w, ignore_index=0, label_smoothing=ε)),
    # the gradient is written for the plain one
    weights_file = "samples/batch/class-weights.json"
    cw = json.loads((SAMPLES / "batch/class-weights.json").read_text())
    g = np.zeros(WB.shape)
    for s, xs in enumerate(XB):
        p = softmax(WB.T @ xs)
        for i in range(K):
            for j in range(n):
                g[j][i] += xs[j] * (p[i] - (i == TARGETS[s])) / len(XB)  # every sample weighs 1
    files["batch-missing-class-weights.json"] = (
        ["missing-class-weights"],
        g,
        ["--grad", *targets, "--class-weights", weights_file, *mean],
    )

    g = np.zeros(WB.shape)
    for s, xs in enumerate(XB):  # weighted, but the samples of class 0 are not left out
        p = softmax(WB.T @ xs)
        w = cw[TARGETS[s]]
        for i in range(K):
            for j in range(n):
                g[j][i] += w * xs[j] * (p[i] - (i == TARGETS[s]))
    files["batch-missing-ignore-index.json"] = (
        ["missing-ignore-index"],
        g,
        ["--grad", *targets, "--class-weights", weights_file, "--ignore-index", "0", "--reduce", "sum"],
    )

    files["missing-label-smoothing.json"] = (
        ["missing-label-smoothing"],
        [[x[j] * (h[i] - (i == 2)) for i in range(K)] for j in range(n)],  # y where 0.9·y + 0.1/K was due
        ["--grad", "--target", "2", "--label-smoothing", "0.1"],
    )
    return files


if __name__ == "__main__":
    main()
