"""Importer of the published ChainNet deployments (Niu, Roveri, Casale, DSN 2024).

A ChainNet folder holds plain-text files, one record a line: per sample
(``numNodes``, ``numClasses``, ``capacity``) and per chain (``path``,
``arrival``, ``service`` and the labels). Sample s owns the next
``numClasses[s]`` lines of every per-chain file, so the files are read in
lockstep, line by line: asking for 5 samples reads 5 samples, not 10,000.

Each sample becomes a multi-chain scenario mapping: devices ``d1..dn`` (the
1-based ids of ``path.txt`` stay visible), ideal links between consecutive
devices of each path, and per chain ``c0, c1, ...`` one deterministic block
``f0, f1, ...`` per hop with Poisson arrivals at rate 1 / mean inter-arrival.
"""

from __future__ import annotations

import json
import math
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import yaml

from .. import _validation as v
from .._atomic import write_text_atomic
from ._files import ScenarioError, parse_scenario

__all__ = ["ChainNetSample", "read_chainnet", "import_chainnet"]

_PER_SAMPLE = ("numNodes", "numClasses", "capacity")
_PER_CHAIN = ("path", "arrival", "service", "tputRatio", "responseTime", "throughput")
_FILES = _PER_SAMPLE + _PER_CHAIN


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainNetSample:
    """One deployment: its 0-based ``index`` in the data set, the scenario
    mapping (ready for :func:`edgeperf.io.parse_scenario`) and per chain the
    published labels ``tput_ratio``, ``response_time`` and ``throughput``."""

    index: int
    scenario: dict[str, Any]
    labels: tuple[dict[str, float], ...]


class _DataFile:
    """One data file read line by line, keeping the line number for messages."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.number = 0  # lines consumed so far
        self._ahead: str | None = None
        try:
            self._file: IO[str] = path.open(encoding="utf-8")
        except FileNotFoundError:
            raise ScenarioError(f"{path}: is missing (a ChainNet folder holds "
                                f"{', '.join(f + '.txt' for f in _FILES)}).") from None
        except OSError as err:
            raise ScenarioError(f"{path}: cannot be read: {err.strerror or err}.") from None

    def close(self) -> None:
        self._file.close()

    def error(self, rule: str, value: object) -> ScenarioError:
        return ScenarioError(f"{self.path}: line {self.number}: {rule}. Got {value!r}.")

    def _peek(self) -> str | None:
        """The next raw line without consuming it; None at the end of the file."""
        if self._ahead is None:
            try:
                line = self._file.readline()
            except UnicodeDecodeError as err:
                raise ScenarioError(f"{self.path}: line {self.number + 1}: is not UTF-8 text: "
                                    f"byte {err.start} cannot be decoded.") from None
            self._ahead = line if line else None
        return self._ahead

    def line(self, why: str) -> str:
        """Consume the next line; ``why`` says which record needs it when it is missing."""
        line = self._peek()
        if line is None:
            raise ScenarioError(f"{self.path}: line {self.number + 1}: is missing: the file "
                                f"ends after {self.number} lines but {why} needs it.")
        self._ahead = None
        self.number += 1
        return line.rstrip("\r\n")

    def skip(self, count: int, why: str) -> None:
        for _ in range(count):
            self.line(why)

    def at_end(self) -> bool:
        """Whether no record follows (the end, or a blank line; :meth:`check_end` judges those)."""
        line = self._peek()
        return line is None or not line.strip()

    def check_end(self, records: str) -> None:
        """Only blank lines may follow the last record: more means the line counts disagree."""
        while (line := self._peek()) is not None:
            self.line("")
            if line.strip():
                raise self.error(f"is one record too many ({records})", line.strip())

    def numbers(self, count: int | None, why: str, what: str) -> list[str]:
        """The next line's whitespace-separated tokens, ``count`` of them unless None."""
        text = self.line(why)
        tokens = text.split()
        if count is not None and len(tokens) != count:
            plural = "s" if count != 1 else ""
            raise self.error(f"must hold {count} value{plural} ({what}), found {len(tokens)}",
                             text.strip())
        return tokens

    def ints(self, count: int | None, why: str, what: str, low: int = 1,
             high: int | None = None) -> list[int]:
        out = []
        for token in self.numbers(count, why, what):
            try:
                x = int(token)
            except ValueError:
                raise self.error(f"must hold integers ({what})", token) from None
            if x < low or (high is not None and x > high):
                bound = f"in {low}..{high}" if high is not None else f">= {low}"
                raise self.error(f"{what} must be {bound}", x)
            out.append(x)
        return out

    def floats(self, count: int, why: str, what: str, positive: bool = False) -> list[float]:
        out = []
        for token in self.numbers(count, why, what):
            try:
                x = float(token)
            except ValueError:
                raise self.error(f"must hold numbers ({what})", token) from None
            if not math.isfinite(x) or x < 0 or (positive and x == 0):
                raise self.error(f"{what} must be a finite number {'>' if positive else '>='} 0", x)
            out.append(x)
        return out


def _folder(directory: str | Path) -> Path:
    folder = v.path("read_chainnet", "directory", directory, kind="folder")
    if not folder.is_dir():
        raise ScenarioError(f"{folder}: is not a directory (give a ChainNet data folder, such as "
                            f"its val/ folder with numNodes.txt, path.txt, ...).")
    return folder


def _chain(files: dict[str, _DataFile], nodes: int, why: str) -> tuple[list[int], dict, dict]:
    """One chain's path, its scenario entry (unnamed) and its labels."""
    path_file = files["path"]
    path = path_file.ints(None, why, f"device ids (1-based, numNodes {nodes})", low=1,
                          high=nodes)
    if not path:
        raise path_file.error("must hold at least one device id", "")
    if len(set(path)) != len(path):
        raise path_file.error("must visit each device at most once", " ".join(map(str, path)))
    (mean_gap,) = files["arrival"].floats(1, why, "mean inter-arrival time", positive=True)
    service = files["service"].floats(len(path), why, "a service time per hop", positive=True)
    labels = {"tput_ratio": files["tputRatio"].floats(1, why, "throughput ratio")[0],
              "response_time": files["responseTime"].floats(1, why, "response time")[0],
              "throughput": files["throughput"].floats(1, why, "throughput")[0]}
    if labels["tput_ratio"] > 1:
        raise files["tputRatio"].error("throughput ratio must be <= 1", labels["tput_ratio"])
    entry = {"workload": {"arrival": {"process": "poisson", "rate": 1.0 / mean_gap}},
             "model": {"blocks": [{"name": f"f{i}",
                                   "latency": {"kind": "deterministic", "value": s},
                                   "output_bytes": 0} for i, s in enumerate(service)]},
             "placement": {f"d{d}": [f"f{i}"] for i, d in enumerate(path)}}
    return path, entry, labels


def _sample(files: dict[str, _DataFile], index: int) -> ChainNetSample:
    why = f"sample {index}"
    (nodes,) = files["numNodes"].ints(1, why, "number of devices")
    (classes,) = files["numClasses"].ints(1, why, "number of chains")
    capacity = files["capacity"].ints(nodes, why, "a capacity K per device (numNodes)")
    chains, labels, links = [], [], {}
    for j in range(classes):
        path, entry, label = _chain(files, nodes, f"chain {j} of {why}")
        chains.append({"name": f"c{j}", **entry})
        labels.append(label)
        for a, b in zip(path, path[1:]):  # each directed pair once, all chains together
            links.setdefault((a, b), {"from": f"d{a}", "to": f"d{b}"})
    scenario = {"devices": [{"name": f"d{i}", "capacity": k} for i, k in enumerate(capacity, 1)],
                "links": list(links.values()), "chains": chains}
    return ChainNetSample(index=index, scenario=scenario, labels=tuple(labels))


def _skip(files: dict[str, _DataFile], start: int) -> None:
    """Move every file past the first ``start`` samples (counting their chains)."""
    chains = 0
    for s in range(start):
        why = f"sample {s} (start={start})"
        chains += files["numClasses"].ints(1, why, "number of chains")[0]
        files["numNodes"].skip(1, why)
        files["capacity"].skip(1, why)
    for name in _PER_CHAIN:
        files[name].skip(chains, f"the {chains} chains before sample {start}")


def read_chainnet(directory: str | Path, samples: int | None = None,
                  start: int = 0) -> list[ChainNetSample]:
    """Read ``samples`` deployments (all when None) from ``start`` on, validating each line.

    A bad line raises :class:`ScenarioError` naming the file, the line, the rule
    and the value.
    """
    if samples is not None:
        v.integer("read_chainnet", "samples", samples, low=1)
    v.integer("read_chainnet", "start", start, low=0)
    folder = _folder(directory)
    out: list[ChainNetSample] = []
    with ExitStack() as stack:
        files = {}
        for name in _FILES:
            files[name] = _DataFile(folder / f"{name}.txt")
            stack.callback(files[name].close)
        _skip(files, start)
        while samples is None or len(out) < samples:
            if samples is None and files["numClasses"].at_end():
                break
            out.append(_sample(files, start + len(out)))
        if samples is None:  # the whole set: every file must end with the last sample
            count = start + len(out)
            records = f"numClasses.txt lists {count} sample{'s' if count != 1 else ''} with " \
                      f"{files['path'].number} chain{'s' if files['path'].number != 1 else ''}"
            for f in files.values():
                f.check_end(records)
    return out


def _yaml(sample: ChainNetSample, folder: Path) -> str:
    header = (f"# ChainNet deployment {sample.index} of {folder} (Niu, Roveri, Casale, DSN 2024;\n"
              f"# BSD-3). Its published labels are in labels.json.\n")
    body = yaml.dump(sample.scenario, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper),
                     sort_keys=False, default_flow_style=None, width=100)
    return header + body


def import_chainnet(directory: str | Path, out: str | Path,
                    samples: int | None = None) -> list[Path]:
    """Write ``sample_00000.yaml``... (one scenario per sample) and ``labels.json``
    (rows ``{sample, chain, tput_ratio, response_time, throughput}``) into ``out``.

    Returns the paths written, the scenarios first and labels.json last. Every
    scenario is checked with :func:`parse_scenario` before anything is written,
    and so is ``out``: a folder holding samples this import would not replace
    (from a larger one) is refused, as labels.json would no longer cover them.
    """
    folder = v.path("import_chainnet", "directory", directory, kind="folder")
    target = v.path("import_chainnet", "out", out, kind="folder")
    if target.resolve() == folder.resolve():  # the scenarios would land among the data files
        raise v.fail("import_chainnet", "out", "a folder other than the data set's own",
                     str(target))
    read = read_chainnet(folder, samples)
    for sample in read:
        parse_scenario(sample.scenario, source=f"{folder} sample {sample.index}")
    paths = [*(target / f"sample_{s.index:05d}.yaml" for s in read), target / "labels.json"]
    in_the_way = [p for p in paths if p.is_dir()]  # found now, not after half the files
    if in_the_way:
        raise ScenarioError(f"{in_the_way[0]}: cannot be written: it is a folder.")
    stale = sorted(set(target.glob("sample_[0-9][0-9][0-9][0-9][0-9].yaml")) - set(paths))
    if stale:  # labels.json would no longer cover them: the folder would mix two imports
        raise ScenarioError(f"import_chainnet: out {target} holds {len(stale)} sample file(s) "
                            f"this import would not replace ({stale[0].name}, ...), and its "
                            "labels.json would no longer cover them; remove them or choose "
                            "another folder.")
    try:
        target.mkdir(parents=True, exist_ok=True)
        for sample, path in zip(read, paths):
            write_text_atomic(path, _yaml(sample, folder))
        rows = [json.dumps({"sample": s.index, "chain": j, **label})
                for s in read for j, label in enumerate(s.labels)]
        write_text_atomic(paths[-1], "[\n" + ",\n".join(rows) + "\n]\n")
    except OSError as err:
        raise ScenarioError(f"{err.filename or target}: cannot be written: "
                            f"{err.strerror or err}.") from None
    return paths
