"""smjac against the frameworks users come from, on models those frameworks make themselves.

    python3 benchmarks/peers.py            # needs torch and transformers; scikit-learn optional

Nothing is downloaded: each model is built from a small config, saved with ``save_pretrained``
(one file, and again in shards), and smjac is run on the folder as a user would, with the
defaults: ``smjac grad --layer DIR -x x.npy --target ...``. The head's input x is captured with a
forward hook, the framework's gradient of its mean cross-entropy with autograd, and the two
gradients are compared entry by entry (the largest difference relative to the largest entry).
Each line prints the model, what smjac chose and said, and the difference; the run exits 1 when
any difference is over 1e-12 (float64) or a command fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
failures: list[str] = []


def smjac(*args: str) -> subprocess.CompletedProcess[str]:
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")]))
    env = {**os.environ, "PYTHONPATH": path, "COLUMNS": "100"}
    return subprocess.run([sys.executable, "-m", "smjac", *args], capture_output=True, text=True, env=env)


def report(name: str, ours: np.ndarray, theirs: np.ndarray, said: str, tol: float = 1e-12) -> None:
    diff = float(np.max(np.abs(ours - theirs)) / max(np.max(np.abs(theirs)), 1e-300))
    ok = diff <= tol
    if not ok:
        failures.append(name)
    print(
        f"{'ok ' if ok else 'BAD'} {name:44} rel. diff {diff:.2e}   {said.strip().replace(chr(10), ' | ')[:160]}"
    )


def head_check(name: str, model, head_name: str, inputs: dict, folder: Path, targets: np.ndarray) -> None:
    """Save the model, capture the head's input, and compare torch's head gradient with smjac's."""
    import torch

    model = model.double().eval()
    head = dict(model.named_modules())[head_name]
    captured = {}
    hook = head.register_forward_hook(lambda m, args, out: captured.__setitem__("x", args[0]))
    logits = model(**inputs).logits
    hook.remove()
    x = captured["x"]
    if logits.ndim == 3:  # a language model: the last position, as generation scores it
        logits = logits[:, -1, :]
    if x.ndim == 3:  # the last position: a language model scores it; a sequence classifier pools it
        x = x[:, -1, :]
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor(targets))  # mean, torch's default
    # the head's own share of the gradient: through this layer only (a tied head's weight is also
    # the input embedding, whose use there torch's gradient of head.weight would add in)
    leaf = head.weight.detach().clone().requires_grad_()
    bias = 0 if head.bias is None else head.bias.detach()
    assert torch.allclose(x @ head.weight.T + bias, logits, rtol=1e-12, atol=1e-12)  # x is the head's input
    (g,) = torch.autograd.grad(
        torch.nn.functional.cross_entropy(x.detach() @ leaf.T + bias, torch.tensor(targets)), leaf
    )
    assert torch.allclose(
        loss, torch.nn.functional.cross_entropy(x.detach() @ leaf.T + bias, torch.tensor(targets))
    )
    np.save(folder / "x.npy", x.detach().numpy())
    for shards in (None, "20KB"):
        where = folder / (name + ("-shards" if shards else ""))
        model.save_pretrained(where, max_shard_size=shards or "10GB")
        out = folder / f"{name}-grad.npy"
        done = smjac(
            "grad", "--layer", str(where), "-x", str(folder / "x.npy"),
            "--target", ",".join(map(str, targets)), "-o", str(out), "--force",
        )  # fmt: skip
        label = f"{name}{' (shards)' if shards else ''}"
        if done.returncode != 0:
            failures.append(label)
            print(f"BAD {label:44} exit {done.returncode}: {done.stderr.strip()[:300]}")
            continue
        report(label, np.load(out), g.detach().numpy(), done.stderr)


def transformers_heads(folder: Path) -> None:
    import torch
    import transformers as tf

    torch.manual_seed(0)
    ids = torch.randint(0, 50, (4, 6))
    targets = np.array([1, 0, 2, 1])
    small = dict(hidden_size=16, num_attention_heads=2, intermediate_size=32, vocab_size=50)
    bert = tf.BertForSequenceClassification(tf.BertConfig(num_hidden_layers=1, num_labels=3, **small))
    head_check("bert-classifier", bert, "classifier", {"input_ids": ids}, folder, targets)
    distil = tf.DistilBertForSequenceClassification(
        tf.DistilBertConfig(n_layers=1, n_heads=2, dim=16, hidden_dim=32, vocab_size=50, num_labels=3)
    )
    head_check("distilbert-classifier", distil, "classifier", {"input_ids": ids}, folder, targets)
    llama = tf.LlamaForSequenceClassification(
        tf.LlamaConfig(num_hidden_layers=1, num_key_value_heads=2, pad_token_id=0, num_labels=3, **small)
    )
    llama.config.pad_token_id = 0
    head_check("llama-score", llama, "score", {"input_ids": ids % 49 + 1}, folder, targets)
    gpt2 = tf.GPT2LMHeadModel(tf.GPT2Config(n_layer=1, n_head=2, n_embd=16, vocab_size=50, n_positions=16))
    head_check("gpt2-lm_head (tied)", gpt2, "lm_head", {"input_ids": ids}, folder, np.array([3, 7, 11, 49]))


def torch_losses() -> None:
    """torch's CrossEntropyLoss with class weights, ignore_index and label smoothing, if smjac has them."""
    import torch

    import smjac

    rng = np.random.default_rng(3)
    W, X = rng.normal(size=(6, 5)), rng.normal(size=(8, 6))
    t = rng.integers(0, 5, 8)
    t[2] = 4
    w = rng.uniform(0.2, 2.0, 5)
    for kw in (
        {},
        {"class_weights": w},
        {"ignore_index": 4},
        {"label_smoothing": 0.1},
        {"class_weights": w, "ignore_index": 4, "label_smoothing": 0.25},
    ):
        Wt = torch.tensor(W, requires_grad=True)
        tkw = {
            ("weight" if k == "class_weights" else k): (torch.tensor(v) if k == "class_weights" else v)
            for k, v in kw.items()
        }
        loss = torch.nn.functional.cross_entropy(torch.tensor(X) @ Wt, torch.tensor(t), **tkw)
        loss.backward()
        try:
            g = smjac.grad(W, X, target=t, **kw)
        except TypeError as e:
            print(f"--  CrossEntropyLoss {sorted(kw)}: not in smjac yet ({e})")
            continue
        report(f"CrossEntropyLoss {sorted(kw)}", g.W, Wt.grad.numpy(), f"loss {g.loss!r} vs {loss.item()!r}")
        if abs(g.loss - loss.item()) > 1e-12 * abs(loss.item()):
            failures.append(f"loss {sorted(kw)}")


def sklearn_binary() -> None:
    """A two-class LogisticRegression stores coef_ as 1×n: smjac must read it as two classes."""
    try:
        from sklearn.linear_model import LogisticRegression
    except ImportError:
        print("--  scikit-learn not installed")
        return
    rng = np.random.default_rng(5)
    X = rng.normal(size=(40, 3))
    y = (X @ [1.0, -2.0, 0.5] + rng.normal(size=40) > 0).astype(int)
    clf = LogisticRegression().fit(X, y)
    with tempfile.TemporaryDirectory() as d:
        np.save(f"{d}/W.npy", clf.coef_)
        np.save(f"{d}/b.npy", clf.intercept_)
        np.save(f"{d}/X.npy", X)
        done = smjac(
            "forward",
            "-W",
            f"{d}/W.npy",
            "-b",
            f"{d}/b.npy",
            "-x",
            f"{d}/X.npy",
            "--layout",
            "out-in",
            "-f",
            "json",
        )
        if done.returncode != 0:
            failures.append("sklearn binary")
            print(f"BAD sklearn binary: exit {done.returncode}: {done.stderr.strip()[:300]}")
            return
        h = np.array(json.loads(done.stdout)["h"])
        report("sklearn LogisticRegression, two classes", h, clf.predict_proba(X), done.stderr, tol=1e-12)


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        try:
            transformers_heads(Path(d))
        except ImportError as e:
            print(f"--  transformers or torch missing: {e}")
    try:
        torch_losses()
    except ImportError as e:
        print(f"--  torch missing: {e}")
    sklearn_binary()
    print(f"\n{len(failures)} disagreement(s)" + (f": {', '.join(failures)}" if failures else ""))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
