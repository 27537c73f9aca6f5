"""Output files written whole or not at all: `stats export` and `stats plot`.

Everything is written into a hidden staging file or folder beside the destination and moved
into place only when every file is complete, so a failure (an unwritable path, a full disk,
a query error halfway through) leaves the destination as it was. A destination that cannot
be written is found before any query runs, and reported by name in one line.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from streetaudit.flows.errors import InputError


def _unwritable(option: str, out: Path, error: OSError) -> InputError:
    reason = error.strerror or str(error)
    where = f" ({error.filename})" if error.filename and str(error.filename) != str(out) else ""
    return InputError(f"{option} {out}: cannot write there: {reason}{where}")


def _parent(option: str, out: Path) -> Path:
    parent = out.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise _unwritable(option, out, error) from None
    return parent


@contextmanager
def staged_file(out: Path, option: str = "--out") -> Iterator[Path]:
    """A temporary path beside `out`; it replaces `out` when the block ends without an error."""
    out = Path(out)
    if out.is_dir():
        raise InputError(f"{option} {out}: is a folder, expected a file name")
    parent = _parent(option, out)
    try:
        handle, name = tempfile.mkstemp(prefix=f".{out.stem}.", suffix=f".partial{out.suffix}", dir=parent)
    except OSError as error:
        raise _unwritable(option, out, error) from None
    os.close(handle)
    stage = Path(name)
    stage.unlink()  # writers such as GDAL want to create the file themselves
    try:
        yield stage
        os.replace(stage, out)
    except OSError as error:
        raise _unwritable(option, out, error) from None
    finally:
        stage.unlink(missing_ok=True)


@contextmanager
def staged_folder(out: Path, option: str = "--out") -> Iterator[Path]:
    """A temporary folder beside `out`; its files move into `out` when the block ends without an error."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"{option} {out}: is a file, expected a folder")
    parent = _parent(option, out)
    try:
        stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=parent))
    except OSError as error:
        raise _unwritable(option, out, error) from None
    try:
        yield stage
        out.mkdir(exist_ok=True)
        for path in sorted(stage.iterdir()):
            os.replace(path, out / path.name)
    except OSError as error:
        raise _unwritable(option, out, error) from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)
