"""Run the fuzz targets under atheris, or replay their seed corpus.

    python fuzz/run.py                      # every target, 20 s each
    python fuzz/run.py --target patch --seconds 3600
    python fuzz/run.py --replay             # seed corpus only, no atheris

Inputs that libFuzzer finds interesting go to a temporary directory, so the
seed corpus in fuzz/corpus/<target> stays as committed; pass --keep DIR to
keep them. A crash leaves its input in the current directory as
crash-<hash>, and the run exits non-zero.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"
DICTIONARY = ROOT / "fuzz" / "webhook.dict"

# Inputs larger than this slow every run and find nothing new: env values
# and annotations are short.
MAX_INPUT_BYTES = 4096


def replay(names: list[str]) -> int:
    """Run every seed input through its target once; return the inputs run."""
    from fuzz.targets import TARGETS

    count = 0
    for name in names:
        for path in sorted((CORPUS / name).iterdir()):
            TARGETS[name](path.read_bytes())
            count += 1
    return count


def fuzz_one(name: str, seconds: int, keep: Path | None) -> int:
    """Fuzz one target in a child process, because libFuzzer exits when done."""
    with tempfile.TemporaryDirectory(prefix=f"fuzz-{name}-") as scratch:
        found = keep / name if keep else Path(scratch)
        found.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--child",
            name,
            str(found),
            str(CORPUS / name),
            f"-max_total_time={seconds}",
            f"-max_len={MAX_INPUT_BYTES}",
            f"-dict={DICTIONARY}",
            "-print_final_stats=1",
        ]
        return subprocess.run(command, cwd=Path.cwd(), check=False).returncode


def child(argv: list[str]) -> None:
    """Run inside the child: instrument the webhook code, then fuzz forever."""
    import atheris

    sys.path.insert(0, str(ROOT))
    with atheris.instrument_imports(include=["webhook"]):
        from fuzz.targets import TARGETS

    name = argv[0]
    atheris.Setup([sys.argv[0], *argv[1:]], TARGETS[name])
    atheris.Fuzz()


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2:])
        return 0

    sys.path.insert(0, str(ROOT))
    from fuzz.targets import TARGETS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--target", choices=[*TARGETS, "all"], default="all", help="target to run"
    )
    parser.add_argument(
        "--seconds", type=int, default=20, help="fuzzing time per target"
    )
    parser.add_argument("--keep", type=Path, help="directory for the inputs found")
    parser.add_argument(
        "--replay", action="store_true", help="only run the seed corpus, no atheris"
    )
    args = parser.parse_args()
    names = list(TARGETS) if args.target == "all" else [args.target]

    if args.replay:
        print(f"replayed {replay(names)} seed inputs")
        return 0
    failed = [name for name in names if fuzz_one(name, args.seconds, args.keep)]
    if failed:
        print(f"fuzzing found a crash in: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
