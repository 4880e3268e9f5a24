"""verify within max_memory: blocks sized from the budget, a mapped answer's pages handed back.

The answers are written by hand from the post's formulas (dh/dz = diag(h) − h hᵀ, and
dh/dW[t, i·n + j] = dh/dz[t, i]·x_j in the in-out layout) and saved as .npy files, opened
memory-mapped as ``smjac verify`` opens them. Peaks are tracemalloc's (numpy's arrays), or the
process's own RssAnon and RssFile in a subprocess.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import smjac
from smjac.formats import npy

MiB = 2**20


def softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


def dh_dW(W, x):
    """The post's dh/dW for one sample, in-out W (n×K): K × K·n, w[i,j] at column i·n + j."""
    h = softmax(x @ W)
    A = np.diag(h) - np.outer(h, h)
    return (A[:, :, None] * x[None, None, :]).reshape(len(h), -1)


def peak_of(f):
    tracemalloc.start()
    try:
        return f(), tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_dh_dw_fits_a_budget_of_a_few_rows_and_its_peak_follows_the_budget(tmp_path, rng):
    # a row of dh/dW is K·n = 20 000 numbers (160 KB); every value of the catalogue was made for a
    # block at once, so 3 MiB was refused (20 rows' worth a row); one value at a time it fits
    n, K = 200, 100
    W, x = rng.normal(size=(n, K)) / 10, rng.normal(size=n)
    np.save(tmp_path / "J.npy", dh_dW(W, x))
    L = smjac.make_layer(W, x)
    small, at_small = peak_of(
        lambda: smjac.layer_verify(L, npy.open_npy(tmp_path / "J.npy"), max_memory=3 * MiB)
    )
    large, at_large = peak_of(
        lambda: smjac.layer_verify(L, npy.open_npy(tmp_path / "J.npy"), max_memory=24 * MiB)
    )
    assert small.ok and large.ok
    assert at_small < 3 * MiB, f"{at_small / MiB:.2f} MiB"
    assert at_large < 24 * MiB, f"{at_large / MiB:.2f} MiB"
    assert at_large > 3 * at_small  # larger blocks where the budget allows: the peak follows it


def resident_file_bytes() -> int:
    """Pages of mapped files this process holds now (RssFile)."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return int(fields["RssFile"].split()[0]) * 1024


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc/self/status (Linux)")
def test_dh_dz_without_its_diagonal_keeps_each_budget_with_the_same_verdict(tmp_path, rng):
    K = 1000  # dh/dz is 8 MB
    W, x = rng.normal(size=(20, K)), rng.normal(size=20)
    h = softmax(x @ W)
    J = -np.outer(h, h)  # diag(h) − h hᵀ with its diagonal zeroed: each diagonal entry off by h(1 − h)
    np.save(tmp_path / "J.npy", J)
    L = smjac.make_layer(W, x)
    whole = smjac.layer_verify(L, J, wrt="z")
    tol = whole.atol + whole.rtol * np.max(np.abs(np.diag(h) - np.outer(h, h)))
    assert whole.outside == np.count_nonzero(h * (1 - h) > tol)
    peaks = []
    for budget in (2 * MiB, 8 * MiB):
        answer = npy.open_npy(tmp_path / "J.npy")
        before = resident_file_bytes()
        v, peak = peak_of(lambda b=budget, a=answer: smjac.layer_verify(L, a, wrt="z", max_memory=b))
        # every page of the answer has been read, and handed back: the map holds none of them
        assert resident_file_bytes() - before < J.nbytes / 8
        assert v.to_dict() == whole.to_dict()
        assert str(v) == str(whole)
        assert peak < budget, f"{peak / MiB:.2f} MiB within {budget / MiB:.0f} MiB"
        peaks.append(peak)
    assert peaks[1] > 2 * peaks[0]


def test_an_answer_of_no_shape_keeps_the_budget_too(rng):
    # the verdict is "shape", but it still says the truth's scale, max|r|: made by rows within the
    # budget (it took 16 MiB blocks of dh/dz whatever max_memory said: 48 MiB here)
    K = 3000
    W, x = rng.normal(size=(20, K)), rng.normal(size=20)
    h = softmax(x @ W)
    L = smjac.make_layer(W, x)
    v, peak = peak_of(lambda: smjac.layer_verify(L, np.zeros((5, 7)), wrt="z", max_memory=2 * MiB))
    assert [d.mistake for d in v.diagnosis] == ["shape"]
    np.testing.assert_allclose(v.scale, np.max(np.abs(np.diag(h) - np.outer(h, h))), rtol=1e-12)
    assert peak < 2 * MiB, f"{peak / MiB:.2f} MiB"


def test_a_column_major_answer_gives_the_same_verdict(tmp_path, rng):
    # a Fortran-ordered .npy is mapped as it is stored: a sample's rows are read as strided views
    # (no copy of the answer), and its pages handed back whole after each block
    n, K = 60, 50  # 3 × 50 × 3000: 3.6 MB, which a copy of the answer would take
    W, X = rng.normal(size=(n, K)) / 10, rng.normal(size=(3, n))
    J = np.stack([dh_dW(W, x) for x in X])
    J[1, 5, 7] += 1.0
    np.save(tmp_path / "C.npy", J)
    np.save(tmp_path / "F.npy", np.asfortranarray(J))
    L = smjac.make_layer(W, X)
    F = npy.open_npy(tmp_path / "F.npy")
    assert F.flags.f_contiguous and not F.flags.c_contiguous
    c = smjac.layer_verify(L, npy.open_npy(tmp_path / "C.npy"), max_memory=MiB)
    f, peak = peak_of(lambda: smjac.layer_verify(L, F, max_memory=MiB))
    assert peak < MiB, f"{peak / MiB:.2f} MiB"
    assert c.to_dict() == f.to_dict()
    assert (c.outside, c.worst[0].index) == (1, (1, 5, 7))


def test_refused_before_any_work_when_one_row_cannot_fit(tmp_path, rng, monkeypatch):
    from smjac.checking import verification

    n, K = 200, 100  # a row of dh/dW is 160 KB; a dozen such arrays at once is over 1 MiB
    W, x = rng.normal(size=(n, K)) / 10, rng.normal(size=n)
    np.save(tmp_path / "J.npy", dh_dW(W, x))

    def no_work(*args, **kwargs):
        raise AssertionError("the comparison started")

    monkeypatch.setattr(verification, "compare", no_work)
    with pytest.raises(
        smjac.InputError,
        match=r"verify of dh/dW \(100 × 20,000\) would take [0-9.]+ MiB, over the memory budget of "
        r"1\.0 MiB \(max_memory\)\. That is a row \(20,000 numbers\) at a time: .*raise max_memory$",
    ):
        smjac.layer_verify(smjac.make_layer(W, x), npy.open_npy(tmp_path / "J.npy"), max_memory=MiB)


def test_the_command_line_refuses_in_its_flags_and_verifies_within_a_budget(tmp_path, rng):
    from typer.testing import CliRunner

    from smjac.cli import app

    n, K = 200, 100
    W, x = rng.normal(size=(n, K)) / 10, rng.normal(size=n)
    np.save(tmp_path / "W.npy", W)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "J.npy", dh_dW(W, x))
    args = [
        "verify",
        "-W",
        str(tmp_path / "W.npy"),
        "-x",
        str(tmp_path / "x.npy"),
        "--jacobian",
        str(tmp_path / "J.npy"),
    ]
    refused = CliRunner().invoke(app, [*args, "--max-memory", "1M"], env={"NO_COLOR": "1"})
    assert refused.exit_code == 2
    assert (
        "over the memory budget of 1.0 MiB (--max-memory). That is a row (20,000 numbers)" in refused.stderr
    )
    assert "raise --max-memory" in refused.stderr
    assert refused.stdout == ""
    ran = CliRunner().invoke(app, [*args, "--max-memory", "3M", "-f", "json"], env={"NO_COLOR": "1"})
    assert ran.exit_code == 0, ran.output
    assert json.loads(ran.stdout)["ok"] is True


MAPPED = textwrap.dedent(
    """
    import sys, threading, time
    import numpy as np
    import smjac
    from smjac.formats import npy

    def rss():
        fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
        return int(fields["RssAnon"].split()[0]) * 1024, int(fields["RssFile"].split()[0]) * 1024

    W, x = np.load(sys.argv[1]), np.load(sys.argv[2])
    L = smjac.make_layer(W, x)
    answer = npy.open_npy(sys.argv[3])
    smjac.layer_verify(L, np.ones((3, 3)), wrt="z")  # everything imported and warm
    anon0, file0 = rss()
    peak = [0, 0]
    done = threading.Event()

    def poll():
        while not done.is_set():
            peak[:] = [max(p, r) for p, r in zip(peak, rss())]
            time.sleep(0.0005)

    t = threading.Thread(target=poll)
    t.start()
    v = smjac.layer_verify(L, answer, max_memory=int(sys.argv[4]))
    done.set()
    t.join()
    print(v.ok, peak[0] - anon0, peak[1] - file0, rss()[1] - file0)
    """
)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc/self/status (Linux)")
def test_a_mapped_answer_s_pages_are_handed_back_as_blocks_are_done(tmp_path, rng):
    # dh/dW is 100 × 50 000: 40 MB mapped, 8 MiB of budget. The kernel may map a file's pages in
    # folios of up to 2 MiB, so a 0.7 MB block can hold 4 MiB resident: the file is large enough
    # that a tenth of it is well above that, and all of it (nothing handed back) well below
    n, K = 500, 100
    W, x = rng.normal(size=(n, K)) / 10, rng.normal(size=n)
    np.save(tmp_path / "W.npy", W)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "J.npy", dh_dW(W, x))
    size = (tmp_path / "J.npy").stat().st_size
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            MAPPED,
            *(str(tmp_path / f) for f in ("W.npy", "x.npy", "J.npy")),
            str(8 * MiB),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    ok, anon, file_peak, file_after = out.stdout.split()
    assert ok == "True"
    # read pages stayed resident until the mapping went: the whole 40 MB by the end
    assert int(file_peak) < size / 4, f"{int(file_peak) / MiB:.1f} MiB of {size / MiB:.1f} resident at once"
    assert int(file_after) < size / 8, f"{int(file_after) / MiB:.1f} MiB still resident"
    assert int(anon) < 8 * MiB, f"{int(anon) / MiB:.1f} MiB"
