"""The command line, in process with CliRunner, and once as the installed script."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from typer.testing import CliRunner

from smjac import __version__
from smjac.cli import app

from .conftest import BLOG_W, BLOG_X, ROOT, post_l_dir_shortcut, post_softmax, write_matrix

ENV = {"COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
SAMPLE = ["-W", str(ROOT / "samples/blog/W.json"), "-x", str(ROOT / "samples/blog/x.json")]
POST_H = post_softmax(BLOG_W.T @ BLOG_X)


def run(*args: str, input: str | bytes | None = None):
    return CliRunner().invoke(app, list(args), input=input, env=ENV)


def test_version():
    result = run("--version")
    assert result.exit_code == 0 and result.stdout == f"smjac {__version__}\n"


@pytest.mark.parametrize("command", ["forward", "jacobian", "grad", "check", "demo"])
def test_every_command_has_help_with_an_example(command):
    result = run(command, "--help")
    assert result.exit_code == 0
    assert re.search(rf"Examples?:\n\s+smjac {command}\b", result.stdout)


def test_forward_csv_in_a_pipe_is_exact():
    result = run("forward", *SAMPLE)
    assert result.exit_code == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header == "z,h" and result.stderr == ""
    cells = [row.split(",") for row in rows]
    assert all(repr(float(c)) == c for row in cells for c in row)  # shortest text that round-trips
    values = np.array(cells, dtype=float)
    assert_allclose(values[:, 0], BLOG_W.T @ BLOG_X, rtol=1e-15)
    assert_allclose(values[:, 1], POST_H, rtol=1e-15)


def test_forward_json():
    result = run("forward", *SAMPLE, "--format", "json")
    doc = json.loads(result.stdout)
    assert sorted(doc) == ["h", "z"]
    assert_allclose(doc["h"], POST_H, rtol=1e-15)


def test_forward_table_for_a_person():
    result = run("forward", *SAMPLE, "-f", "table", "--precision", "8")
    assert result.exit_code == 0
    assert "z = Wᵀx, h = softmax(z)" in result.stdout
    for figure in ["0.19091352", "0.20353145", "0.21698333", "0.23132428", "0.15724743"]:
        assert figure in result.stdout


@pytest.mark.parametrize("method", ["shortcut", "chain"])
@pytest.mark.parametrize("fmt", ["json", "csv", "npy"])
def test_jacobian_reads_every_format(tmp_path, method, fmt):
    W = write_matrix(tmp_path / f"W.{fmt}", BLOG_W)
    x = write_matrix(tmp_path / f"x.{fmt}", BLOG_X)
    result = run("jacobian", "-W", str(W), "-x", str(x), "--method", method, "-f", "json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["of"] == "h" and doc["wrt"] == "W" and doc["method"] == method and doc["shape"] == [5, 15]
    expected = post_l_dir_shortcut(BLOG_W, POST_H, BLOG_X).T
    assert_allclose(doc["jacobian"], expected, atol=1e-16)


def test_jacobian_csv_loads_back_exactly(tmp_path):
    result = run("jacobian", *SAMPLE, "--wrt", "x")
    rows = np.array([[float(v) for v in line.split(",")] for line in result.stdout.splitlines()])
    assert rows.shape == (5, 3)
    J = np.asarray(json.loads(run("jacobian", *SAMPLE, "--wrt", "x", "-f", "json").stdout)["jacobian"])
    assert_array_equal(rows, J)


@pytest.mark.parametrize(
    ("of", "wrt", "shape"), [("h", "z", [5, 5]), ("z", "W", [5, 15]), ("h", "b", [5, 5])]
)
def test_jacobian_of_and_wrt(of, wrt, shape):
    doc = json.loads(run("jacobian", *SAMPLE, "--of", of, "--wrt", wrt, "-f", "json").stdout)
    assert doc["shape"] == shape and np.shape(doc["jacobian"]) == tuple(shape)


def test_jacobian_table_labels_the_weights():
    result = run("jacobian", *SAMPLE, "-f", "table", "--precision", "5")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    header = next(line for line in lines if "w[0,0]" in line)
    assert header.split() == [f"w[{i},{j}]" for i in range(5) for j in range(3)]
    h1 = next(line for line in lines if line.lstrip().startswith("h₁"))
    assert h1.split()[5] == "0.08105"  # the post's dh₁/dw[1,1]
    assert result.stderr == ""


def test_a_wide_table_is_elided_with_a_hint(tmp_path, rng):
    W = write_matrix(tmp_path / "W.npy", rng.normal(size=(30, 40)))
    x = write_matrix(tmp_path / "x.npy", rng.normal(size=30))
    result = CliRunner().invoke(
        app, ["jacobian", "-W", str(W), "-x", str(x), "-f", "table"], env={**ENV, "COLUMNS": "100"}
    )
    assert result.exit_code == 0
    assert "…" in result.stdout and "⋮" in result.stdout
    assert max(len(line) for line in result.stdout.splitlines()) <= 100
    assert "showing 16 of 40 rows" in result.stderr and "-o FILE" in result.stderr


def test_grad_with_target():
    result = run("grad", *SAMPLE, "--target", "3", "-f", "json")
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert_allclose(doc["grad"], np.outer(BLOG_X, POST_H - np.eye(5)[3]), atol=1e-16)
    assert doc["loss"] == pytest.approx(-np.log(POST_H[3]), rel=1e-15)


def test_grad_csv_puts_the_loss_on_stderr():
    result = run("grad", *SAMPLE, "--target", "0")
    assert result.exit_code == 0
    assert len(result.stdout.splitlines()) == 3
    loss = float(result.stderr.split("loss (= ")[1].split(")")[0])
    assert loss == pytest.approx(-np.log(POST_H[0]), rel=1e-14)
    assert "CSV holds grad only, not loss" in result.stderr and ".json or .npz holds it all" in result.stderr


def test_grad_with_all_ones_upstream_is_zero_and_says_why(tmp_path):
    up = write_matrix(tmp_path / "g.json", np.ones(5))
    result = run("grad", *SAMPLE, "--upstream", str(up), "-f", "json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {"grad": np.zeros((3, 5)).tolist(), "loss": None}
    assert "each column of dh/dW sums to 0" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give exactly one of --target K or --upstream FILE"),
        (("--target", "5"), "target class 5 is out of range: K = 5"),
        (("--target", "-1"), "-1"),
    ],
)
def test_grad_usage_errors(args, message):
    result = run("grad", *SAMPLE, *args)
    assert result.exit_code == 2
    assert message in result.stderr and result.stdout == ""


def test_grad_upstream_of_wrong_length(tmp_path):
    up = write_matrix(tmp_path / "g.json", np.ones(4))
    result = run("grad", *SAMPLE, "--upstream", str(up))
    assert result.exit_code == 2
    assert "upstream has shape (4,) but the layer has K = 5 outputs" in result.stderr


def test_check_passes_on_the_sample():
    result = run("check", *SAMPLE, "-f", "json")
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert doc["ok"] is True and len(doc["checks"]) == 12
    assert all(c["ok"] and c["max_error"] <= c["tolerance"] for c in doc["checks"])


def test_check_exits_1_on_a_disagreement():
    # Zero tolerance: finite differences can only agree to rounding, so those checks fail.
    result = run("check", *SAMPLE, "--rtol", "0", "--atol", "0", "-f", "table")
    assert result.exit_code == 1
    assert "checks fail" in result.stdout and "FAIL" in result.stdout


def test_check_refuses_a_layer_past_max_weights():
    result = run("check", *SAMPLE, "--max-weights", "14")
    assert result.exit_code == 2 and result.stdout == ""
    assert "K·n = 15 weights over --max-weights 14" in result.stderr
    assert "about 152 forward passes" in result.stderr  # 4 · (2·15 + 3 + 5)
    batch = ["-W", str(ROOT / "samples/batch/W.json"), "-x", str(ROOT / "samples/batch/X.json")]
    result = run("check", *batch, "--max-weights", "59")
    assert result.exit_code == 2 and "15 weights and 4 samples, 60 in all, over" in result.stderr
    assert run("check", *batch, "--max-weights", "60").exit_code == 0
    assert run("check", *batch, "--max-weights", "0").exit_code == 0
    result = run("check", *batch, "--max-weights", "39", "--probes", "10")
    assert result.exit_code == 2 and "--probes 10 weights and 4 samples, 40 in all, over" in result.stderr


def test_check_probes_a_random_few():
    result = run("check", *SAMPLE, "--probes", "4", "--seed", "1", "--max-weights", "4", "-f", "json")
    assert result.exit_code == 0, result.stderr
    names = [c["name"] for c in json.loads(result.stdout)["checks"]]
    assert "dh/dW = finite differences (4 of 15 columns)" in names
    assert "dh/dx = finite differences" in names  # n = 3: all of them
    assert run("check", *SAMPLE, "--probes", "0").exit_code == 2


def test_check_csv_has_a_header():
    lines = run("check", *SAMPLE).stdout.splitlines()
    assert lines[0] == "name,max_error,tolerance,ok" and len(lines) == 13


def test_demo_walks_through_the_post():
    result = run("demo")
    assert result.exit_code == 0
    for step in ("1 · the layer", "dh/dz = diag(h) − hhᵀ", "the shortcut", "summing the columns gives zero"):
        assert step in result.stdout
    assert "0.08105" in result.stdout and "0.19091352" in result.stdout


# ---------------------------------------------------------------- errors and files


def test_shape_mismatch_is_one_line_and_exit_2(tmp_path):
    x = write_matrix(tmp_path / "x.json", np.ones(4))
    result = run("forward", "-W", SAMPLE[1], "-x", str(x))
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr == (
        f"Error: {SAMPLE[1]} has shape (3, 5) but {x} has 4 entries; "
        f"with --layout in-out W is n×K (one row per input), so {x} needs 3 entries or {SAMPLE[1]} 4 rows\n"
    )


def test_missing_file_is_a_usage_error():
    result = run("forward", "-W", "nope.json", "-x", SAMPLE[3])
    assert result.exit_code == 2 and "nope.json" in result.stderr and result.stdout == ""


def test_stdin_input():
    result = run("forward", "-W", SAMPLE[1], "-x", "-", input="0.1,0.5,0.4\n")
    assert result.exit_code == 0 and result.stdout == run("forward", *SAMPLE).stdout


def test_dash_twice():
    result = run("forward", "-W", "-", "-x", "-", input="[1]")
    assert result.exit_code == 2 and "- given twice" in result.stderr


@pytest.mark.parametrize("suffix", ["npy", "csv", "json", "npz"])
def test_output_file_round_trips(tmp_path, suffix):
    out = tmp_path / f"J.{suffix}"
    result = run("jacobian", *SAMPLE, "-o", str(out))
    assert result.exit_code == 0 and result.stdout == "" and f"wrote {out}" in result.stderr
    J = np.asarray(json.loads(run("jacobian", *SAMPLE, "-f", "json").stdout)["jacobian"])
    if suffix == "npy":
        back = np.load(out)
    elif suffix == "npz":
        back = np.load(out)["jacobian"]
    elif suffix == "csv":
        back = np.loadtxt(out, delimiter=",")
    else:
        back = np.asarray(json.loads(out.read_text())["jacobian"])
    assert_array_equal(back, J)


def test_output_is_not_clobbered_without_force(tmp_path):
    out = tmp_path / "J.npy"
    out.write_bytes(b"keep me")
    result = run("jacobian", *SAMPLE, "-o", str(out))
    assert result.exit_code == 2 and "exists; add --force" in result.stderr
    assert out.read_bytes() == b"keep me"
    assert run("jacobian", *SAMPLE, "-o", str(out), "--force").exit_code == 0
    assert np.load(out).shape == (5, 15)
    assert sorted(os.listdir(tmp_path)) == ["J.npy"]


def test_output_and_format_together_print_too(tmp_path):
    result = run("forward", *SAMPLE, "-o", str(tmp_path / "f.json"), "-f", "csv")
    assert result.exit_code == 0 and result.stdout.startswith("z,h\n")


def test_bad_output_leaves_nothing(tmp_path):
    result = run("forward", *SAMPLE, "-o", str(tmp_path / "f.npy"))
    assert (
        result.exit_code == 2
        and "cannot be .npy; use .csv, .json, .md, .tex, .npz, .png, .svg or .pdf" in result.stderr
    )
    result = run("forward", *SAMPLE, "-o", str(tmp_path / "missing" / "f.json"))
    assert result.exit_code == 2 and "does not exist" in result.stderr
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(("suffix", "fmt"), [("md", "markdown"), ("tex", "latex")])
def test_tables_as_documents_in_files(tmp_path, suffix, fmt):
    out = tmp_path / f"J.{suffix}"
    result = run("jacobian", *SAMPLE, "--precision", "4", "-o", str(out))
    assert result.exit_code == 0 and result.stdout == "" and f"wrote {out}" in result.stderr
    text = out.read_text()
    assert text == run("jacobian", *SAMPLE, "--precision", "4", "-f", fmt).stdout
    J = np.asarray(json.loads(run("jacobian", *SAMPLE, "-f", "json").stdout)["jacobian"])
    numbers = [float(c) for c in re.findall(r"-?\d+\.\d{4}\b", text)]
    assert_array_equal(numbers, np.round(J, 4).reshape(-1))


def test_a_batch_document_shows_one_sample_and_says_so(tmp_path):
    batch = ["-W", str(ROOT / "samples/batch/W.json"), "-x", str(ROOT / "samples/batch/X.json")]
    result = run("forward", *batch, "--sample", "1", "-o", str(tmp_path / "f.md"))
    assert result.exit_code == 0 and "showing sample 1 of" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["jacobian", *SAMPLE, "--legend"],
            "the legend is a table that markdown cannot hold; use .csv or .json",
        ),
        (["check", *SAMPLE], None),
    ],
)
def test_documents_only_for_what_has_a_table(tmp_path, args, message):
    md, tex = tmp_path / "r.md", tmp_path / "r.tex"
    result = run(*args, "-o", str(md))
    if message:
        assert result.exit_code == 2 and message in result.stderr
        assert os.listdir(tmp_path) == []
    else:
        assert result.exit_code == 0 and md.read_text().startswith("| | max error | tolerance |")
        result = run(*args, "-o", str(tex))
        assert result.exit_code == 2 and "latex cannot hold; use .csv, .json or .md" in result.stderr
        assert os.listdir(tmp_path) == ["r.md"]


@pytest.mark.parametrize(
    ("args", "fmt", "message"),
    [
        (
            ["jacobian", *SAMPLE, "--legend"],
            "markdown",
            "a table that markdown cannot hold; use table, csv or json",
        ),
        (
            ["jacobian", *SAMPLE, "--legend"],
            "latex",
            "a table that latex cannot hold; use table, csv or json",
        ),
        (
            ["jacobian", *SAMPLE, "--legend"],
            "heatmap",
            "a table, not a matrix, so it has no heatmap; use table, csv or json",
        ),
        # check's --format offers only what its report can be: click refuses the rest
        (["check", *SAMPLE], "latex", "'latex' is not one of 'table', 'csv', 'json', 'markdown'"),
        (["check", *SAMPLE], "heatmap", "'heatmap' is not one of 'table', 'csv', 'json', 'markdown'"),
    ],
)
def test_a_table_of_its_own_is_refused_as_a_matrix_and_nothing_is_written(tmp_path, args, fmt, message):
    # One rule for --format and for -o FILE.md / FILE.tex: what a legend or a report can become.
    out = tmp_path / "r.json"
    result = run(*args, "-f", fmt, "-o", str(out))
    assert result.exit_code == 2
    assert message in " ".join(result.stderr.split())
    assert os.listdir(tmp_path) == []


def test_output_problems_are_found_before_any_work(tmp_path):
    (tmp_path / "bad.json").write_text("[1, 2,")  # would fail to load, if it were read
    bad = ["-W", str(tmp_path / "bad.json"), "-x", str(tmp_path / "bad.json")]
    result = run("jacobian", *bad, "-o", str(tmp_path / "J.txt"))
    assert result.exit_code == 2
    assert (
        "suffix '.txt'; a Jacobian can be .csv, .json, .md, .tex, .npy, .npz, .png, .svg or .pdf"
        in result.stderr
    )
    (tmp_path / "J.md").write_text("keep me")
    result = run("grad", *bad, "--target", "0", "-o", str(tmp_path / "J.md"))
    assert result.exit_code == 2 and "exists; add --force" in result.stderr
    assert (tmp_path / "J.md").read_text() == "keep me"


MODEL = [
    "--layer",
    str(ROOT / "samples/model/classifier.safetensors"),
    "-x",
    str(ROOT / "samples/model/x.json"),
]
PICTURES = ".png, .svg or .pdf"


@pytest.mark.parametrize(
    ("args", "can_be"),
    [
        (["forward", *SAMPLE], f"the forward pass (z and h) can be .csv, .json, .md, .tex, .npz, {PICTURES}"),
        (["jacobian", *SAMPLE], f"a Jacobian can be .csv, .json, .md, .tex, .npy, .npz, {PICTURES}"),
        (["jacobian", *SAMPLE, "--legend"], "the legend can be .csv or .json"),
        (["jacobian", *SAMPLE, "--entry", "0,0,0"], "one entry can be .csv, .json, .npy or .npz"),
        (["jacobian", *SAMPLE, "-f", "factored"], "the factors can be .json or .npz"),
        (
            ["grad", *SAMPLE, "--target", "0"],
            f"the gradient can be .csv, .json, .md, .tex, .npy, .npz, {PICTURES}",
        ),
        (["grad", *MODEL, "--target", "0"], ".npy, .npz, .png, .svg, .pdf or .safetensors"),
        (["check", *SAMPLE], "a check report can be .csv, .json or .md"),
        (
            ["verify", *SAMPLE, "--grad", str(ROOT / "samples/blog/W.json"), "--target", "0"],
            "a verdict can be .json",
        ),
    ],
)
def test_an_unknown_suffix_is_answered_with_what_this_result_can_be(tmp_path, args, can_be):
    # jacobian said "smjac writes ... or .safetensors", which only grad of a checkpoint writes
    out = tmp_path / "r.xyz"
    result = run(*args, "-o", str(out))
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.startswith(f"Error: {out}: suffix '.xyz'; ") and result.stderr.endswith(
        f"{can_be}\n"
    )
    assert os.listdir(tmp_path) == []


def test_input_size_cap_from_the_environment():
    result = CliRunner().invoke(app, ["forward", *SAMPLE], env={**ENV, "SMJAC_MAX_INPUT_BYTES": "20"})
    assert result.exit_code == 2 and "input size cap of 20 bytes" in result.stderr


def test_installed_script_runs():
    script = Path(sys.executable).parent / "smjac"
    assert script.exists(), "install the project first: pip install -e '.[dev]'"
    proc = subprocess.run(
        [str(script), "jacobian", *SAMPLE, "-f", "json"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["shape"] == [5, 15]
    bad = subprocess.run(
        [str(script), "forward", "-W", SAMPLE[1], "-x", SAMPLE[1]], capture_output=True, text=True
    )
    assert bad.returncode == 2 and bad.stderr.startswith("Error: ") and "Traceback" not in bad.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["forward", "--help"],
        ["grad", *SAMPLE],  # a usage error
        ["forward", *SAMPLE, "--bogus"],
        ["jacobian", *SAMPLE, "--wrt", "z", "-f", "json"],
        ["nosuch"],
        ["--version"],
    ],
)
def test_the_entry_point_builds_one_command_and_behaves_as_the_whole_app(args):
    def output(code: str) -> tuple[int, str, str]:
        env = {**os.environ, **ENV}
        proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env)
        return proc.returncode, proc.stdout, proc.stderr

    lean = output("import sys; from smjac.cli import main; sys.argv[0] = 'smjac'; main()")
    whole = output("import sys; from smjac.cli import app; app(sys.argv[1:], prog_name='smjac')")
    assert lean == whole


def test_the_entry_point_flushes_a_large_output_before_it_ends(tmp_path, rng):
    np.save(tmp_path / "W.npy", rng.normal(size=(25, 25)))
    np.save(tmp_path / "x.npy", rng.normal(size=25))
    args = ["jacobian", "-W", str(tmp_path / "W.npy"), "-x", str(tmp_path / "x.npy"), "-f", "csv"]
    code = "import sys; from smjac.cli import main; sys.argv[0] = 'smjac'; main()"
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stderr == ""
    assert len(proc.stdout) > 300_000 and proc.stdout == run(*args).stdout


def test_the_entry_point_exits_the_ordinary_way_under_a_tracer():
    # Tracers and profilers (coverage) save their data in atexit hooks, which must run then.
    code = (
        "import atexit, sys\n"
        "from smjac.cli import main\n"
        "atexit.register(print, 'atexit ran')\n"
        "if sys.argv[1] == 'traced':\n"
        "    sys.settrace(lambda *a: None)\n"
        "sys.argv[1:] = ['--version']\n"
        "main()\n"
    )
    traced = subprocess.run([sys.executable, "-c", code, "traced"], capture_output=True, text=True)
    plain = subprocess.run([sys.executable, "-c", code, "plain"], capture_output=True, text=True)
    assert traced.returncode == plain.returncode == 0
    assert traced.stdout == f"smjac {__version__}\natexit ran\n"
    assert plain.stdout == f"smjac {__version__}\n"  # ended without the interpreter's teardown


def test_python_dash_m():
    proc = subprocess.run([sys.executable, "-m", "smjac", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout == f"smjac {__version__}\n"


@pytest.mark.parametrize("fmt", ["csv", "json", "table"])
def test_a_closed_pipe_ends_quietly(tmp_path, fmt):
    # A big result, and a reader that has gone away before smjac writes (smjac ... | head -0).
    rng = np.random.default_rng(0)
    np.save(tmp_path / "W.npy", rng.normal(size=(60, 60)))
    np.save(tmp_path / "x.npy", rng.normal(size=60))
    script = Path(sys.executable).parent / "smjac"
    args = [str(script), "jacobian", "-W", str(tmp_path / "W.npy"), "-x", str(tmp_path / "x.npy"), "-f", fmt]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=60) == 141
    assert stderr == ""


def test_output_folder_not_writable(tmp_path, monkeypatch):
    # As root a read-only folder is still writable, so refuse the temporary file as the OS would:
    # the new file created exclusively (O_EXCL), and nothing else.
    opened = os.open

    def refuse(path, flags, *args, **kwargs):
        if flags & os.O_EXCL:
            raise PermissionError(13, "Permission denied")
        return opened(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", refuse)
    result = run("forward", *SAMPLE, "-o", str(tmp_path / "f.json"))
    assert result.exit_code == 2
    assert "cannot write in" in result.stderr and "Permission denied" in result.stderr
    assert os.listdir(tmp_path) == []


def test_no_numpy_warnings_reach_the_user(tmp_path):
    np.save(tmp_path / "W.npy", np.array([[1e300, -1e300, 0.0]]))
    np.save(tmp_path / "x.npy", np.array([1.0]))
    for command in (["forward"], ["jacobian"], ["grad", "--target", "1"], ["check"]):
        result = run(*command, "-W", str(tmp_path / "W.npy"), "-x", str(tmp_path / "x.npy"), "-f", "json")
        assert result.exit_code == 0, result.output
        assert result.stderr == ""


@pytest.mark.parametrize(
    "command",
    # not check: its finite differences build a layer of their own for every evaluation
    [["forward"], ["jacobian"], ["jacobian", "--format", "factored"], ["grad", "--target", "1"]],
)
def test_each_command_checks_the_layer_once(monkeypatch, command):
    # W is scanned for NaN once when read; the core takes its finiteness from z after that, and
    # scans W at most once more, where it reads W itself again (check, dh/dx): the commands hand
    # the checked layer to the core's layer_* functions.
    from smjac.maths import all_finite as real

    scanned = []
    # every room of the maths that scans for finiteness holds the one function under its own name
    users = [
        m
        for name, m in sys.modules.items()
        if name.startswith("smjac.maths") and getattr(m, "all_finite", None) is real
    ]
    assert len(users) > 2
    for m in users:
        monkeypatch.setattr(m, "all_finite", lambda a: scanned.append(np.shape(a)) or real(a))
    result = run(*command, *SAMPLE, "-f", "json")
    assert result.exit_code == 0, result.stderr
    assert scanned.count((3, 5)) <= 1
    # the counting is wired: dh/dx reads W itself, and scans it exactly once
    scanned.clear()
    assert run("jacobian", "--wrt", "x", *SAMPLE, "-f", "json").exit_code == 0
    assert scanned.count((3, 5)) == 1


def test_a_library_refusal_is_worded_in_flags():
    # the maths names its parameters (temperature=…, dtype="float64"); the command line its flags
    result = run("forward", *SAMPLE, "--dtype", "float32", "--temperature", "1e-46")
    assert result.exit_code == 2 and result.stdout == ""
    assert "Error: --temperature 1e-46 is 0 in float32" in result.stderr
    assert "or --dtype float64" in result.stderr and "=" not in result.stderr


@pytest.mark.parametrize("name", ["a" * 250 + ".json", "é" * 122 + ".json"])
def test_a_legal_long_output_name_is_written(tmp_path, name):
    # 255 bytes is a legal name; the temporary file beside it must be one too
    assert len(name.encode()) <= 255
    result = run("forward", *SAMPLE, "-o", str(tmp_path / name))
    assert result.exit_code == 0, result.stderr
    assert [p.name for p in tmp_path.iterdir()] == [name]


CTRL_C_WHILE_IMPORTING = """
import builtins, os, signal
import smjac  # numpy and the library, loaded before any of the command line's own code runs
real = builtins.__import__
def importing(name, *args, **kwargs):
    if name == "typer":  # the command line is being imported: Ctrl-C
        os.kill(os.getpid(), signal.SIGINT)
    return real(name, *args, **kwargs)
builtins.__import__ = importing
from smjac.cli import main  # imports nothing more: main() imports the command line
print("imported", flush=True)
main()
print("ran")
"""


def test_ctrl_c_while_the_command_line_is_imported_ends_quietly_with_130():
    proc = subprocess.run([sys.executable, "-c", CTRL_C_WHILE_IMPORTING], capture_output=True, text=True)
    # "imported": the package alone imports no command line; no KeyboardInterrupt traceback
    assert (proc.returncode, proc.stdout, proc.stderr) == (130, "imported\n", "")


CTRL_C_AS_MAIN_STARTS = """
import os, signal, sys
from smjac.outputs import streams
real = streams.prepare
def prepare():
    real()
    os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C as the handlers are set, before the command runs
streams.prepare = prepare
from smjac.cli import main
sys.argv[1:] = ["forward", "-W", "samples/blog/W.json", "-x", "samples/blog/x.json"]
main()
"""


def test_ctrl_c_as_main_starts_ends_quietly_with_130():
    proc = subprocess.run([sys.executable, "-c", CTRL_C_AS_MAIN_STARTS], capture_output=True, text=True)
    assert (proc.returncode, proc.stdout, proc.stderr) == (130, "", "")  # no Interrupted traceback


def test_once_imported_ctrl_c_is_pythons_again():
    # a program that imports smjac.cli (the tests do) keeps KeyboardInterrupt; main() sets its own
    code = "import signal, smjac.cli; print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stdout == "True\n", proc.stderr


@pytest.mark.parametrize("model", ["tiny-llama", "tiny-gpt2", "classifier.safetensors"])
def test_inspect_fits_an_80_column_terminal(model):
    result = CliRunner().invoke(
        app, ["inspect", f"samples/model/{model}", "-f", "table"], env={**ENV, "COLUMNS": "80"}
    )
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, "\n".join(lines)
    doc = json.loads(run("inspect", f"samples/model/{model}", "-f", "json").stdout)
    keys = [r["key"] for r in doc["layers"]]
    for r in doc["layers"]:  # every layer on one line of its own, nothing cut
        (row,) = [line.split() for line in lines if line.split()[:1] == [r["key"]]]
        # the embedding a tied head shares, by the key its own row has (JSON names its tensor)
        tied = [k for k in keys if r["tied_to"] in (k, f"{k}.weight")]
        shape = "×".join(map(str, r["shape"]))
        bias, head = ["yes"] * bool(r["bias"]), ["head"] * r["head"]
        assert row == [r["key"], shape, r["dtype"], *bias, r["layout"], *tied, *head]


def test_wrote_shows_a_file_name_with_a_newline_on_one_line(tmp_path):
    # a newline in -o's name printed raw split "wrote …" into two lines, the second like smjac's own
    name = tmp_path / "a\nb\x1b.json"
    result = run("forward", *SAMPLE, "-o", str(name))
    assert result.exit_code == 0, result.stderr
    assert json.loads(name.read_text())["h"]  # written under the name given, as given
    assert re.fullmatch(rf"wrote {re.escape(str(tmp_path))}/a\\nb\\x1b\.json \(\d+ bytes\)\n", result.stderr)
    # and so does a refusal to write over it, and one to write into a folder that is not there
    again = run("forward", *SAMPLE, "-o", str(name))
    assert again.exit_code == 2
    assert again.stderr == f"Error: {tmp_path}/a\\nb\\x1b.json: exists; add --force to replace it\n"
    missing = run("forward", *SAMPLE, "-o", str(tmp_path / "c\nd" / "e.json"))
    assert (
        missing.exit_code == 2
        and missing.stderr.count("\n") == 1
        and "c\\nd does not exist" in missing.stderr
    )
    for odd in ("f\ng.xyz", "h\ni.npy"):  # a suffix smjac does not write; one the result cannot be
        refused = run("forward", *SAMPLE, "-o", str(tmp_path / odd))
        assert refused.exit_code == 2 and refused.stderr.count("\n") == 1, refused.stderr
        assert refused.stderr.startswith(f"Error: {tmp_path}/{odd[0]}\\n{odd[2:]}: ")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_one_entry_is_the_jacobians_float_in_its_dtype_in_every_format(tmp_path, dtype):
    # with --dtype float32 the entry was printed and saved as a float64: its 19 digits where the
    # Jacobian printed the float32's 8, and a float64 .npy
    args = ["jacobian", *SAMPLE, "--dtype", dtype]
    whole = json.loads(run(*args, "--format", "json").stdout)["jacobian"]
    for t, i, j in [(1, 2, 0), (0, 0, 0), (4, 1, 2)]:
        want = whole[t][i * 3 + j]
        index = f"{t},{i},{j}"
        assert json.loads(run(*args, "--entry", index, "--format", "json").stdout)["value"] == want
        text = repr(want)
        assert run(*args, "--entry", index, "--format", "csv").stdout == text + "\n"
        assert run(*args, "--entry", index, "--format", "table").stdout.endswith(f" = {text}\n")
        for suffix in ("npy", "npz"):
            out = tmp_path / f"e{t}{i}{j}.{suffix}"
            assert run(*args, "--entry", index, "-o", str(out)).exit_code == 0
            got = np.load(out)
            value = got if suffix == "npy" else got["value"]
            assert value.dtype == np.dtype(dtype) and value == np.dtype(dtype).type(want)


def test_a_file_that_takes_the_place_of_a_bundles_array_is_said(tmp_path):
    # --layer L.npz -W other.npy used other.npy without a word: the user may have meant the bundle's
    W2 = BLOG_W * 2
    np.savez(tmp_path / "L.npz", W=BLOG_W, x=BLOG_X, b=np.zeros(5))
    np.save(tmp_path / "W2.npy", W2)
    result = run("forward", "--layer", str(tmp_path / "L.npz"), "-W", str(tmp_path / "W2.npy"), "-f", "json")
    assert result.exit_code == 0
    assert result.stderr == f"note: {tmp_path / 'W2.npy'} takes the place of {tmp_path / 'L.npz'}[W]\n"
    assert_allclose(json.loads(result.stdout)["h"], post_softmax(W2.T @ BLOG_X), rtol=1e-15)
    quiet = run(
        "forward", "--layer", str(tmp_path / "L.npz"), "-W", str(tmp_path / "W2.npy"), "-q", "-f", "json"
    )
    assert quiet.exit_code == 0 and quiet.stderr == ""
    alone = run("forward", "--layer", str(tmp_path / "L.npz"), "-f", "json")  # nothing replaced, nothing said
    assert alone.exit_code == 0 and alone.stderr == ""


def test_an_output_name_that_is_not_utf8_is_written(tmp_path):
    # a name as the file system holds it, byte 0xff and all (it was an internal error, making the
    # temporary file's name)
    name = os.fsdecode(b"\xffout.csv")
    result = run("forward", *SAMPLE, "-o", str(tmp_path / name))
    assert result.exit_code == 0, result.stderr
    assert os.listdir(tmp_path) == [name]
    assert (tmp_path / name).read_text().startswith("z,h\n0.354,")


def test_the_app_stays_the_app_whichever_way_it_is_imported():
    # smjac.cli.app was also a module's name: importing that module made smjac.cli.app the module
    code = (
        "from smjac.cli.whole import app as made; import smjac.cli; from smjac.cli import app;"
        "print(app is made is smjac.cli.app)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stdout == "True\n", proc.stderr
