"""Progress on stderr: each long job reports its work to the writer's one bar, which appears only
after about a second (a fake clock here, never a timing), only at a terminal or when asked, never
with --quiet, and never on stdout."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pytest
from numpy.testing import assert_allclose

from smjac import maths
from smjac.formats import document
from smjac.outputs import results, writer
from smjac.outputs.progress import Progress
from smjac.outputs.writer import Environment, Options, Result, Writer

from .conftest import ROOT


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def bar(total=100, *, enabled=True, clock=None, **kw):
    err = io.StringIO()
    return Progress(
        total, "the work", stream=err, enabled=enabled, clock=clock or Clock(), watch=False, **kw
    ), err


def test_the_bar_appears_only_once_a_second_has_passed():
    clock = Clock()
    p, err = bar(clock=clock)
    p(10)
    clock.now += 0.9
    p(10)
    assert err.getvalue() == ""  # quick work draws nothing
    clock.now += 0.2
    p(10)
    assert p.bar is not None and "the work" in err.getvalue()
    p.close()
    assert p.bar is None


@pytest.mark.parametrize(
    "unit, total, shown", [("bytes", 2**20, "MiB"), ("samples", 2000, "samples"), ("bytes", 0, "0:00")]
)
def test_the_bar_says_what_it_counts(unit, total, shown):
    clock = Clock()
    p, err = bar(total, clock=clock, unit=unit)
    clock.now += 5
    p(total // 2)
    p.bar.refresh()
    assert shown in err.getvalue()  # a size, a count of samples, or (total unknown) the time taken
    p.close()


def test_a_disabled_bar_draws_nothing_whatever_the_time():
    clock = Clock()
    p, err = bar(enabled=False, clock=clock)
    clock.now += 60
    p(100)
    p.phase("writing J.csv", 10)
    p.close()
    assert err.getvalue() == "" and p.bar is None


def test_a_silent_long_call_still_shows_the_bar(monkeypatch):
    # one BLAS call reports nothing until it ends: the watcher thread puts the bar up
    monkeypatch.setattr(Progress, "DELAY", 0.0)
    err = io.StringIO()
    p = Progress(0, "the gradient", stream=err, enabled=True)
    for _ in range(500):  # the watcher runs on its own; wait for it, not for a time
        if p.bar is not None:
            break
        import time

        time.sleep(0.01)
    assert p.bar is not None
    p.close()
    assert "the gradient" in err.getvalue()


def env(*, stdout_isatty=False, stderr_isatty=True):
    return Environment(
        stdout=io.StringIO(), stderr=io.StringIO(), stdout_isatty=stdout_isatty,
        stderr_isatty=stderr_isatty, no_color=True, width=100, height=40,
    )  # fmt: skip


def counted(calls: list[int]) -> Result:
    def data(progress):
        for _ in range(4):
            progress(25)
            calls.append(25)
        return document.Document({"value": np.array(1.0)}, matrix="value")

    return Result(results.ENTRY, "the work", data, work=100, unit="samples")


@pytest.mark.parametrize(
    "options, stderr_isatty, drawn",
    [
        ({}, True, True),  # a terminal
        ({}, False, False),  # a pipe or a file: off
        ({"progress": True}, False, True),  # unless asked
        ({"quiet": True}, True, False),  # --quiet
        ({"quiet": True, "progress": True}, True, False),
    ],
)
def test_the_writer_shows_progress_only_where_it_should_and_never_on_stdout(
    monkeypatch, options, stderr_isatty, drawn
):
    monkeypatch.setattr(Progress, "DELAY", 0.0)
    e = env(stderr_isatty=stderr_isatty)
    calls: list[int] = []
    Writer(results.ENTRY, Options(fmt=writer.Format.json, **options), e).write(counted(calls))
    assert calls == [25] * 4
    assert e.stdout.getvalue() == '{"value": 1.0}\n' or e.stdout.getvalue().startswith("{")
    assert ("the work" in e.stderr.getvalue()) is drawn
    assert "\x1b" not in e.stdout.getvalue()


def _mapped(tmp_path, N=50, n=3, K=4):
    rng = np.random.default_rng(0)
    W, X = rng.normal(size=(n, K)), rng.normal(size=(N, n))
    np.save(tmp_path / "X.npy", X)
    from smjac import inputs

    Xm = inputs.map_npy(tmp_path / "X.npy")
    return W, X, Xm, maths.make_layer(W, Xm[:1])


def test_a_mapped_gradient_reports_each_chunk_of_samples(tmp_path):
    W, X, Xm, L = _mapped(tmp_path)
    res = results.grad_mapped(L, Xm, target=1, upstream=None, reduce="sum", precision=6, budget=4 * 160)
    assert (res.work, res.unit) == (50, "samples")
    done: list[int] = []
    doc = res.data(done.append)
    assert sum(done) == 50 and len(done) > 1  # chunk by chunk
    assert_allclose(doc.fields["grad"], maths.grad(W, X, target=1, reduce="sum").W, rtol=1e-12)


def test_a_mapped_forward_reports_each_chunk_whole_or_as_csv(tmp_path):
    W, X, Xm, L = _mapped(tmp_path)
    res = results.forward_mapped(L, Xm, precision=6, sample=0, budget=2**30)
    assert (res.work, res.unit) == (50, "samples")
    done: list[int] = []
    doc = res.data(done.append)
    assert sum(done) == 50
    assert_allclose(doc.fields["h"], maths.forward(W, X).h, rtol=1e-13)
    done.clear()
    assert res.csv_chunks is not None
    "".join(res.csv_chunks(done.append))
    assert sum(done) == 50


def test_grad_chunks_reports_rows(tmp_path):
    W, _, Xm, _ = _mapped(tmp_path, N=9)
    done: list[int] = []
    maths.grad_chunks(W, Xm, target=0, chunk_bytes=3 * 8 * 8, progress=done.append)
    assert sum(done) == 9 and len(done) > 1


def test_verify_compares_in_the_writers_hands(monkeypatch):
    # the comparison runs when the writer asks for the data, under its bar, not while building
    import smjac.checking.verification as verification

    called: list[bool] = []
    real = verification.layer_verify

    def spy(*args, **kwargs):
        called.append(True)
        return real(*args, **kwargs)

    monkeypatch.setattr(verification, "layer_verify", spy)
    L = maths.make_layer([[0.1, 0.2], [0.3, 0.4]], [1.0, 2.0])
    res = results.verify(L, maths.layer_jacobian(L, of="h", wrt="z"), of="h", wrt="z")
    assert called == []
    doc = res.data(lambda n: None)
    assert called == [True] and doc.fields["ok"] is True


def test_writing_a_large_file_is_followed_piece_by_piece(monkeypatch, tmp_path):
    monkeypatch.setattr(writer, "PIECE", 1000)
    seen: list[int] = []
    atomic_write = writer.atomic.write_atomic
    piece_writer = writer._in_pieces(b"x" * 4500, seen.append)
    atomic_write(tmp_path / "f.csv", piece_writer)
    assert seen == [1000, 1000, 1000, 1000, 500] and (tmp_path / "f.csv").read_bytes() == b"x" * 4500


@pytest.mark.parametrize("quiet", [False, True])
def test_work_before_the_result_gets_the_same_bar(monkeypatch, quiet):
    # reading a large W, say: the command wraps it, and the same rules hold
    monkeypatch.setattr(Progress, "DELAY", 0.0)
    e = env()
    w = Writer(results.ENTRY, Options(fmt=writer.Format.json, quiet=quiet), e)
    with w.working("reading W.npy", 1000) as progress:
        progress(600)
    assert ("reading W.npy" in e.stderr.getvalue()) is not quiet
    assert e.stdout.getvalue() == ""


@pytest.mark.parametrize("no_color", [False, True])
def test_the_bar_is_in_colour_only_where_colour_is(no_color):
    clock = Clock()
    err = io.StringIO()
    p = Progress(10, "the work", stream=err, enabled=True, clock=clock, watch=False, color=not no_color)
    clock.now += 5
    p(5)
    p.bar.refresh()
    p.close()
    assert ("\x1b[32m" in err.getvalue()) is not no_color  # rich's green, for the spinner and size


# ------------------------------------------------------------- --progress on the command line

BLOG = ["-W", str(ROOT / "samples/blog/W.json"), "-x", str(ROOT / "samples/blog/x.json")]
COMPUTING = {
    "forward": [],
    "jacobian": [],
    "grad": ["--target", "1"],
    "check": [],
    "verify": ["--jacobian", str(ROOT / "samples/mistakes/diagonal-only.json")],
}


def cli(*args: str):
    from typer.testing import CliRunner

    from smjac.cli import app

    return CliRunner().invoke(app, list(args), env={"COLUMNS": "100", "NO_COLOR": "1"})


@pytest.mark.parametrize("command", sorted(COMPUTING))
@pytest.mark.parametrize(
    "flags, drawn",
    [
        ([], False),  # CliRunner's stderr is no terminal: off by default
        (["--progress"], True),  # asked for, in a pipe too
        (["--no-progress"], False),
        (["--progress", "--quiet"], False),  # --quiet still silences it
    ],
)
def test_every_computing_command_takes_progress(monkeypatch, command, flags, drawn):
    monkeypatch.setattr(Progress, "DELAY", 0.0)  # any work is long enough
    result = cli(command, *BLOG, *COMPUTING[command], "-f", "json", *flags)
    assert result.exit_code in (0, 1), result.stderr
    json.loads(result.stdout)  # the result alone on stdout, bar or no bar
    # the bar of reading the layer, drawn before any result: the same rules as the result's own
    # (the label is cut to the terminal's width, which a long checkout path can reach: W's name is first)
    assert (f"reading {BLOG[1]}" in result.stderr) is drawn
    assert ("\x1b[" in result.stderr) is drawn


SLOW_READ = (
    "import sys, time; from smjac import inputs; read = inputs.load_layer\n"
    "def slow(*a, **k):\n    time.sleep(1.6); return read(*a, **k)\n"
    "inputs.load_layer = slow\nfrom smjac.cli import main; sys.argv[0] = 'smjac'; main()"
)


@pytest.mark.parametrize("flag, drawn", [("--progress", True), ("--no-progress", False), (None, False)])
def test_a_slow_read_in_a_pipe_shows_its_bar_only_when_asked(flag, drawn):
    # a real process, its stderr a pipe, a read slowed past the bar's one second
    args = ["forward", "-W", "samples/blog/W.json", "-x", "samples/blog/x.json", "-f", "json"]
    proc = subprocess.run(
        [sys.executable, "-c", SLOW_READ, *args, *([flag] if flag else [])],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert ("reading samples/blog/W.json, samples/blog/x.json" in proc.stderr) is drawn, proc.stderr
    assert json.loads(proc.stdout)["h"]


@pytest.mark.parametrize(
    "args, read",
    [
        (["grad", *BLOG, "--upstream", "{file}"], "[0.5, 0, 0, -0.5, 0]"),  # dLoss/dh, K = 5
        (["verify", *BLOG, "--grad-b", "{file}", "--target", "1"], "[0.1, 0.2, 0.3, 0.4, 0.5]"),  # an answer
    ],
)
def test_reading_an_upstream_gradient_or_an_answer_has_its_bar_too(monkeypatch, tmp_path, args, read):
    monkeypatch.setattr(Progress, "DELAY", 0.0)
    path = tmp_path / "given.json"
    path.write_text(read)
    given = [str(path) if a == "{file}" else a for a in args]
    result = cli(*given, "-f", "json", "--progress")
    assert result.exit_code in (0, 1), result.stderr
    assert f"reading {path}" in result.stderr
