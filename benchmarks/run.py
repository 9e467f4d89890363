"""Run every benchmark in benchmarks/ and refresh the tables in benchmarks/README.md.

A benchmark is any ``benchmarks/*.py`` other than this file and ``_*.py``. Each
runs as its own subprocess with this interpreter, writes
``benchmarks/results/<name>.json`` and provides ``markdown_table(result) -> str``.
After all have run, each table is rewritten in README.md between the markers
``<!-- <name>:start -->`` and ``<!-- <name>:end -->`` (a missing section is
appended). Exits non-zero if any benchmark fails.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
README = HERE / "README.md"
RESULTS = HERE / "results"


def benchmarks() -> list[Path]:
    return sorted(p for p in HERE.glob("*.py")
                  if p.name != Path(__file__).name and not p.name.startswith("_"))


def update_readme_section(name: str, body: str) -> None:
    """Replace the text between the markers of ``name`` in README.md, or append it."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = README.read_text() if README.exists() else ""
    block = f"{start}\n{body.strip()}\n{end}"
    i, j = text.find(start), text.find(end)
    if i >= 0 and j > i:
        text = text[:i] + block + text[j + len(end):]
    else:
        text = text.rstrip("\n") + f"\n\n## {name}\n\n{block}\n"
    README.write_text(text)


def load_module(path: Path):
    spec = importlib.util.spec_from_file_location(f"_bench_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def refresh_readme(path: Path) -> None:
    """Rewrite the README table of one benchmark from its results JSON."""
    result_file = RESULTS / f"{path.stem}.json"
    if not result_file.exists():
        raise FileNotFoundError(f"{path.name} wrote no {result_file}")
    table = load_module(path).markdown_table(json.loads(result_file.read_text()))
    update_readme_section(path.stem, table)


def main() -> int:
    failed = []
    for path in benchmarks():
        print(f"== {path.name}", flush=True)
        rc = subprocess.run([sys.executable, str(path)], cwd=HERE.parent).returncode
        try:
            if rc != 0:
                raise RuntimeError(f"exit status {rc}")
            refresh_readme(path)
        except Exception as exc:
            print(f"!! {path.name} failed: {exc}", file=sys.stderr)
            failed.append(path.name)
    if failed:
        print(f"benchmarks failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    print(f"README updated: {README}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
