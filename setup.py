"""The one part of the build that pyproject.toml cannot declare: which packages, and their data.

The repository's samples/ folder ships inside the package as smjac/_samples, so that an installed
smjac can write the files its examples read anywhere (smjac/samples.py, ``smjac samples .``).
Each folder of samples/ is listed as a package, and all its files as that package's data.
Everything else (the project, its dependencies, the version) is in pyproject.toml.
"""

from pathlib import Path

from setuptools import find_namespace_packages, setup

FOLDERS = sorted(p for p in Path("samples").rglob("*") if p.is_dir() and p.name != "__pycache__")
SAMPLES = ["smjac._samples", *("smjac._samples." + ".".join(p.relative_to("samples").parts) for p in FOLDERS)]

setup(
    packages=find_namespace_packages(include=["smjac", "smjac.*"], exclude=["*.__pycache__"]) + SAMPLES,
    package_dir={"smjac._samples": "samples"},
    package_data={"smjac": ["py.typed", "data/*.json"], **{name: ["*"] for name in SAMPLES}},
)
