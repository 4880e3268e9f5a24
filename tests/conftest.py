"""Shared fixtures and independent references: the post's own loops and central differences."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings

# In CI the property tests draw the same examples on every run, so a submission's verdict is its
# own and not a dice roll; away from CI (a developer's run) they keep exploring, and what they
# find is kept as an @example.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

# A shell that starts the tests in the background (``pytest &`` in a script) ignores SIGINT, and a
# child inherits an ignored signal: the tests of what a Ctrl-C does would then see nothing happen.
# A handler of this process's own is reset to the default in each child it starts.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# The post's example, typed in from the post (not read from smjac's copies of it).
BLOG_W = np.array([[0.1, 0.2, 0.3, 0.4, 0.5], [0.6, 0.7, 0.8, 0.9, 0.1], [0.11, 0.12, 0.13, 0.14, 0.15]])
BLOG_X = np.array([0.1, 0.5, 0.4])
ROOT = Path(__file__).resolve().parent.parent


# ---- the post's code, kept as it was written: a slow reference with Python loops ----


def post_softmax(Z):
    eZ = np.exp(Z)
    return eZ / np.sum(eZ)


def post_sm_dir(S):
    S_vector = S.reshape(S.shape[0], 1)
    S_matrix = np.tile(S_vector, S.shape[0])
    return np.diag(S) - (S_matrix * np.transpose(S_matrix))


def post_z_dir(Z, W, x):
    dir_matrix = np.zeros((W.shape[0] * W.shape[1], Z.shape[0]))
    for k in range(0, Z.shape[0]):
        for i in range(0, W.shape[1]):
            for j in range(0, W.shape[0]):
                if i == k:
                    dir_matrix[(i * W.shape[0]) + j][k] = x[j]
    return dir_matrix


def post_l_dir_shortcut(W, S, x):
    dir_matrix = np.zeros((W.shape[0] * W.shape[1], W.shape[1]))
    for t in range(0, W.shape[1]):
        for i in range(0, W.shape[1]):
            for j in range(0, W.shape[0]):
                dir_matrix[(i * W.shape[0]) + j][t] = S[t] * ((i == t) - S[i]) * x[j]
    return dir_matrix


# ---- central finite differences, written here independently of smjac.numerical_jacobian ----


def central_diff(f: Callable[[np.ndarray], np.ndarray], v: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """J[:, k] = (f(v + eps e_k) − f(v − eps e_k)) / 2 eps, for a flat v."""
    v = np.asarray(v, dtype=np.float64)
    J = np.empty((np.size(f(v)), v.size))
    for k in range(v.size):
        e = np.zeros_like(v)
        e[k] = eps
        J[:, k] = (np.ravel(f(v + e)) - np.ravel(f(v - e))) / (2 * eps)
    return J


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261124)


def write_matrix(path: Path, a: np.ndarray) -> Path:
    """Write ``a`` in the format ``path``'s suffix names, as a user's tool would."""
    suffix = path.suffix
    if suffix == ".json":
        path.write_text(json.dumps(np.asarray(a).tolist()))
    elif suffix == ".csv":
        rows = np.atleast_2d(a).tolist()
        path.write_text("".join(",".join(repr(v) for v in r) + "\n" for r in rows))
    elif suffix == ".npy":
        np.save(path, a)
    else:
        raise ValueError(suffix)
    return path


@pytest.fixture
def layer_files(tmp_path: Path) -> Callable[..., tuple[Path, Path]]:
    """Write W and x to tmp_path in a format; returns their paths."""

    def make(W: np.ndarray = BLOG_W, x: np.ndarray = BLOG_X, fmt: str = "json") -> tuple[Path, Path]:
        return write_matrix(tmp_path / f"W.{fmt}", W), write_matrix(tmp_path / f"x.{fmt}", x)

    return make
