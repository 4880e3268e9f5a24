"""The options the commands share: declared once as groups, offered the same way by every command."""

from __future__ import annotations

import ast
import dataclasses
import json
import re
from typing import Annotated

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from smjac.cli import app
from smjac.cli.groups import group
from smjac.formats.table import Format

from .conftest import ROOT

BLOG = ["-W", str(ROOT / "samples/blog/W.json"), "-x", str(ROOT / "samples/blog/x.json")]
ENV = {"COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
CLI = ROOT / "smjac" / "cli"


def run(*args: str, input: str | None = None):
    return CliRunner().invoke(app, list(args), env=ENV, input=input)


def params(command: str) -> dict[str, tuple]:
    """Each option of a command as click holds it: its flags, default and environment variable."""
    click_command = typer.main.get_command(app).commands[command]  # type: ignore[attr-defined]
    return {p.name: (tuple(p.opts), p.default, p.envvar) for p in click_command.params}


# what the commands offered before the groups, written out by hand
LAYER = {
    "W": (("-W", "--weights"), None, None),
    "x": (("-x", "--input"), None, None),
    "b": (("-b", "--bias"), None, None),
    "layer": (("--layer",), None, None),
    "key": (("--key",), None, None),
    "layout": (("--layout",), None, None),
    "function": (("--function",), "softmax", None),
    "temperature": (("--temperature",), 1.0, None),
    "dtype": (("--dtype",), "float64", None),
}
LOSS = {
    "target": (("--target",), None, None),
    "upstream": (("--upstream",), None, None),
    "reduce": (("--reduce",), "mean", None),
    "class_weights": (("--class-weights",), None, None),
    "ignore_index": (("--ignore-index",), None, None),
    "label_smoothing": (("--label-smoothing",), 0.0, None),
}
WRITE = {
    "fmt": (("--format", "-f"), None, None),
    "output": (("-o", "--output"), None, None),
    "force": (("--force",), False, None),
    "quiet": (("--quiet", "-q"), False, None),
    "max_memory": (("--max-memory",), None, "SMJAC_MAX_MEMORY"),
    "progress": (("--progress",), None, None),  # and --no-progress; None: at a terminal
    "color": (("--color",), "auto", None),
}
PRECISION = {"precision": (("--precision",), 6, None)}
SAMPLE = {"sample": (("--sample",), 0, None)}
NO_UPSTREAM = {k: v for k, v in LOSS.items() if k != "upstream"}


@pytest.mark.parametrize(
    ("command", "groups"),
    [
        ("forward", [LAYER, WRITE, PRECISION, SAMPLE]),
        ("jacobian", [LAYER, WRITE, PRECISION, SAMPLE]),
        ("grad", [LAYER, LOSS, WRITE, PRECISION]),
        ("check", [LAYER, NO_UPSTREAM, WRITE]),
        ("verify", [LAYER, LOSS, WRITE]),
    ],
)
def test_every_command_offers_its_groups_with_the_same_flags_and_defaults(command, groups):
    offered = params(command)
    for options in groups:
        for name, declared in options.items():
            assert offered[name] == declared, (command, name)
    shared = {k for g in (LAYER, LOSS, WRITE, PRECISION, SAMPLE) for k in g}
    absent = shared - {k for g in groups for k in g}
    assert not absent & set(offered), f"{command} offers {absent & set(offered)}"


def test_the_layer_options_come_first_and_in_one_order():
    for command in ("forward", "jacobian", "grad", "check", "verify"):
        assert list(params(command))[:9] == list(LAYER), command


def test_the_groups_keep_their_own_options_apart():
    assert set(params("inspect")) == {"checkpoint", "fmt", "quiet", "max_memory", "color"}
    assert set(params("demo")) == {"precision", "color"}
    assert params("demo")["precision"][1] == 5


def suffixes_in_help(command: str) -> list[str]:
    text = " ".join(run(command, "--help").stdout.split())
    (line,) = re.findall(r"in the format its suffix names: ([^;]*?)[.;] ", text)
    return line.split(", ")


@pytest.mark.parametrize(
    ("command", "answer"),
    [
        ("check", []),
        ("verify", ["--jacobian", str(ROOT / "samples/mistakes/diagonal-only.json")]),
    ],
)
def test_the_help_lists_the_suffixes_the_command_writes_and_no_other(command, answer, tmp_path):
    listed = suffixes_in_help(command)
    assert listed and ".npy" not in listed and ".safetensors" not in listed
    for fmt in Format:
        if not fmt.suffix:
            continue
        path = tmp_path / f"out{fmt.suffix}"
        result = run(command, *BLOG, *answer, "-o", str(path), "-q")
        if fmt.suffix in listed:
            assert result.exit_code in (0, 1), (fmt.suffix, result.stderr)  # verify: the answer is wrong
            assert path.stat().st_size > 0
        else:
            assert result.exit_code == 2 and f"{path}: " in result.stderr, (fmt.suffix, result.stderr)
            assert not path.exists()


@pytest.mark.parametrize("command", ["forward", "jacobian", "grad", "check", "verify"])
def test_the_output_help_says_how_stdout_and_pipes_are_used(command):
    text = " ".join(run(command, "--help").stdout.split())
    assert "-o - is stdout, in --format's format." in text
    assert "Given with -o FILE, the result is printed to stdout too" in text
    assert "--progress / --no-progress" in text
    binary = [f.value for f in Format if not f.printable and f"|{f.value}" in text]
    # a binary format can go to a pipe, not to a terminal, and the help says which are binary
    assert ("binary: for a pipe (| or > FILE), not a terminal" in text) == bool(binary), binary
    if binary:
        assert f"{', '.join(binary)} {'are' if len(binary) > 1 else 'is'} binary" in text


def test_grad_lists_safetensors_for_a_checkpoint_only():
    text = " ".join(run("grad", "--help").stdout.split())
    assert ".npy, .npz, .png, .svg, .pdf; .safetensors for a layer read from a checkpoint." in text


@pytest.mark.parametrize(
    "args",
    [
        ["-x", "-", "--grad", "-", "--target", "2"],
        ["-x", "-", "--jacobian", "-"],
        ["-x", "-", "--grad", str(ROOT / "samples/mistakes/missing-one-hot.json"), "--target", "-"],
    ],
)
def test_verify_reads_stdin_once(args):
    result = run("verify", "-W", BLOG[1], *args, input="[1, 2, 3]")
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr == "Error: - given twice: only one input can come from stdin\n"


def test_no_cli_module_is_long_or_takes_another_modules_private_names():
    for path in CLI.glob("*.py"):
        source = path.read_text()
        assert len(source.splitlines()) <= 600, path.name
        tree = ast.parse(source)
        modules = set()  # names bound to smjac's own modules: from .. import inputs, maths
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("smjac")):
                private = [a.name for a in node.names if a.name.startswith("_") and not a.name.endswith("__")]
                assert not private, f"{path.name} imports {private} from {node.module}"
                modules |= {a.asname or a.name for a in node.names}
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in modules
            ):
                assert not node.attr.startswith("_"), f"{path.name} uses {node.value.id}.{node.attr}"


@dataclasses.dataclass(frozen=True)
class Pair:
    a: Annotated[int, typer.Option()] = 1


def test_a_group_refuses_what_it_cannot_splice():
    with pytest.raises(TypeError, match="has no field b"):
        group(Pair, omit=("b",))
    with pytest.raises(TypeError, match="no parameter typed Pair"):
        group(Pair)(lambda n: n)
    with pytest.raises(TypeError, match="a given twice"):

        @group(Pair)
        def twice(pair: Pair, a: int = 0) -> None: ...


def test_a_command_is_handed_the_packed_groups(tmp_path):
    # the values given on the command line arrive in the dataclasses the command reads
    result = run("forward", *BLOG, "--temperature", "2", "--function", "log-softmax", "-f", "json")
    assert result.exit_code == 0, result.stderr
    by_flags = run("forward", "--layer", str(ROOT / "samples/blog/layer.npz"), "--temperature", "2",
                   "--function", "log-softmax", "-f", "json")  # fmt: skip
    assert by_flags.stdout == result.stdout
    assert run("forward", *BLOG, "-f", "json").stdout != result.stdout


def test_verify_holds_a_text_answer_to_max_memory(tmp_path):
    # the answer is parsed under the writer's budget, as every other input is: a JSON answer
    # whose parse would outgrow --max-memory is refused before it is parsed
    rng = np.random.default_rng(0)
    np.save(tmp_path / "W.npy", rng.normal(size=(60, 100)))
    np.save(tmp_path / "x.npy", rng.normal(size=60))
    (tmp_path / "g.json").write_text(json.dumps(rng.normal(size=(60, 100)).tolist()))
    args = ["verify", "-W", str(tmp_path / "W.npy"), "-x", str(tmp_path / "x.npy")]
    args += ["--grad", str(tmp_path / "g.json"), "--target", "1", "-f", "json"]
    assert run(*args).exit_code == 1  # read, compared, and found wrong
    refused = run(*args, "--max-memory", "300K")
    assert refused.exit_code == 2 and refused.stdout == ""
    assert "over the memory budget of 300.0 KiB (--max-memory)" in refused.stderr


LLAMA = ROOT / "samples/model/tiny-llama"


@pytest.mark.parametrize(
    "args",
    [
        [
            "grad",
            "--layer",
            str(LLAMA),
            "-x",
            str(ROOT / "samples/model/x.json"),
            "--target",
            "2",
            "-f",
            "json",
        ],
        ["inspect", str(LLAMA), "-f", "json"],
    ],
)
def test_a_checkpoints_notes_spell_flags(args):
    # the readers name their parameters (key=NAME, layout=out-in); on the command line they are flags
    result = run(*args)
    assert result.exit_code == 0, result.stderr
    assert result.stderr and not re.search(r"\b(key|layout)=", result.stderr), result.stderr
    if args[0] == "grad":
        assert "; --key NAME picks another" in result.stderr or "; --key picks another" in result.stderr
        assert "read with --layout out-in;" in result.stderr


def test_dash_o_is_stdout_in_the_formats_format_as_the_help_says():
    plain = run("forward", *BLOG, "-f", "json")
    dashed = run("forward", *BLOG, "-o", "-", "-f", "json")
    assert dashed.exit_code == 0 and dashed.stdout == plain.stdout and json.loads(dashed.stdout)["h"]


@pytest.mark.parametrize(
    ("given", "said"),
    [
        ("out.csv/", "out.csv/ ends in /, so it names a folder; give out.csv, or a file inside it"),
        ("my run/", "my run/ ends in /, so it names a folder; give 'my run', or a file inside it"),
        ("/", "/ ends in /, so it names a folder; give a file"),
        ("{tmp}", "{tmp} is a folder; give a file, inside it or elsewhere"),
        ("", "an empty name; give a file"),
        ("out.csv/.", "out.csv/. ends in ., so it names a folder; give a file"),
        ("out.csv/..", "out.csv/.. ends in .., so it names a folder; give a file"),
        (".", ". ends in ., so it names a folder; give a file"),
    ],
)
@pytest.mark.parametrize("command", ["forward", "jacobian", "grad"])
def test_dash_o_refuses_a_folder_and_writes_no_file_in_its_place(command, given, said, tmp_path, monkeypatch):
    # Path("out.csv/") is Path("out.csv"): a name that ends in a slash was written as that file
    monkeypatch.chdir(tmp_path)
    extra = ["--target", "1"] if command == "grad" else []
    result = run(command, *BLOG, *extra, "-o", given.format(tmp=tmp_path))
    assert result.exit_code == 2 and result.stdout == ""
    expected = f"Error: Invalid value for '-o' / '--output': {said.format(tmp=tmp_path)}"
    assert result.stderr.strip().splitlines()[-1] == expected
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["e" * 300 + ".csv", "d" * 260 + "/f.csv"])
def test_dash_o_with_a_name_too_long_is_refused_in_one_line(name, tmp_path, monkeypatch):
    # Path.is_dir raised the OS's ENAMETOOLONG, which came out as an internal error
    monkeypatch.chdir(tmp_path)
    result = run("jacobian", *BLOG, "-o", name)
    assert result.exit_code == 2 and result.stdout == ""
    said = result.stderr.strip()  # the name shortened, with an ellipsis
    assert said.startswith(f"Error: {name[:20]}") and ": cannot write it (" in said and "\n" not in said
    assert "internal error" not in said
    assert list(tmp_path.iterdir()) == []


def test_every_number_option_takes_ascii_digits_only():
    # click's int and float types call int() and float(), which read 1_0 as 10 and ٣ as 3:
    # --ignore-index ٣ ignored class 3, --temperature 1_0 was T = 10
    group = typer.main.get_command(app)
    seen = 0
    for command in [group, *group.commands.values()]:  # type: ignore[attr-defined]
        for param in command.params:
            name = type(param.type).__name__
            if name not in ("IntParamType", "IntRange", "FloatParamType", "FloatRange"):
                continue
            seen += 1
            for typed in ("1_0", "٣", "２", "1 0", "0x1"):
                with pytest.raises(click_errors(), match="in ASCII digits"):
                    param.type.convert(typed, param, None)
            assert param.type.convert("1", param, None) == 1 and param.type.convert(" 1 ", param, None) == 1
    assert seen >= 10


def click_errors() -> type[Exception]:
    return next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["grad", *BLOG, "--target", "1", "--ignore-index", "٣"], "--ignore-index"),
        (["forward", *BLOG, "--temperature", "1_0"], "--temperature"),
        (["jacobian", *BLOG, "--precision", "２"], "--precision"),
        (["check", *BLOG, "--rtol", "0.0_1"], "--rtol"),
    ],
)
def test_a_number_a_person_does_not_type_is_refused_by_name(args, option):
    result = run(*args)
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.strip().splitlines()[-1].startswith(f"Error: Invalid value for '{option}': ")
    assert result.stderr.rstrip().endswith("in ASCII digits")


def test_a_number_that_underflows_to_zero_is_refused_as_typed():
    # "--temperature 1e-400" was refused as "0.0 is not a finite number > 0": not what was typed
    result = run("forward", *BLOG, "--temperature", "1e-400")
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "Error: Invalid value for '--temperature': 1e-400 underflows to 0 in a 64-bit float"
    )
    assert run("check", *BLOG, "--atol", "0").exit_code in (0, 1)  # a zero typed as one is a zero
