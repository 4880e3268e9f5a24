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

    index = {}
    for name, (mistake, answer, options) in files.items():
        path = HERE / name
        arr = np.array(answer, dtype=float)
        if name.endswith(".npy"):
            np.save(path, arr, allow_pickle=False)
        else:
            path.write_text(json.dumps(arr.tolist()) + "\n")
        flag = next(o for o in options if o in ("--jacobian", "--grad", "--grad-b"))
        layer = BATCH if any(s in name for s in ("batch", "wrong-axis")) else BLOG
        at = options.index(flag)
        args = [*layer, *options[: at + 1], f"samples/mistakes/{name}", *options[at + 1 :]]
        index[name] = {"mistake": mistake, "args": args}
    (HERE / "index.json").write_text(json.dumps(index, indent=1) + "\n")


if __name__ == "__main__":
    main()
