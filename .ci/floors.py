"""The lowest-versions check: every direct dependency's floor in pyproject.toml (the
project's and the dev extra's) equals the version installed by the lowest-direct
resolution, so each floor is a version the smoke tests ran on."""

import sys
from importlib import metadata
from pathlib import Path

import tomllib
from packaging.requirements import Requirement
from packaging.version import Version

project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
wrong = []
for line in [*project["dependencies"], *project["optional-dependencies"]["dev"]]:
    req = Requirement(line)
    floors = [Version(s.version) for s in req.specifier if s.operator == ">="]
    if not floors:
        wrong.append(f"{req.name}: no floor (>=) in pyproject.toml")
        continue
    installed = Version(Version(metadata.version(req.name)).base_version)
    if installed != floors[0]:
        wrong.append(f"{req.name}: floor {floors[0]}, installed {installed}")
    print(f"{req.name:28} floor {floors[0]!s:10} installed {installed}")
if wrong:
    print("floors that are not what the lowest resolution installed:", *wrong, sep="\n  ")
    sys.exit(1)
