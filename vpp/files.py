"""Writing outputs safely: one file or a whole folder, all or nothing.

- :func:`atomic_write` writes one file through a temporary sibling and a
  rename, so a reader sees the old file or the new one, never half of one.
  A target that exists and is not a regular file (``/dev/stdout``,
  ``/dev/full``, a FIFO) is written directly: renaming over it would
  replace the device with a file.
- :func:`replace_folder` builds a whole output folder (a backtest report,
  a plan) in a temporary sibling and swaps it into place: a failed write
  leaves the previous complete folder, never a mix of old and new files.
- :func:`check_output_folder` is the same check run before the expensive
  work, so an unwritable ``--out`` fails before a backtest starts.
- :func:`describe_os_error` renders an ``OSError`` as one line for people:
  ``path: what happened (strerror); what to do``.

Temporary names start with ``.<name>.`` in the target's own folder, so the
final rename never crosses a file system.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Collection, Iterator
from pathlib import Path

from vpp.errors import OutputError

# errno -> (what happened, what to do)
_OS_ERRORS: dict[int, tuple[str, str]] = {
    errno.ENOENT: ("not found", "check the path"),
    errno.EACCES: ("permission denied", "check its permissions or choose another path"),
    errno.EPERM: ("operation not permitted", "check its permissions or choose another path"),
    errno.EISDIR: ("is a folder", "give a file"),
    errno.ENOTDIR: ("a part of the path is not a folder", "check the path"),
    errno.ELOOP: ("symlink loop", "fix or remove the symbolic link"),
    errno.EEXIST: ("already exists", "remove it or choose another path"),
    errno.ENOSPC: ("disk full", "free some space or write elsewhere"),
    errno.EDQUOT: ("disk quota exceeded", "free some space or write elsewhere"),
    errno.EROFS: ("read-only file system", "choose a writable location"),
    errno.EADDRINUSE: ("address already in use", "stop the other process or choose another port"),
    errno.EADDRNOTAVAIL: ("address not available on this machine", "choose another host"),
    errno.ENAMETOOLONG: ("name too long", "choose a shorter path"),
    errno.EMFILE: ("too many open files", "raise the open-file limit (ulimit -n)"),
}


def describe_os_error(exc: OSError, target: str | os.PathLike[str] | None = None) -> str:
    """One line for ``exc``: ``target: what happened (strerror); what to do``.

    ``target`` defaults to the file name the error carries; pass it for
    errors that carry none (a socket bind: ``host:port``).
    """
    where = target if target is not None else exc.filename
    if where is None:
        where = "operating system"
    elif exc.filename2 is not None and target is None:
        where = f"{exc.filename} -> {exc.filename2}"
    strerror = exc.strerror or str(exc) or type(exc).__name__
    what, todo = _OS_ERRORS.get(exc.errno or -1, (strerror, "check the path and try again"))
    detail = what if what.lower() == strerror.lower() else f"{what} ({strerror})"
    return f"{os.fspath(where)}: {detail}; {todo}"


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Call ``write(tmp)`` on a temporary sibling of ``path``, then rename it onto ``path``.

    If ``path`` exists and is not a regular file (a device, a FIFO), ``write``
    gets ``path`` itself: there is nothing to keep and a rename would replace it.
    """
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None and not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
        try:
            write(path)
        except OSError as exc:
            if exc.filename is None:  # a failed write() names no file: name it
                raise type(exc)(exc.errno, exc.strerror, os.fspath(path)) from exc
            raise
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        tmp.chmod((mode & 0o777) if mode is not None else 0o666 & ~_umask())
        write(tmp)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _resolved(folder: Path) -> Path:
    # Absolute, so "." has a real name and parent; os.path.realpath never raises on a
    # symlink loop (Path.resolve does on 3.11).
    return Path(os.path.realpath(folder)) if folder.is_symlink() else folder.absolute()


def check_output_file(path: Path) -> None:
    """Raise :class:`OutputError` now if ``path`` clearly cannot be written as a file.

    A folder at ``path``, a file where a parent folder should be, or a parent
    folder where no file can be created. A device or FIFO is accepted (it is
    written directly by :func:`atomic_write`).
    """
    if path.is_dir():
        raise OutputError(f"{path}: is a folder; give a file name")
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OutputError(f"{path}: {ancestor} is a file, not a folder; choose another path")
    if path.exists() and not path.is_file():
        return
    try:
        fd, probe = tempfile.mkstemp(dir=ancestor, prefix=f".{path.name}.", suffix=".probe")
        os.close(fd)
        Path(probe).unlink(missing_ok=True)
    except OSError as exc:
        raise OutputError(
            f"{path}: cannot create files in {ancestor} ({exc.strerror or exc}); "
            "choose a writable location"
        ) from exc


def check_output_folder(folder: Path, names: Collection[str]) -> Path:
    """Raise :class:`OutputError` unless ``folder`` can be (re)written as a folder of ``names``.

    ``folder`` may be missing (it is created by the swap) or hold only files
    among ``names`` (a previous output, replaced as a whole); anything else in
    it would be lost, so it is refused. Probes that a file can be created
    next to it, where the new folder is built. Returns the folder with
    symbolic links resolved (the swap replaces the target, not the link).
    """
    folder = _resolved(folder)
    try:
        if folder.exists() and not folder.is_dir():
            raise OutputError(f"{folder}: exists and is not a folder; choose a folder path")
        if folder.is_dir():
            others = sorted(p.name for p in folder.iterdir() if p.name not in names)
            if others:
                shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
                raise OutputError(
                    f"{folder}: holds files that are not part of this output ({shown}); "
                    "they would be replaced: choose a new or empty folder"
                )
        ancestor = folder.parent
        while not ancestor.exists() and ancestor != ancestor.parent:
            ancestor = ancestor.parent
        if not ancestor.is_dir():
            raise OutputError(
                f"{folder}: {ancestor} is a file, not a folder; choose another output folder"
            )
        folder.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd, probe = tempfile.mkstemp(
                dir=folder.parent, prefix=f".{folder.name}.", suffix=".probe"
            )
            try:
                os.write(fd, b"probe")
            finally:
                os.close(fd)
                Path(probe).unlink(missing_ok=True)
        except OSError as exc:
            raise OutputError(
                f"{folder}: cannot create files in {folder.parent} "
                f"({exc.strerror or exc}); choose a writable location"
            ) from exc
    except OSError as exc:
        raise OutputError(
            f"cannot write output folder {describe_os_error(exc, folder)}"
        ) from exc
    return folder


@contextlib.contextmanager
def replace_folder(folder: Path, names: Collection[str]) -> Iterator[Path]:
    """Yield a temporary folder to write into; on success it replaces ``folder`` whole.

    On any error the temporary folder is removed and ``folder`` keeps its
    previous complete contents; an ``OSError`` is raised as :class:`OutputError`.
    """
    folder = check_output_folder(folder, names)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.tmp-"))
    old: Path | None = None
    try:
        try:
            tmp.chmod(0o777 & ~_umask())
            yield tmp
            if folder.exists():
                old = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.old-"))
                folder.replace(old)  # replaces the empty placeholder
            try:
                tmp.replace(folder)
            except BaseException:
                if old is not None:
                    old.replace(folder)
                    old = None
                raise
        except OSError as exc:
            raise OutputError(
                f"cannot write output folder {describe_os_error(exc, folder)}; "
                "the previous contents are unchanged"
            ) from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
