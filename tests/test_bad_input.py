"""Every kind of bad input, through the command line: exit code, message, nothing lost.

Each case writes its files to a fresh folder, runs one command with ``-o out.json``, and checks
the exit code, the gist of the one-line message on stderr, that stdout is empty, and that the
folder holds exactly what it held before (no output, no temporary file).
"""

from __future__ import annotations

import io
import json
import os
import pty
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import safetensors.numpy as st
from typer.testing import CliRunner

from smjac import inputs
from smjac.cli import app
from smjac.cli.flags import as_flags
from smjac.errors import SmjacError

from .conftest import BLOG_W, ROOT

W_OK = ROOT / "samples/blog/W.json"
X_OK = ROOT / "samples/blog/x.json"


def npy(a: np.ndarray, allow_pickle: bool = False) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=allow_pickle)
    return buf.getvalue()


@dataclass
class Case:
    """A bad W (or other input) and what smjac must say about it."""

    id: str
    message: str
    files: dict[str, bytes] = field(default_factory=dict)
    args: tuple[str, ...] = ("jacobian", "-W", "{tmp}/bad", "-x", "{x}")
    exit: int = 2
    stdin: bytes | None = None


def bad_w(id: str, name: str, content: bytes, message: str) -> Case:
    return Case(id, message, {name: content}, ("jacobian", "-W", f"{{tmp}}/{name}", "-x", "{x}"))


def bad_x(id: str, name: str, content: bytes, message: str) -> Case:
    return Case(id, message, {name: content}, ("forward", "-W", "{W}", "-x", f"{{tmp}}/{name}"))


VALID_NPY = npy(BLOG_W)
CASES = [
    # files that are not there or not files
    Case("missing file", "does not exist", args=("forward", "-W", "{tmp}/nope.json", "-x", "{x}")),
    Case(
        "a directory", "is a directory", {"d.json/keep": b""}, ("forward", "-W", "{tmp}/d.json", "-x", "{x}")
    ),
    # empty things
    bad_w("empty json file", "W.json", b"", "is empty"),
    bad_w("empty csv file", "W.csv", b"", "is empty"),
    bad_w("blank csv file", "W.csv", b"\n \n", "is empty"),
    bad_w("empty npy file", "W.npy", b"", "is empty"),
    bad_w("empty json array", "W.json", b"[]", "holds no numbers"),
    bad_w("empty json rows", "W.json", b"[[], []]", "holds no numbers"),
    bad_w("empty npy array", "W.npy", npy(np.zeros((0, 3))), "holds no numbers"),
    # JSON that is not a matrix of numbers
    bad_w("malformed json", "W.json", b"[[0.1, 0.2]", "is not valid JSON"),
    bad_w("json object", "W.json", b'{"W": [[1]]}', "found an object"),
    bad_w("json string", "W.json", b'"0.1"', "found a string"),
    bad_w("json single number", "W.json", b"0.5", "found a single number"),
    bad_w("json string entry", "W.json", b'[[0.1, "1.5"]]', "found a string"),
    bad_w("json boolean entry", "W.json", b"[[0.1, true]]", "found a boolean"),
    bad_w("json null entry", "W.json", b"[[0.1, null]]", "found null"),
    bad_w("json object entry", "W.json", b"[[0.1, {}]]", "found an object"),
    bad_w("json NaN token", "W.json", b"[[0.1, NaN]]", "NaN is not allowed"),
    bad_w("json Infinity token", "W.json", b"[[0.1, Infinity]]", "Infinity is not allowed"),
    bad_w("json -Infinity token", "W.json", b"[[0.1, -Infinity]]", "-Infinity is not allowed"),
    bad_w("json overflow", "W.json", b"[[0.1, 1e400]]", "1e400 overflows"),
    bad_w("json huge integer", "W.json", b"[[0.1, 1" + b"0" * 400 + b"]]", "too large"),
    bad_w("json ragged rows", "W.json", b"[[0.1, 0.2], [0.3]]", "row 2 has 1 values but row 1 has 2"),
    bad_w("json deep nesting", "W.json", b"[" * 100000 + b"]" * 100000, "nested too deeply"),
    # CSV that is not a matrix of numbers
    bad_w("csv ragged rows", "W.csv", b"0.1,0.2\n0.3\n", "line 2 has 1 values but the first row has 2"),
    bad_w("csv text cell", "W.csv", b"0.1,abc\n", "line 1, column 2: 'abc' is not a number"),
    bad_w("csv empty cell", "W.csv", b"0.1,,0.3\n", "column 2: '' is not a number"),
    bad_w("csv header row", "W.csv", b"a,b,c,d,e\n0.1,0.2,0.3,0.4,0.5\n", "line 1 looks like a header"),
    bad_w("csv nan cell", "W.csv", b"0.1,nan\n", "'nan' is not a finite number"),
    bad_w("csv inf cell", "W.csv", b"0.1,-inf\n", "'-inf' is not a finite number"),
    bad_w("csv overflow", "W.csv", b"0.1,1e400\n", "1e400 overflows"),
    bad_w("csv python-only literal", "W.csv", b"0.1,1_000\n", "'1_000' is not a number"),
    # float() reads these as 3 and 10: a digit is an ASCII digit
    bad_w("csv arabic-indic digit", "W.csv", "0.1,\u0663\n".encode(), "column 2: '\u0663' is not a number"),
    bad_w(
        "csv fullwidth digits",
        "W.csv",
        "0.1,\uff11\uff10\n".encode(),
        "column 2: '\uff11\uff10' is not a number",
    ),
    # a first line of digits of another script is no header: it said "looks like a header"
    bad_w(
        "csv arabic-indic line",
        "W.csv",
        "\u0663,\u0662\n".encode(),
        "line 1, column 1: '\u0663' is not a number",
    ),
    # wrong dimensions and shapes
    bad_w("W a vector", "W.json", b"[0.1, 0.5, 0.4]", "must be a matrix"),
    bad_w("W three-dimensional", "W.json", b"[[[0.1]]]", "must be a matrix"),
    bad_x("x three-dimensional", "x.json", b"[[[1, 2, 3]]]", "must be a vector (n) or a batch (N×n)"),
    bad_x("batch of the wrong width", "x.json", b"[[1, 2], [3, 4]]", "has 2 entries per sample"),
    bad_x(
        "shape mismatch",
        "x.json",
        b"[1, 2, 3, 4]",
        "has shape (3, 5) but {tmp}/x.json has 4 entries; with --layout in-out W is n×K (one row per input)",
    ),
    bad_x("W in the other layout", "x.json", b"[1, 2, 3, 4, 5]", "fits --layout out-in (K×n"),
    # NPY of the wrong kind
    bad_w("npy NaN", "W.npy", npy(np.array([[0.1, np.nan]])), "NaN or infinite"),
    bad_w("npy Inf", "W.npy", npy(np.array([[0.1, np.inf]])), "NaN or infinite"),
    bad_w("npy complex", "W.npy", npy(np.ones((3, 5), dtype=complex)), "dtype complex128"),
    bad_w("npy bool", "W.npy", npy(np.ones((3, 5), dtype=bool)), "dtype bool"),
    bad_w("npy string", "W.npy", npy(np.array([["a"]])), "dtype <U1"),
    bad_w("npy structured", "W.npy", npy(np.zeros(3, dtype=[("a", "f8")])), "dtype"),
    bad_w("npy object", "W.npy", npy(np.array([[1.0]], dtype=object), allow_pickle=True), "never unpickles"),
    bad_w("npy truncated", "W.npy", VALID_NPY[: len(VALID_NPY) - 8], "truncated"),
    bad_w("npy header only", "W.npy", VALID_NPY[:20], "not a valid NPY file"),
    # not the format at all
    bad_w("random bytes as json", "W.json", bytes(range(256)), "not UTF-8"),
    bad_w("random bytes as csv", "W.csv", bytes(range(256)), "not UTF-8"),
    bad_w("random bytes as npy", "W.npy", bytes(range(256)), "not an NPY file"),
    bad_w("unknown suffix", "W.txt", b"0.1,0.2\n", "suffix '.txt'; smjac knows .csv, .json, .npy, .npz"),
    # stdin
    Case("empty stdin", "stdin: is empty", args=("forward", "-W", "{W}", "-x", "-"), stdin=b""),
    Case(
        "random bytes on stdin",
        "stdin: is not UTF-8",
        args=("forward", "-W", "{W}", "-x", "-"),
        stdin=bytes(range(256)),
    ),
    Case("dash twice", "- given twice", args=("forward", "-W", "-", "-x", "-"), stdin=b"[1]"),
    # the layer's other inputs
    Case(
        "target out of range",
        "target class 5 is out of range: K = 5",
        args=("grad", "-W", "{W}", "-x", "{x}", "--target", "5"),
    ),
    Case(
        "negative target",
        "target class -1 is out of range: K = 5",
        args=("grad", "-W", "{W}", "-x", "{x}", "--target", "-1"),
    ),
    Case(
        "upstream of wrong length",
        "upstream has shape (4,) but the layer has K = 5 outputs",
        {"g.json": b"[1, 2, 3, 4]"},
        ("grad", "-W", "{W}", "-x", "{x}", "--upstream", "{tmp}/g.json"),
    ),
    Case(
        "upstream with NaN",
        "NaN is not allowed",
        {"g.json": b"[1, 2, 3, 4, NaN]"},
        ("grad", "-W", "{W}", "-x", "{x}", "--upstream", "{tmp}/g.json"),
    ),
    Case(
        "bias of wrong length",
        "b.json needs 5 entries",
        {"b.json": b"[1, 2]"},
        ("forward", "-W", "{W}", "-x", "{x}", "-b", "{tmp}/b.json"),
    ),
    Case(
        "logits overflow",
        "z = Wᵀx overflows float64",
        {"W.json": b"[[1e300, 1], [1e300, 2]]", "x.json": b"[1e10, 1e10]"},
        ("forward", "-W", "{tmp}/W.json", "-x", "{tmp}/x.json"),
    ),
    Case(
        "input over the size cap",
        "input size cap of 10 bytes",
        args=("--max-input-bytes", "10", "forward", "-W", "{W}", "-x", "{x}"),
    ),
    # usage errors
    Case(
        "neither target nor upstream",
        "give exactly one of --target K or --upstream FILE",
        args=("grad", "-W", "{W}", "-x", "{x}"),
    ),
    Case(
        "unknown format",
        "'bogus' is not one of",
        args=("forward", "-W", "{W}", "-x", "{x}", "--format", "bogus"),
    ),
    Case(
        "precision out of range",
        "99 is not in the range",
        args=("forward", "-W", "{W}", "-x", "{x}", "--precision", "99"),
    ),
    Case("unknown option", "No such option: --nope", args=("forward", "--nope")),
    Case("unknown command", "No such command 'nope'", args=("nope",)),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(tmp_path, case):
    for name, content in case.files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    fill = {"tmp": str(tmp_path), "W": str(W_OK), "x": str(X_OK)}
    args = [a.format(**fill) for a in case.args]
    if args[0] in ("forward", "jacobian", "grad", "check") or "forward" in args:
        args += ["-o", str(tmp_path / "out.json")]
    result = CliRunner().invoke(app, args, input=case.stdin, env={"COLUMNS": "200"})
    assert result.exit_code == case.exit, result.output
    assert case.message.format(**fill) in result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_unreadable_file(tmp_path, monkeypatch):
    # As root, chmod cannot make a file unreadable, so make open() refuse it the way the OS would.
    target = tmp_path / "W.json"
    target.write_text(json.dumps(BLOG_W.tolist()))
    real_open = open

    def refuse(path, *args, **kwargs):
        if Path(path) == target:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("smjac.formats.raw.open", refuse, raising=False)
    result = CliRunner().invoke(app, ["forward", "-W", str(target), "-x", str(X_OK)])
    assert result.exit_code == 2
    assert f"{target}: permission denied" in result.stderr


class Evil:
    """Unpickling this runs a shell command: exactly what loading a hostile .npy must not do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_malicious_pickle_is_not_run(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "W.npy"
    np.save(evil, np.array([Evil(marker)], dtype=object), allow_pickle=True)
    result = CliRunner().invoke(app, ["forward", "-W", str(evil), "-x", str(X_OK)])
    assert result.exit_code == 2 and "never unpickles" in result.stderr
    assert not marker.exists()
    # the payload is live: loading it the unsafe way does run the command
    np.load(evil, allow_pickle=True)
    assert marker.exists()


def test_dash_when_stdin_is_a_terminal():
    # A real terminal on stdin: smjac must refuse rather than wait for typing.
    controller, terminal = pty.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "smjac", "forward", "-W", str(W_OK), "-x", "-"],
            stdin=terminal,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        os.close(terminal)
        os.close(controller)
    assert proc.returncode == 2
    assert "stdin is a terminal" in proc.stderr and proc.stdout == ""


def test_utf8_bom_is_accepted(tmp_path):
    (tmp_path / "W.csv").write_bytes(b"\xef\xbb\xbf" + (ROOT / "samples/blog/W.csv").read_bytes())
    (tmp_path / "x.json").write_bytes(b"\xef\xbb\xbf" + X_OK.read_bytes())
    result = CliRunner().invoke(
        app, ["forward", "-W", str(tmp_path / "W.csv"), "-x", str(tmp_path / "x.json")]
    )
    assert result.exit_code == 0
    assert result.stdout == CliRunner().invoke(app, ["forward", "-W", str(W_OK), "-x", str(X_OK)]).stdout


# Issue 18: the library names its parameters, the command line its flags. Each row: the library
# call and what it says, then the same refusal on the command line and what that says.
MODEL = ROOT / "samples/model/classifier.safetensors"
SPOKEN = [
    (
        "a key without a checkpoint",
        lambda tmp: inputs.load_layer(W_OK, X_OK, key="classifier"),
        "key='classifier': picks a layer in a model checkpoint (layer=\"model.safetensors\")",
        ["forward", "-W", str(W_OK), "-x", str(X_OK), "--key", "classifier"],
        "--key classifier: picks a layer in a model checkpoint (--layer model.safetensors)",
    ),
    (
        "a checkpoint given as W",
        lambda tmp: inputs.load_array(MODEL),
        f"give it as layer='{MODEL}' (key=NAME picks the layer) and x with x=",
        ["forward", "-W", str(MODEL), "-x", str(X_OK)],
        f"give it as --layer {MODEL} (--key NAME picks the layer) and x with -x",
    ),
    (
        "over the input cap",
        lambda tmp: inputs.load_array(W_OK, max_bytes=10),
        "raise the cap with max_bytes",
        ["--max-input-bytes", "10", "forward", "-W", str(W_OK), "-x", str(X_OK)],
        "raise the cap with --max-input-bytes",
    ),
    (
        "over the memory budget",
        lambda tmp: inputs.load_array(W_OK, max_memory=100),
        "over the memory budget of 100 bytes (max_memory); save it as .npy",
        ["forward", "--max-memory", "100", "-W", str(W_OK), "-x", str(X_OK)],
        "over the memory budget of 100 bytes (--max-memory); save it as .npy",
    ),
    (
        "a layer that is not there",
        lambda tmp: inputs.load_layer(None, X_OK, layer=MODEL, key="nope"),
        "pick the layer with key=NAME (e.g. key='classifier')",
        ["forward", "--layer", str(MODEL), "--key", "nope", "-x", str(X_OK)],
        "pick the layer with --key NAME (e.g. --key classifier)",
    ),
    (
        "no W nor x",
        lambda tmp: inputs.load_layer(None, None),
        "missing W= and x=: give each as a file, or both with layer=FILE",
        ["forward"],
        "missing -W and -x: give each as a file, or both with --layer FILE",
    ),
    (
        "a layout against the file's own",
        lambda tmp: inputs.load_layer(None, ROOT / "samples/model/x.json", layer=MODEL, layout="in-out"),
        "it takes 6: leave out layout=",
        ["forward", "--layer", str(MODEL), "--layout", "in-out", "-x", str(ROOT / "samples/model/x.json")],
        "it takes 6: leave out --layout",
    ),
]


@pytest.mark.parametrize("case", SPOKEN, ids=[c[0] for c in SPOKEN])
def test_the_library_names_parameters_and_the_command_line_flags(tmp_path, case):
    _, call, said, args, flagged = case
    with pytest.raises(SmjacError) as e:
        call(tmp_path)
    assert said in str(e.value) and " --" not in str(e.value)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and flagged in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("message", "flagged"),
    [
        # parameters, with and without values, and a quoted value the shell needs quoted
        ("leave out layout=", "leave out --layout"),
        (
            "(max_memory); raise the cap (max_bytes=21M)",
            "(--max-memory); raise the cap (--max-input-bytes 21M)",
        ),
        ("give one as layer='my models/m.safetensors'", "give one as --layer 'my models/m.safetensors'"),
        ("e.g. key='class_weights'", "e.g. --key class_weights"),  # a value is never taken for a name
        # names that are not parameters: file names, paths, tensor names, quoted names
        ("class_weights.json holds 3 class weights", None),
        ("runs/max_memory/layout.json: is empty", None),
        ("using model.class_weights.weight (3×4 F32); no tensor 'key' or 'max_bytes'", None),
        ("attn.key=3 and self-layout=x are not parameters", None),
        ("m.safetensors[key=1.weight] is 3×4", None),
    ],
)
def test_as_flags_spells_parameters_and_nothing_else(message, flagged):
    assert as_flags(message) == (message if flagged is None else flagged)


# names a crafted checkpoint may give its tensors; NUL is left out: no shell argument can hold it
NASTY = [
    "a\nb",
    "tab\there",
    "it's\nso",
    "both'\"q",
    "back\\slash",
    "esc\x1b[2J",
    "\u2028sep",
    "del\x7f",
    "é ü",
]


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
@pytest.mark.parametrize("name", NASTY)
def test_a_quoted_name_in_advice_is_one_shell_word_that_gives_it_back(name):
    # the library quotes a name as Python does (key='a\nb'); the command line's advice is pasted
    # into a shell, so the value is quoted for the shell: $'a\nb' where it holds a character that
    # is not printable, shlex's quoting otherwise
    flagged = as_flags(f"pick it with key={name!r}, then run")
    assert flagged.startswith("pick it with --key ") and flagged.endswith(", then run")
    word = flagged.removeprefix("pick it with --key ").removesuffix(", then run")
    assert word.isprintable()
    assert word.startswith("$'") == (not name.isprintable())
    echoed = subprocess.run(["bash", "-c", f"printf %s {word}"], capture_output=True, timeout=10)
    assert echoed.stdout.decode("utf8", "surrogateescape") == name


def test_a_file_or_tensor_named_like_a_parameter_keeps_its_name(tmp_path):
    # before, the command line printed --class-weights.json and "--key --class-weights"
    weights = tmp_path / "class_weights.json"
    weights.write_text("[1, 2, 3]")
    result = CliRunner().invoke(
        app, ["grad", "-W", str(W_OK), "-x", str(X_OK), "--target", "0", "--class-weights", str(weights)]
    )
    assert result.exit_code == 2
    assert result.stderr.startswith(f"Error: {weights} holds 3 class weights but W has K = 5 outputs")
    model = tmp_path / "class_weights.safetensors"
    st.save_file(
        {"class_weights.weight": np.ones((3, 4), np.float32), "other.weight": np.ones((3, 4), np.float32)},
        model,
    )
    result = CliRunner().invoke(app, ["forward", "--layer", str(model), "-x", str(X_OK)])
    assert result.exit_code == 2
    assert f"Error: {model}: no layer is named as a head" in result.stderr
    assert (
        "(e.g. --key class_weights)" in result.stderr
        and "\n  class_weights.weight (3×4 F32)\n" in result.stderr
    )
