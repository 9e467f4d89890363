"""Checks that turn bad input into one clear InvalidParameterError.

Every check takes the owner (class or function name) and the parameter name so
the message reads: ``The 'rate' parameter of Foo must be a finite number > 0. Got -1.``
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from .exceptions import InvalidParameterError


def fail(owner: str, name: str, rule: str, value: object, *,
         what: str = "parameter") -> InvalidParameterError:
    """Build the standard error; callers ``raise fail(...)``. ``what`` names what
    broke the rule when it is not a parameter (a method's "result").

    The error keeps ``parameter`` so that file readers can point at the field.
    """
    if isinstance(value, np.generic):  # numpy 2 would print np.float64(2.0) for 2.0
        value = value.item()
    got = repr(value)
    if "\n" in got:  # a large array's or a frame's repr: brief's type name keeps one line
        got = repr(brief(value))
    err = InvalidParameterError(f"The {name!r} {what} of {owner} must be {rule}. Got {got}.")
    err.parameter = name  # type: ignore[attr-defined]
    return err


def is_real(value: object) -> bool:
    if type(value) is float or type(value) is int:  # the common case, without ABC checks
        return True
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def real(owner: str, name: str, value: object, *, low: float | None = None,
         low_open: bool = False, high: float | None = None) -> float:
    """A finite real number within [low, high] (or (low, high] when low_open)."""
    if is_real(value):
        x = float(value)  # type: ignore[arg-type]
        if math.isfinite(x) and (low is None or x > low or (x == low and not low_open)) \
                and (high is None or x <= high):
            return x
    bound = ""  # the rule is spelled out only for the message
    if low is not None:
        bound += f" {'>' if low_open else '>='} {low:g}"
    if high is not None:
        bound += (" and" if low is not None else "") + f" <= {high:g}"
    raise fail(owner, name, f"a finite number{bound}", value)


def positive(owner: str, name: str, value: object) -> float:
    return real(owner, name, value, low=0.0, low_open=True)


def non_negative(owner: str, name: str, value: object) -> float:
    return real(owner, name, value, low=0.0)


def step_size(owner: str, name: str, value: object) -> float:
    """A learning rate > 0 that torch can hold: it takes the step size as a float32,
    and a larger one raised its overflow RuntimeError."""
    return real(owner, name, value, low=0.0, low_open=True, high=float(np.finfo(np.float32).max))


def probability(owner: str, name: str, value: object) -> float:
    return real(owner, name, value, low=0.0, high=1.0)


def is_int(value: object) -> bool:
    """An int, not a bool and not a float."""
    return type(value) is int or (isinstance(value, numbers.Integral)  # plain ints first
                                  and not isinstance(value, bool))


def integer(owner: str, name: str, value: object, *, low: int) -> int:
    """An int (not a bool, not a float) >= low."""
    if not is_int(value) or value < low:  # type: ignore[operator]
        raise fail(owner, name, f"an int >= {low}", value)
    return int(value)  # type: ignore[call-overload]


def usable_cores() -> int:
    """The cores this process may run on (its affinity where the OS says, else all)."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity is not None else os.cpu_count() or 1


def cores(owner: str, name: str, value: object) -> int:
    """A count of threads or processes to run here: an int from 1 to the usable
    cores (more only time-slice the same cores, and thousands hang the start)."""
    most = usable_cores()
    if not is_int(value) or not 1 <= value <= most:  # type: ignore[operator]
        raise fail(owner, name, f"an int from 1 to {most}, the cores this machine lets it use",
                   value)
    return int(value)  # type: ignore[call-overload]


#: The largest seed torch's generators take (numpy's take any int >= 0);
#: scikit-learn's random_state takes at most 2**32 - 1.
SEED_MAX = 2**64 - 1


def seed(owner: str, name: str, value: object, *, bits: int = 64) -> int:
    """A seed: an int from 0 to 2**bits - 1 (64 for torch, 32 for scikit-learn)."""
    if not is_int(value) or not 0 <= value < 2**bits:  # type: ignore[operator]
        raise fail(owner, name, f"an int from 0 to 2**{bits} - 1", value)
    return int(value)  # type: ignore[call-overload]


def path(owner: str, name: str, value: object, *, kind: str = "file") -> Path:
    """A non-empty str or os.PathLike, as a Path; ``kind`` names what it should lead to.
    No NUL byte: the OS cannot take one (os raises a bare ValueError)."""
    if not isinstance(value, (str, os.PathLike)) or not str(value):
        raise fail(owner, name, f"a {kind} path (str or os.PathLike)", value)
    if "\0" in str(value):
        raise fail(owner, name, f"a {kind} path without a NUL byte", str(value))
    return Path(value)


def listed(owner: str, name: str, value: object, rule: str,
           each: Callable[[object], bool] | None = None) -> list:
    """The items of a list, tuple or other iterable (not a string or mapping) as a list;
    ``rule`` says what the items must be, and ``each`` (if given) checks every one."""
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise fail(owner, name, rule, type(value).__name__)
    items = list(value)
    if each is not None and not all(each(x) for x in items):
        raise fail(owner, name, rule, items)
    return items


def instance(owner: str, name: str, value: object, kind: type | tuple[type, ...],
             rule: str) -> object:
    """``value`` itself when it is a ``kind``; ``rule`` says what it must be. The
    error shows the value :func:`brief`: a System's or an array's repr would not
    fit one line."""
    if not isinstance(value, kind):
        raise fail(owner, name, rule, brief(value))
    return value


def brief(value: object) -> object:
    """None or a number as itself, anything else by its type's name."""
    plain = value is None or isinstance(value, numbers.Number)  # bools included
    return value if plain else type(value).__name__


def shown(value: object, most: int = 8) -> object:
    """A list, tuple or 1-D array of at most ``most`` items as a list, else :func:`brief`."""
    if isinstance(value, (list, tuple)) or (isinstance(value, np.ndarray) and value.ndim == 1):
        if len(value) <= most:
            return value.tolist() if isinstance(value, np.ndarray) else list(value)
    return brief(value)


def array(owner: str, name: str, value: object, rule: str,
          valid: Callable[[np.ndarray], bool] | None = None) -> np.ndarray:
    """``value`` as a float array that ``valid`` (if given) accepts; ``rule`` says what
    that is. A long sequence is shown by its length, not item by item."""
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        arr = None
    if arr is None or (valid is not None and not valid(arr)):
        shown = value
        if isinstance(value, (list, tuple, np.ndarray)):
            shown = list(value) if len(value) <= 6 else f"{len(value)} items"
        raise fail(owner, name, rule, shown)
    return arr


def output_file(owner: str, name: str, value: object) -> Path:
    """A file to write (a :func:`path`): in an existing folder and not itself a
    folder. Checked before long work, so a bad target fails at once rather than
    after it."""
    target = path(owner, name, value)
    if not target.parent.is_dir():
        raise fail(owner, name, "a file in an existing folder", str(target))
    if target.is_dir():
        raise fail(owner, name, "a file, not a folder", str(target))
    return target


def plot_formats() -> list[str]:
    """The figure formats matplotlib writes, named by their file suffixes."""
    from matplotlib.backend_bases import FigureCanvasBase

    return sorted(FigureCanvasBase.get_supported_filetypes())


def plot_format(path: str | os.PathLike[str]) -> str | None:
    """The format a figure saved to ``path`` takes from its suffix (None: none)."""
    suffix = Path(path).suffix[1:].lower()
    return suffix if suffix in plot_formats() else None


def plot_file(owner: str, name: str, path: Path) -> Path:
    """A figure to write: an :func:`output_file` whose suffix names a format
    matplotlib writes (the suffix picks it)."""
    if plot_format(path) is None:
        raise fail(owner, name, "a file name ending in one of "
                   f"{', '.join('.' + k for k in plot_formats())}", str(path))
    return output_file(owner, name, path)


def can_make_folder(path: Path) -> bool:
    """Whether ``path`` is a folder, or one that can be made (no file in its way)."""
    return next(p for p in (path, *path.parents) if p.exists()).is_dir()


def output_folder(owner: str, name: str, path: Path) -> Path:
    """A folder to write into: one that exists, or can be made (no file in its way)."""
    if not can_make_folder(path):
        raise fail(owner, name, "a folder (made if missing; no file in its way)", str(path))
    return path


def name_string(owner: str, name: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise fail(owner, name, "a non-empty string", value)
    return value


def weights(owner: str, name: str, value: Sequence[float], size: int) -> np.ndarray:
    """Non-negative finite weights of the given length summing to 1 within 1e-9."""
    rule = f"{size} non-negative finite numbers summing to 1"
    shown = list(value) if isinstance(value, (list, tuple, np.ndarray)) else value
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise fail(owner, name, rule, shown) from None
    if arr.shape != (size,) or not np.all(np.isfinite(arr)) or np.any(arr < 0) \
            or abs(arr.sum() - 1.0) > 1e-9:
        raise fail(owner, name, rule, shown)
    return arr
