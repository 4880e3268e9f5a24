"""Text at the speed of C: smjac's CSV and JSON, whole processes side by side with a library.

Run from the repository root after installing the project (orjson comes with it):

    python benchmarks/text.py                      # every job, 5 interleaved rounds (~5 minutes)
    python benchmarks/text.py --rounds 7 --jobs jacobian-csv,read-csv
    python benchmarks/text.py --smjac-path OLD     # smjac imported from OLD, a checkout from before

Each job is a pair of whole processes. A is the smjac command; B is a short program that does the
same work in numpy and reads or writes the same numbers with a library that works at the speed of
C: ``orjson`` (``OPT_SERIALIZE_NUMPY``, row by row or a block of rows at a time, brackets cut
with ``bytes.replace``) or ``np.loadtxt``. A and B run in turn, A B then B A, for ``--rounds``
rounds after one untimed run of each; what they print goes to the null device. A row gives the
median wall time of each, the median of the per-round ratios A ÷ B, the same for CPU time, and
each one's peak resident memory (its own, from ``wait4``).

The text each writes is the same numbers, not always the same bytes: B writes a table's integer
columns (sample, i) as floats ("3.0"), and JSON without the spaces ``json.dumps`` puts after
commas, which smjac keeps.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

# job: (what it is, smjac's arguments; {d} is the data folder)
JOBS: dict[str, tuple[str, list[str]]] = {
    "jacobian-csv": ("dh/dW of a 256×256 layer (16.8M numbers) as CSV, streamed",
                     ["jacobian", "-W", "{d}/W256.npy", "-x", "{d}/x256.npy", "-f", "csv"]),
    "jacobian-json": ("the same as JSON, held whole",
                      ["jacobian", "-W", "{d}/W256.npy", "-x", "{d}/x256.npy", "-f", "json"]),
    "forward-csv": ("forward pass of 4000 samples, K = 1000, as CSV sample,i,z,h (4M rows)",
                    ["forward", "-W", "{d}/Wf.npy", "-x", "{d}/X.npy", "-f", "csv"]),
    "forward-mapped-csv": ("the same with x memory-mapped (over --max-input-bytes), streamed",
                           ["--max-input-bytes", "8000000", "forward", "-W", "{d}/Wf.npy", "-x", "{d}/X.npy",
                            "-f", "csv"]),
    "forward-json": ("the same forward pass as JSON (8M numbers)",
                     ["forward", "-W", "{d}/Wf.npy", "-x", "{d}/X.npy", "-f", "json"]),
    "grad-csv": ("cross-entropy gradient, n = 4096, K = 2000 (8.2M numbers) as CSV",
                 ["grad", "-W", "{d}/Wg.npy", "-x", "{d}/xg.npy", "--target", "3", "-f", "csv"]),
    "grad-json": ("the same as JSON",
                  ["grad", "-W", "{d}/Wg.npy", "-x", "{d}/xg.npy", "--target", "3", "-f", "json"]),
    "read-csv": ("forward on a 4000×512 batch read from CSV (40 MB), K = 10",
                 ["forward", "-W", "{d}/W512x10.npy", "-x", "{d}/X.csv", "-f", "csv"]),
    "read-json": ("forward on the same batch read from JSON (42 MB)",
                  ["forward", "-W", "{d}/W512x10.npy", "-x", "{d}/X.json", "-f", "csv"]),
}  # fmt: skip


def make_data(d: Path) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    np.save(d / "W256.npy", rng.standard_normal((256, 256)) / 16)
    np.save(d / "x256.npy", rng.standard_normal(256))
    np.save(d / "Wf.npy", rng.standard_normal((512, 1000)) / 20)
    np.save(d / "W512x10.npy", rng.standard_normal((512, 10)) / 20)
    np.save(d / "Wg.npy", rng.standard_normal((4096, 2000)) / 60)
    np.save(d / "xg.npy", rng.standard_normal(4096))
    X = rng.standard_normal((4000, 512))
    np.save(d / "X.npy", X)
    (d / "X.csv").write_text("\n".join(",".join(map(repr, row)) for row in X.tolist()) + "\n")
    (d / "X.json").write_text(json.dumps(X.tolist()))


# ---------------------------------------------------------------- B: the library doing the same


def softmax(z: Any) -> Any:
    import numpy as np

    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def write_rows(out: Any, M: Any, rows_at_once: int) -> None:
    """CSV by orjson: a block of rows per call, ``],[`` turned into a newline."""
    import orjson

    for r0 in range(0, len(M), rows_at_once):
        text = orjson.dumps(M[r0 : r0 + rows_at_once], option=orjson.OPT_SERIALIZE_NUMPY)
        out.write(memoryview(text.replace(b"],[", b"\n"))[2:-2])
        out.write(b"\n")


def child(job: str, d: Path) -> None:
    import numpy as np
    import orjson

    out = sys.stdout.buffer
    numpy = orjson.OPT_SERIALIZE_NUMPY
    if job.startswith("jacobian"):
        W, x = np.load(d / "W256.npy"), np.load(d / "x256.npy")
        h = softmax(x @ W)
        S = np.diag(h) - np.outer(h, h)
        J = (S[:, :, None] * x).reshape(len(h), -1)  # K × K·n, filled once as smjac's is
        if job.endswith("csv"):
            for row in J:  # as the issue measured it: orjson.dumps(row), brackets cut
                out.write(memoryview(orjson.dumps(row, option=numpy))[1:-1])
                out.write(b"\n")
        else:
            fields = {
                "of": "h",
                "wrt": "W",
                "method": "shortcut",
                "shape": [1, *J.shape],
                "jacobian": J[None],
            }
            out.write(orjson.dumps(fields, option=numpy) + b"\n")
    elif job.startswith("forward"):
        W, X = np.load(d / "Wf.npy"), np.load(d / "X.npy")
        z = X @ W
        h = softmax(z)
        if job.endswith("csv"):
            N, K = z.shape
            table = np.stack([np.repeat(np.arange(N), K), np.tile(np.arange(K), N), z.ravel(), h.ravel()], 1)
            out.write(b"sample,i,z,h\n")
            write_rows(out, table.astype(np.float64), 2**14)
        else:
            out.write(orjson.dumps({"z": z, "h": h}, option=numpy) + b"\n")
    elif job.startswith("grad"):
        W, x = np.load(d / "Wg.npy"), np.load(d / "xg.npy")
        h = softmax(x @ W)
        h[3] -= 1
        G = np.outer(x, h)
        if job.endswith("csv"):
            write_rows(out, G, 1)
        else:
            out.write(orjson.dumps({"grad": G, "loss": float(-np.log(h[3] + 1))}, option=numpy) + b"\n")
    else:  # read-csv, read-json: the numbers read, then the same forward pass and its CSV
        if job == "read-csv":
            X = np.loadtxt(d / "X.csv", delimiter=",", ndmin=2)
        else:
            X = np.array(orjson.loads((d / "X.json").read_bytes()), dtype=np.float64)
        W = np.load(d / "W512x10.npy")
        z = X @ W
        h = softmax(z)
        N, K = z.shape
        table = np.stack([np.repeat(np.arange(N), K), np.tile(np.arange(K), N), z.ravel(), h.ravel()], 1)
        out.write(b"sample,i,z,h\n")
        write_rows(out, table, 2**14)


# ---------------------------------------------------------------- timing whole processes


def run(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds and peak resident MiB of one whole process."""
    with open(os.devnull, "wb") as null:
        start = time.perf_counter()
        # run from the data folder: "python -m smjac" looks in the current folder first
        proc = subprocess.Popen(cmd, stdout=null, stderr=subprocess.PIPE, env=env, cwd=cwd)
        assert proc.stderr is not None
        err = proc.stderr.read()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}: {err.decode()[-400:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", default=",".join(JOBS), help=f"comma-separated, of: {', '.join(JOBS)}")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timed rounds (default 5)")
    parser.add_argument("--smjac-path", help="import smjac from this folder instead (a 'before' checkout)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--make-data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, Path(args.data))
        return
    if args.make_data:
        make_data(Path(args.make_data))
        return
    jobs = args.jobs.split(",")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    smjac_env = dict(env)
    if args.smjac_path:
        smjac_env["PYTHONPATH"] = os.pathsep.join([args.smjac_path, *filter(None, [env.get("PYTHONPATH")])])
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        # made in a child: this process stays small, since a child's peak memory counts its
        # parent's before it starts the program (fork, then exec)
        subprocess.run([sys.executable, __file__, "--make-data", str(d)], check=True)
        where = [sys.executable, "-c", "import smjac, sys; print(smjac.__file__, smjac.__version__)"]
        found = subprocess.run(where, env=smjac_env, cwd=d, capture_output=True, text=True, check=True)
        floor = run([sys.executable, "-c", "pass"], env, d)[2]
        print(f"smjac from {found.stdout.strip()}; a bare python's peak, the floor: {floor:.0f} MiB\n")
        print("| job | smjac | library | smjac ÷ library (wall) | (CPU) | peak MiB smjac / library |")
        print("|---|---:|---:|---:|---:|---:|")
        for job in jobs:
            what, argv = JOBS[job]
            a = [sys.executable, "-m", "smjac", *(p.format(d=d) for p in argv)]
            b = [sys.executable, __file__, "--child", job, "--data", str(d)]
            run(a, smjac_env, d), run(b, env, d)  # warm-up: the page cache, the bytecode
            times: dict[str, list[tuple[float, float, float]]] = {"a": [], "b": []}
            for r in range(args.rounds):
                for side in "ab" if r % 2 == 0 else "ba":
                    times[side].append(run(a, smjac_env, d) if side == "a" else run(b, env, d))
            wall = [x[0] / y[0] for x, y in zip(times["a"], times["b"], strict=True)]
            cpu = [x[1] / y[1] for x, y in zip(times["a"], times["b"], strict=True)]
            ta, tb = (statistics.median(x[0] for x in times[s]) for s in "ab")
            ma, mb = (statistics.median(x[2] for x in times[s]) for s in "ab")
            print(
                f"| {job}: {what} | {ta:.2f} s | {tb:.2f} s | {statistics.median(wall):.2f} | "
                f"{statistics.median(cpu):.2f} | {ma:.0f} / {mb:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
