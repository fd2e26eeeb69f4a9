"""Read the Dockerfile and replay its builder stage in a local directory.

No container engine runs in CI, so `python -m tests.chart.dockerfile` does
what the builder stage does, instruction by instruction: ENV, WORKDIR, COPY
from the build context and every RUN, with the venv paths moved into a
temporary directory. The image therefore installs exactly what CI installed.
The final stage is checked by tests/chart/test_dockerfile.py instead.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO_ROOT / "Dockerfile"
# Paths the builder stage keeps in ENV; the replay moves them here.
RELOCATED_ENV = ("VENV", "BUILD_VENV", "DIST")


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction with its continuation lines joined."""

    keyword: str
    arguments: str
    line: int


def parse(text: str) -> list[Instruction]:
    """Split a Dockerfile into instructions, dropping comments."""
    instructions: list[Instruction] = []
    pending = ""
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).partition(" ")
        instructions.append(Instruction(keyword.upper(), arguments.strip(), start))
        pending = ""
    return instructions


def stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    """Group instructions by build stage; each group starts with its FROM."""
    grouped: list[list[Instruction]] = []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            grouped.append([])
        if grouped:
            grouped[-1].append(instruction)
    return grouped


def _env_pairs(arguments: str) -> dict[str, str]:
    pairs = {}
    for word in shlex.split(arguments):
        key, _, value = word.partition("=")
        pairs[key] = value
    return pairs


def _copy(arguments: str, workdir: Path) -> None:
    *sources, destination = shlex.split(arguments)
    target = workdir / destination
    for source in sources:
        origin = REPO_ROOT / source
        if origin.is_dir():
            shutil.copytree(
                origin, target, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, target / origin.name)


def _python_shim(scratch: Path) -> Path:
    # RUN steps call `python`, which is Python 3.11 in the image. Here it is
    # the interpreter running this replay, or its base when run from a venv.
    bin_dir = scratch / "bin"
    bin_dir.mkdir()
    base = getattr(sys, "_base_executable", sys.executable)
    (bin_dir / "python").symlink_to(base)
    return bin_dir


def replay(scratch: Path) -> Path:
    """Run the builder stage under `scratch` and return the venv it made."""
    builder = stages(parse(DOCKERFILE.read_text()))[0]
    env = dict(os.environ)
    env["PATH"] = f"{_python_shim(scratch)}{os.pathsep}{env['PATH']}"
    workdir = scratch
    for instruction in builder[1:]:
        where = f"Dockerfile:{instruction.line}: {instruction.keyword}"
        print(f"{where} {instruction.arguments}")
        if instruction.keyword == "ENV":
            env.update(_env_pairs(instruction.arguments))
            for name in RELOCATED_ENV:
                if name in env:
                    env[name] = str(scratch / name.lower())
        elif instruction.keyword == "WORKDIR":
            workdir = scratch / instruction.arguments.lstrip("/")
            workdir.mkdir(parents=True, exist_ok=True)
        elif instruction.keyword == "COPY":
            _copy(instruction.arguments, workdir)
        elif instruction.keyword == "RUN":
            subprocess.run(
                ["/bin/sh", "-c", instruction.arguments],
                cwd=workdir,
                env=env,
                check=True,
            )
        else:
            raise ValueError(f"{where} cannot be replayed")
    return Path(env["VENV"])


def main() -> int:
    if sys.version_info[:2] != (3, 11):
        print(f"error: the image runs Python 3.11, this is {sys.version.split()[0]}")
        return 1
    with tempfile.TemporaryDirectory(prefix="image-steps-") as scratch:
        venv = replay(Path(scratch))
        # The image's entry point must start.
        subprocess.run(
            [str(venv / "bin" / "runai-secrets-webhook"), "--help"], check=True
        )
    print("Dockerfile builder stage replayed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
