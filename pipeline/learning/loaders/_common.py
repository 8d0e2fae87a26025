"""Steps the trajectory loaders share: finding the files of a source (archive read in place, unpacked folder or
single file), parsing numeric tables with errors that name the file and line, and turning (id, time, x, y) rows
into gap-split point trajectories (or, for the box formats, id-grouped trajectories).

Everything is vectorised with numpy: the large sources (Grand Central, SDD) are loaded in tests.
"""

from __future__ import annotations

import fnmatch
import io
import lzma
import tarfile
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any, cast

import numpy as np

from pipeline.core.errors import UserError
from pipeline.learning.datasets import Trajectory

ARCHIVES = (".tar", ".tar.xz", ".txz", ".tar.gz", ".tgz", ".tar.bz2")
MAX_GAP_S = 1.0  # a track is cut into separate trajectories where it is unobserved for longer than this


def need_file(path: Path, what: str) -> None:
    """A missing or empty input is a one-line error naming it (`what`: how the user knows it)."""
    if not path.exists():
        raise UserError(f"{what} not found: {path}")
    if path.is_file() and path.stat().st_size == 0:
        raise UserError(f"{what} {path} is empty")


def source_files(path: Path, what: str, pattern: str, recursive: bool, hint: str = "") -> list[Path]:
    """The file itself, or the matching files in a folder; fails when there are none."""
    need_file(path, what)
    if not path.is_dir():
        return [path]
    files = sorted(path.rglob(pattern) if recursive else path.glob(pattern))
    if not files:
        raise UserError(f"no {pattern} files in {path}{hint}")
    return files


def group_rows(key_prefix: str, rows: Iterable[tuple[str, float, float, float, float, float]], has_box: bool,
               frame_size: tuple[float, float]) -> list[Trajectory]:
    """(id, t, x, y, w, h) rows as one trajectory per id, keyed `<key_prefix>:<id>`, in time order; a repeated
    timestamp keeps its first row (sorted order)."""
    by_id: dict[str, list[tuple[float, float, float, float, float]]] = defaultdict(list)
    for oid, t, x, y, w, h in rows:
        by_id[oid].append((t, x, y, w, h))
    out = []
    for oid, pts in by_id.items():
        arr = np.asarray(sorted(pts), np.float64)
        keep = np.concatenate([[True], np.diff(arr[:, 0]) > 0])  # drop duplicate timestamps
        arr = arr[keep]
        out.append(Trajectory(f"{key_prefix}:{oid}", arr[:, 0], arr[:, 1:5], has_box, frame_size))
    return out


def finite_rows(data: np.ndarray, where: Path, skipped: Counter[str] | None) -> np.ndarray:
    """Rows with a NaN or infinite number are dropped and counted (never fed to training or scoring)."""
    ok = np.isfinite(data).all(axis=1)
    if skipped is not None and not ok.all():
        skipped[f"non-finite ({where.name})"] += int((~ok).sum())
    return data[ok]


@dataclass(frozen=True)
class Member:
    """One text file of a source: `where` names it in messages (archive:member or path), `rel` is its path."""

    where: str
    rel: PurePosixPath
    text: str


def members(path: Path, what: str, archive: str, patterns: Sequence[str]) -> Iterator[Member]:
    """The files whose name matches one of `patterns`, from `path` as distributed.

    `path` may be the archive, a folder holding `archive`, an unpacked folder (searched recursively) or one file.
    Archive members are read in place, in archive order; folder files in sorted order.
    """
    need_file(path, what)
    if path.is_dir() and (path / archive).is_file():
        path = path / archive
    if path.is_file() and path.name.endswith(ARCHIVES):
        yield from _tar_members(path, patterns)
    elif path.is_dir():
        files = sorted({f for p in patterns for f in path.rglob(p) if f.is_file()})
        if not files:
            raise UserError(f"no {' or '.join(patterns)} files (nor {archive}) in {path}")
        for f in files:
            yield Member(str(f), PurePosixPath(f.as_posix()), decode(f.read_bytes(), str(f)))
    elif _matches(path.name, patterns):
        yield Member(str(path), PurePosixPath(path.as_posix()), decode(path.read_bytes(), str(path)))
    else:
        raise UserError(f"{path} is neither {archive} nor a file named {' or '.join(patterns)}")


def _matches(name: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatch(name, p) for p in patterns)


def _tar_members(path: Path, patterns: Sequence[str]) -> Iterator[Member]:
    found = False
    try:
        with tarfile.open(path, "r:*") as tar:
            for info in tar:
                name = PurePosixPath(info.name)
                if info.isfile() and _matches(name.name, patterns):
                    found = True
                    where = f"{path}:{info.name}"
                    yield Member(where, name, decode(cast(IO[bytes], tar.extractfile(info)).read(), where))  # isfile()
    except (tarfile.TarError, lzma.LZMAError, EOFError, OSError) as exc:
        raise UserError(f"{path} is not a readable tar archive: {exc}") from None
    if not found:
        raise UserError(f"{path} holds no {' or '.join(patterns)} files")


def decode(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise UserError(f"{where} line {line}: not UTF-8 text") from None


def find_beside(path: Path, name: str, why: str) -> Path:
    """A metadata file (scales, homography) in `path` or one of the three folders above it."""
    start = path if path.is_dir() else path.parent
    for folder in (start, *list(start.parents)[:3]):
        if (folder / name).is_file():
            return folder / name
    raise UserError(f"no {name} in {start} or the folders above it; it is needed {why}")


def read_table(
    m: Member, ncols: int, expected: str, delimiter: str | None = None, header: int = 0, text_col: int | None = None
) -> tuple[np.ndarray, list[str]]:
    """All rows of a table as floats (N, ncols); the text column, if any, is coded as an index into the names.

    np.loadtxt does the work; only when it fails is the file scanned again to name the first bad line.
    """
    names: dict[str, int] = {}
    conv: dict[int | str, Callable[[str], Any]] | None = None if text_col is None else {text_col: lambda s: names.setdefault(s.strip().strip('"'), len(names))}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "empty input": reported below as no data rows
            data = np.loadtxt(io.StringIO(m.text), np.float64, comments=None, delimiter=delimiter, skiprows=header,
                              converters=conv, ndmin=2)
    except ValueError as exc:
        raise _bad_line(m, ncols, expected, delimiter, header, text_col, str(exc)) from None
    if data.shape[1] != ncols or len(data) == 0:
        raise _bad_line(m, ncols, expected, delimiter, header, text_col, f"{data.shape[1]} columns")
    return data, list(names)


def _bad_line(m: Member, ncols: int, expected: str, delimiter: str | None, header: int, text_col: int | None,
              reason: str) -> UserError:
    lines = m.text.splitlines()
    for n, line in enumerate(lines[header:], header + 1):
        if not line.strip():
            continue
        cells = line.split(delimiter)
        if len(cells) != ncols:
            return UserError(f"{m.where} line {n}: {len(cells)} columns, expected {ncols}: {expected}")
        for i, cell in enumerate(cells):
            if i != text_col and not _is_number(cell):
                return UserError(f"{m.where} line {n}: {cell.strip()!r} is not a number; expected {expected}")
    if not any(line.strip() for line in lines[header:]):
        return UserError(f"{m.where} has no data rows; expected {expected}")
    return UserError(f"{m.where}: unreadable ({reason}); expected {expected}")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def drop_rows(data: np.ndarray, drop: np.ndarray, reason: str, skipped: Counter[str]) -> np.ndarray:
    """The rows not marked in `drop`, counting the dropped ones under `reason`."""
    skipped[reason] += int(drop.sum())
    return data[~drop]


def drop_nonfinite(data: np.ndarray, skipped: Counter[str]) -> np.ndarray:
    return drop_rows(data, ~np.isfinite(data).all(axis=1), "non-finite", skipped)


def build(
    prefix: str, ids: np.ndarray, t: np.ndarray, xy: np.ndarray, skipped: Counter[str], *, id_prefix: str = "",
    codes: np.ndarray | None = None, names: Sequence[str] = ("",), max_gap_s: float = MAX_GAP_S,
) -> list[Trajectory]:
    """Point trajectories (metres, seconds) keyed `<prefix>:<id_prefix><id>`, one per track and gap-free piece.

    Rows repeating an earlier row's (id, time) are dropped ("duplicate time", the first in file order is kept).
    A track unobserved for more than max_gap_s is cut; its later pieces get keys `<id>.1`, `<id>.2`, ...
    Each trajectory's label is `names[codes[row]]` of its first row (or names[0] without codes).
    """
    order = np.lexsort((t, ids))  # stable: equal (id, t) keep file order
    ids, t, xy = ids[order], t[order], xy[order]
    dup = np.r_[False, (ids[1:] == ids[:-1]) & (t[1:] == t[:-1])]
    skipped["duplicate time"] += int(dup.sum())
    ids, t, xy, order = ids[~dup], t[~dup], xy[~dup], order[~dup]
    new_id = np.r_[True, ids[1:] != ids[:-1]]
    cut = np.r_[False, np.diff(t) > max_gap_s] & ~new_id
    starts = np.flatnonzero(new_id | cut)
    ends = np.r_[starts[1:], len(t)]
    gaps_so_far = np.cumsum(cut)
    id_start = np.maximum.accumulate(np.where(new_id, np.arange(len(t)), 0))
    piece = gaps_so_far[starts] - gaps_so_far[id_start[starts]]
    xywh = np.zeros((len(t), 4))
    xywh[:, :2] = xy
    first_label = np.asarray(codes)[order[starts]] if codes is not None else np.zeros(len(starts), int)
    out = []
    for s, e, p, c in zip(starts.tolist(), ends.tolist(), piece.tolist(), first_label.tolist(), strict=True):
        key = f"{prefix}:{id_prefix}{_id_text(ids[s])}" + (f".{p}" if p else "")
        out.append(Trajectory(key, t[s:e], xywh[s:e], False, (0.0, 0.0), names[int(c)]))
    return out


def _id_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
