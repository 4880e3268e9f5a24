"""Every byte written or a non-zero exit: the installed smjac against real pipes, full disks,
closed streams, odd encodings and signals (subprocesses, as a shell would run it)."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from .conftest import ROOT

SMJAC = [sys.executable, "-c", "from smjac.cli import main; main()"]
SAMPLE = ["-W", str(ROOT / "samples/blog/W.json"), "-x", str(ROOT / "samples/blog/x.json")]
COMMANDS = [
    ["forward", *SAMPLE],
    ["jacobian", *SAMPLE],
    ["forward", *SAMPLE, "--format", "json"],
    ["check", *SAMPLE, "--format", "json"],
    ["grad", *SAMPLE, "--target", "1", "-f", "table"],
    ["demo"],
    ["--help"],
    ["--version"],
]


def smjac(*args: str, env: dict | None = None, **kw):
    full = {**os.environ, "COLUMNS": "80", **(env or {})}
    full.pop("SMJAC_DEBUG", None)
    return subprocess.run([*SMJAC, *args], env=full, capture_output=True, **kw)


@pytest.fixture(scope="module")
def big(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("big") / "l100.npz"
    rng = np.random.default_rng(0)
    np.savez(path, W=rng.normal(size=(100, 100)), x=rng.normal(size=100))
    return path


@pytest.mark.parametrize("unbuffered", ["", "1"])
@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a[:1] + a[3:]))
def test_a_full_disk_is_an_error_never_a_short_success(args, unbuffered):
    with open("/dev/full", "wb") as full:
        proc = subprocess.run(
            [*SMJAC, *args],
            stdout=full,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": unbuffered},
        )
    assert proc.returncode == 2
    assert proc.stderr.decode() == "Error: cannot write to standard output: No space left on device\n"


@pytest.mark.parametrize("unbuffered", ["", "1"])
def test_a_file_size_limit_is_an_error(tmp_path, big, unbuffered):
    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    with open(tmp_path / "out.csv", "wb") as out:
        proc = subprocess.run(
            [*SMJAC, "jacobian", "--layer", str(big)], stdout=out, stderr=subprocess.PIPE, preexec_fn=limit,
            env={**os.environ, "PYTHONUNBUFFERED": unbuffered},
        )  # fmt: skip
    assert proc.returncode == 2 and b"cannot write to standard output: File too large" in proc.stderr
    proc = subprocess.run(
        [*SMJAC, "jacobian", "--layer", str(big), "-o", str(tmp_path / "J.npy")],
        capture_output=True,
        preexec_fn=limit,
    )
    assert proc.returncode == 2 and b"J.npy: cannot write it (File too large)" in proc.stderr
    assert sorted(os.listdir(tmp_path)) == ["out.csv"]  # no J.npy, whole or in part


@pytest.mark.parametrize("unbuffered", ["", "1"])
@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_a_reader_that_leaves_ends_it_quietly_with_141(big, unbuffered, fmt):
    env = {**os.environ, "PYTHONUNBUFFERED": unbuffered}
    args = ["jacobian", "--layer", str(big), "--format", fmt]  # 1M numbers: far more than a pipe holds
    p = subprocess.Popen([*SMJAC, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert p.stdout is not None and p.stderr is not None
    p.stdout.read(100)
    p.stdout.close()
    err = p.stderr.read()
    assert p.wait(timeout=60) == 141 and err == b""


def test_stderr_closed_a_passing_check_exits_0_and_usage_errors_stay_off_stdout():
    ok = subprocess.run([*SMJAC, "check", *SAMPLE], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, close_fds=True,
                        pass_fds=(), preexec_fn=lambda: os.close(2))  # fmt: skip
    assert ok.returncode == 0 and ok.stdout.startswith(b"name,max_error")
    bad = subprocess.run([*SMJAC, "check", "--bogus"], stdout=subprocess.PIPE, preexec_fn=lambda: os.close(2))
    assert bad.returncode == 2 and bad.stdout == b""
    written = subprocess.run(
        [*SMJAC, "forward", *SAMPLE, "-o", "/dev/null/x.json"],
        stdout=subprocess.PIPE,
        preexec_fn=lambda: os.close(2),
    )
    assert written.returncode == 2 and written.stdout == b""


def test_stdout_or_stdin_closed_is_an_error_not_a_traceback():
    proc = smjac("forward", *SAMPLE, preexec_fn=lambda: os.close(1))
    assert proc.returncode == 2
    assert proc.stderr == b"Error: cannot write to standard output: it was closed when smjac started\n"
    proc = smjac("forward", "-W", SAMPLE[1], "-x", "-", preexec_fn=lambda: os.close(0))
    assert (
        proc.returncode == 2
        and proc.stderr == b"Error: -: stdin is closed; pipe a matrix in (smjac ... -x - < x.json)\n"
    )


@pytest.mark.parametrize(
    "how", [{"PYTHONIOENCODING": "ascii"}, {"LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0"}, {"LC_ALL": "C"}]
)
@pytest.mark.parametrize(
    "args",
    [
        ["forward", *SAMPLE, "-f", "table"],
        ["jacobian", *SAMPLE, "-f", "table"],
        ["jacobian", *SAMPLE, "--legend"],
        ["grad", *SAMPLE, "--target", "1", "-f", "table"],
        ["check", *SAMPLE, "-f", "table"],
        ["demo"],
        ["jacobian", "--help"],
    ],
    ids=lambda a: " ".join(a[:1] + a[5:]),
)
def test_an_ascii_stream_gets_ascii(args, how):
    proc = smjac(*args, env={k: v for k, v in how.items()})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.isascii() and proc.stderr.isascii()
    text = proc.stdout.decode()
    assert "Traceback" not in text and "?" not in text  # every symbol has an ASCII stand-in
    if args[0] == "jacobian" and "--legend" in args:
        assert '"w[0,1]: input 1 -> output 0"' in text
    if args[0] == "grad":
        assert "x0" in text and "z1" in text


@pytest.mark.parametrize("columns", ["40", "60", "100"])
@pytest.mark.parametrize(("extra", "shows"), [([], "..."), (["--legend"], "->")])
def test_an_ascii_table_is_laid_out_in_ascii(tmp_path, columns, extra, shows):
    # "…" and "→" were laid out as one character and then written as "..." and "->": each row ran
    # past the table's width (and rich's ASCII box, drawn instead of smjac's, added edges)
    np.savez(tmp_path / "l.npz", W=np.arange(24.0).reshape(4, 6) / 10, x=np.ones(4))
    args = ["jacobian", "--layer", str(tmp_path / "l.npz"), *extra, "-f", "table", "--color", "never"]
    ascii_env = {"LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "COLUMNS": columns}
    lines = smjac(*args, env=ascii_env).stdout.decode().splitlines()
    unicode = smjac(*args, env={"COLUMNS": columns, "PYTHONIOENCODING": "utf-8"}).stdout.decode().splitlines()
    assert any(shows in line for line in lines) and len(lines) == len(unicode)
    # the table as at a UTF-8 terminal, in ASCII stand-ins: every line as wide as the others, and a
    # matrix, which leaves columns out to fit, within the terminal (a legend folds in it)
    assert len({len(line) for line in lines}) == 1 and (len(lines[0]) <= int(columns) or extra)
    assert all(line.isascii() for line in lines) and not any(line.startswith(("|", "+")) for line in lines)


@pytest.mark.parametrize("columns", ["80", "200"])
def test_the_walk_through_on_an_ascii_stream_fits_the_terminal(columns):
    # its rules, prose and tables were laid out in Unicode and widened after (δ is delta): lines
    # ran past the terminal's width
    env = {"LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "COLUMNS": columns}
    proc = smjac("demo", env=env)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.decode().splitlines()
    assert len(lines) > 50 and all(line.isascii() and len(line) <= int(columns) for line in lines)


def test_a_name_an_ascii_stream_cannot_hold_is_escaped_not_lost(tmp_path):
    # "Ümlaut.json" was shown as "?mlaut.json": which file it was could not be told
    out = tmp_path / "Ümlaut.json"
    out.write_text("{}")
    proc = smjac("forward", *SAMPLE, "-o", os.fsencode(out).decode("utf-8"), env={"LC_ALL": "C", "LANG": "C"})
    assert proc.returncode == 2 and proc.stderr.isascii()
    assert proc.stderr.decode() == f"Error: {tmp_path}/\\xdcmlaut.json: exists; add --force to replace it\n"
    # where Python decodes the name as ASCII, its bytes are shown as bytes, in every refusal
    ascii_only = {"LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0"}
    for name, why in (("Ümlaut.json", "exists; add --force"), ("日.npy", "so it cannot be .npy")):
        (tmp_path / name).write_text("{}")
        proc = smjac("forward", *SAMPLE, "-o", os.fsencode(tmp_path / name), env=ascii_only)
        shown = "".join(f"\\x{b:02x}" if b > 127 else chr(b) for b in name.encode())
        assert proc.returncode == 2 and proc.stderr.isascii()
        assert proc.stderr.decode().startswith(f"Error: {tmp_path}/{shown}: ") and why in proc.stderr.decode()


@pytest.mark.parametrize(
    "sig",
    [
        signal.SIGTERM,
        signal.SIGHUP,
        signal.SIGINT,
        signal.SIGALRM,
        signal.SIGUSR1,
        signal.SIGXCPU,
        signal.SIGPROF,
    ],
)
@pytest.mark.parametrize("suffix", [".npy", ".csv"])
def test_a_signal_while_writing_leaves_nothing_and_exits_128_plus_it(tmp_path, sig, suffix):
    layer = tmp_path / "big.npz"
    rng = np.random.default_rng(1)
    np.savez(layer, W=rng.normal(size=(400, 400)), x=rng.normal(size=400))  # dh/dW: 512 MB
    out = tmp_path / "out"
    out.mkdir()
    p = subprocess.Popen([*SMJAC, "jacobian", "--layer", str(layer), "-o", str(out / f"J{suffix}")],
                         stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.monotonic() + 60
    while not os.listdir(out) and time.monotonic() < deadline:  # until the temporary file is there
        time.sleep(0.02)
    assert os.listdir(out), "the command never started writing"
    p.send_signal(sig)
    status = p.wait(timeout=60)
    assert p.stderr is not None
    err = p.stderr.read()
    assert status == 128 + sig, err
    assert os.listdir(out) == []
    assert b"Traceback" not in err


def test_force_keeps_the_replaced_files_mode_and_a_new_file_gets_the_umasks(tmp_path):
    kept = tmp_path / "secret.json"
    kept.write_text("{}")
    kept.chmod(0o600)
    assert smjac("forward", *SAMPLE, "-o", str(kept), "--force").returncode == 0
    assert kept.stat().st_mode & 0o777 == 0o600 and kept.read_text().startswith("{")
    old = os.umask(0o027)
    try:
        assert smjac("forward", *SAMPLE, "-o", str(tmp_path / "new.json")).returncode == 0
    finally:
        os.umask(old)
    assert (tmp_path / "new.json").stat().st_mode & 0o777 == 0o640


def test_a_name_too_long_is_refused_in_one_line(tmp_path):
    proc = smjac("forward", *SAMPLE, "-o", str(tmp_path / ("a" * 300 + ".json")))
    assert proc.returncode == 2 and proc.stderr.count(b"\n") == 1 and b"File name too long" in proc.stderr


def test_an_unexpected_exception_is_one_line_and_exit_2_and_debug_shows_it(tmp_path):
    # a bug is staged by breaking the core in the process, then running the real entry point
    code = "import smjac.maths as c; c.layer_forward = lambda L: 1 / 0; from smjac.cli import main; main()"
    proc = subprocess.run(
        [sys.executable, "-c", code, "forward", *SAMPLE],
        capture_output=True,
        env={**os.environ, "SMJAC_DEBUG": ""},
    )
    assert proc.returncode == 2
    assert (
        proc.stderr
        == b"Error: internal error: ZeroDivisionError: division by zero; please report it (SMJAC_DEBUG=1 shows where)\n"
    )
    debug = subprocess.run(
        [sys.executable, "-c", code, "forward", *SAMPLE],
        capture_output=True,
        env={**os.environ, "SMJAC_DEBUG": "1"},
    )
    assert debug.returncode == 2 and b"Traceback" in debug.stderr and b"ZeroDivisionError" in debug.stderr


def test_notes_are_never_broken_inside_a_word():
    proc = smjac("grad", *SAMPLE, "--upstream", str(ROOT / "samples/blog/x.json"), env={"COLUMNS": "40"})
    assert proc.returncode == 2  # 3 entries for K = 5: a long error message
    assert proc.stderr.count(b"\n") == 1


def test_help_fills_a_wide_terminal():
    wide = smjac("jacobian", "--help", env={"COLUMNS": "160"}).stdout.decode()
    assert max(map(len, wide.splitlines())) > 100
    narrow = smjac("jacobian", "--help", env={"COLUMNS": "80"}).stdout.decode()
    assert len(wide.splitlines()) < len(narrow.splitlines())  # the same text, wrapped wider


def test_an_ignored_hangup_stays_ignored(tmp_path):
    # nohup: the parent ignores SIGHUP, so must smjac; the run completes and exits 0
    layer = tmp_path / "l.npz"
    rng = np.random.default_rng(2)
    np.savez(layer, W=rng.normal(size=(300, 300)), x=rng.normal(size=300))
    out = tmp_path / "J.npy"

    def ignore_hup():
        signal.signal(signal.SIGHUP, signal.SIG_IGN)

    p = subprocess.Popen([*SMJAC, "jacobian", "--layer", str(layer), "-o", str(out)], preexec_fn=ignore_hup,
                         stderr=subprocess.PIPE)  # fmt: skip
    time.sleep(1.0)
    p.send_signal(signal.SIGHUP)
    assert p.wait(timeout=120) == 0 and out.stat().st_size == 300 * 300 * 300 * 8 + 128


def test_a_narrow_terminal_never_cuts_a_number():
    for args in (["check", *SAMPLE, "-f", "table"], ["forward", *SAMPLE, "-f", "table"]):
        proc = smjac(*args, env={"COLUMNS": "20"})
        assert proc.returncode == 0 and "…" not in proc.stdout.decode()
    proc = smjac("check", *SAMPLE, "-f", "table", env={"COLUMNS": "20"})
    assert "1.39e-17" in proc.stdout.decode() or "e-1" in proc.stdout.decode()


def test_absurd_terminal_sizes_and_input_caps_are_taken_in_stride():
    assert smjac("demo", env={"COLUMNS": "99999999999999999999"}).returncode == 0
    proc = smjac("--max-input-bytes", "64000000000", "forward", *SAMPLE)
    assert proc.returncode == 0 and proc.stdout.startswith(b"z,h\n")


def test_control_characters_in_a_message_are_shown_not_sent():
    # a tensor named "x\nError: fake \x1b[31m" must not pass for smjac's own line or act on the terminal
    import io

    from smjac.outputs.writer import message

    out = io.StringIO()
    message("Error: bad name x\nError: fake \x1b[31m\x07", out)
    assert out.getvalue() == "Error: bad name x\n  Error: fake \\x1b[31m\\x07\n"
    assert "\x1b" not in out.getvalue()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signals_in_bursts_at_any_moment_of_a_write_never_leave_a_temporary_file(tmp_path, sig):
    # Bursts of signals (a second one arriving while the first one's clean-up runs) at moments
    # spread over the writing of -o: before, such runs left ".J.npy.XXXXXXXX.tmp" behind.
    layer = tmp_path / "l.npz"
    rng = np.random.default_rng(3)
    np.savez(layer, W=rng.normal(size=(150, 150)), x=rng.normal(size=150))  # dh/dW: 27 MB
    args = ["jacobian", "--layer", str(layer), "-o"]

    def took(*more: str) -> float:
        started = time.monotonic()
        assert smjac(*more).returncode == 0
        return time.monotonic() - started

    ready = took("forward", *SAMPLE)  # start-up: until then a signal ends Python itself
    whole = took(*args, str(tmp_path / "J.npy"))
    tries = 10
    for i in range(tries):
        out = tmp_path / f"out{i}"
        out.mkdir()
        p = subprocess.Popen([*SMJAC, *args, str(out / "J.npy")], stderr=subprocess.PIPE)
        time.sleep(ready + (whole - ready) * (0.1 + 1.0 * i / tries))
        for _ in range(6):
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(sig)
            time.sleep(0.002)
        status = p.wait(timeout=60)
        assert p.stderr is not None
        err = p.stderr.read()
        left = os.listdir(out)
        assert left in ([], ["J.npy"]), (left, err)  # nothing, or the whole file: never a temporary one
        if status == -sig:  # still starting: Python's own handling ended it, before any file
            assert left == []
            continue
        assert status in (0, 128 + sig), err
        assert b"Traceback" not in err
        if left:
            assert (out / "J.npy").stat().st_size == 150 * 150 * 150 * 8 + 128


def test_without_sighup_files_are_written(tmp_path):
    # Windows has no signal.SIGHUP: every -o was an internal error (AttributeError)
    code = "import signal; del signal.SIGHUP; from smjac.cli import main; main()"
    out = tmp_path / "h.json"
    proc = subprocess.run(
        [sys.executable, "-c", code, "forward", *SAMPLE, "-o", str(out)], capture_output=True
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == f"wrote {out}\n".encode() or proc.stderr.startswith(f"wrote {out}".encode())
    assert os.listdir(tmp_path) == ["h.json"]


# ---------------------------------------------------------------- binary results to a pipe


def test_npy_to_a_pipe_is_the_file_minus_o_writes(tmp_path):
    assert smjac("jacobian", *SAMPLE, "-o", str(tmp_path / "J.npy")).returncode == 0
    whole = (tmp_path / "J.npy").read_bytes()
    for how in (["-f", "npy"], ["-o", "-", "-f", "npy"]):  # streamed in blocks to stdout
        proc = smjac("jacobian", *SAMPLE, *how)
        assert proc.returncode == 0 and proc.stderr == b"", proc.stderr
        assert proc.stdout == whole
    proc = smjac("grad", *SAMPLE, "--target", "1", "-o", "-", "-f", "npz")
    assert proc.returncode == 0, proc.stderr
    with np.load(__import__("io").BytesIO(proc.stdout)) as z:
        assert z["grad"].shape == (3, 5) and float(z["loss"]) > 0
    proc = smjac("jacobian", *SAMPLE, "-f", "png")
    assert proc.returncode == 0 and proc.stdout.startswith(b"\x89PNG\r\n\x1a\n")


def test_minus_o_dash_alone_is_stdout_as_without_it():
    assert smjac("forward", *SAMPLE, "-o", "-").stdout == smjac("forward", *SAMPLE).stdout


def test_binary_to_a_terminal_is_refused_in_one_line_before_any_work():
    import pty

    leader, follower = pty.openpty()
    try:
        proc = subprocess.run(
            [*SMJAC, "jacobian", *SAMPLE, "-f", "npy"], stdout=follower, stderr=subprocess.PIPE
        )
    finally:
        os.close(follower)
        os.close(leader)
    assert proc.returncode == 2
    assert proc.stderr.decode() == (
        "Error: --format npy is binary, not for a terminal: send stdout to a file or a pipe "
        "(> result.npy), or use -o FILE.npy\n"
    )


def test_an_input_cap_after_the_command_overrides_one_before_it():
    # as every other option: the last given wins (the one before the command won, an alias's cap
    # beating the user's own)
    proc = smjac("--max-input-bytes", "10", "forward", *SAMPLE, "--max-input-bytes", "2G")
    assert proc.returncode == 0, proc.stderr
    proc = smjac("--max-input-bytes", "2G", "forward", *SAMPLE, "--max-input-bytes", "10")
    assert proc.returncode == 2 and b"10 bytes" in proc.stderr
