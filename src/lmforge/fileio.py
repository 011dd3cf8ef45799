"""Files, safely: atomic writes (a killed stage leaves either the old output or none, never half of
one), modes that follow the user's umask, clean-up of what a killed writer left behind, readers that
turn a library's exception into one line naming the file, and content digests (which key resumable
checkpoints to what a stage read)."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, Iterator

from lmforge.errors import DataError, StorageError, storage_fault

SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
FULL_BELOW = 1 << 20  # bytes free on a device after a failed write: it failed for want of space


def _umask() -> int:
    """The process's umask: read from /proc (setting it to read it would race with other threads)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _public(path: Path, directory: bool) -> None:
    """tempfile creates 0700 folders and 0600 files; an output gets the modes any other file would."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


def _public_tree(root: Path) -> None:
    """Every folder and file under `root` with the modes the user's umask gives (whatever wrote them:
    safetensors writes 0600, shutil.copy2 copies its source's mode); executables stay executable."""
    mask = _umask()
    for dirpath, _, filenames in os.walk(root):
        os.chmod(dirpath, 0o777 & ~mask)
        for name in filenames:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                executable = os.stat(path).st_mode & 0o111
                os.chmod(path, (0o777 if executable else 0o666) & ~mask)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temps(parent: Path, name: str) -> list[Path]:
    """Remove `.{name}.tmp-<pid>-*` / `.{name}.old-<pid>` left beside `parent/name` by writers that
    died (killed stages); folders of a live process are kept. Returns what was removed."""
    removed = []
    if not parent.is_dir():
        return removed
    for p in parent.glob(f".{name}.*-*"):
        kind, _, rest = p.name[len(name) + 2 :].partition("-")
        if kind not in ("tmp", "old"):
            continue
        pid = rest.split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def write_fault(e: BaseException, path: Path, written: Path | None = None) -> StorageError | None:
    """A StorageError naming `path` when writing it failed for a fault of the machine: an OSError
    saying so, or any error (torch and safetensors word a short write their own way) after which the
    device that holds `written` (what was being written) has almost no space left."""
    if isinstance(e, OSError) and e.errno is not None:
        if written is not None and e.errno not in SPACE_ERRNOS:
            return None  # inside our own fresh folder only space can fail: another error is not the machine's
        return storage_fault(e, path)
    # an error without an errno: torch, safetensors and numpy word a short write their own way
    probe = written if written is not None and written.exists() else path.parent
    try:
        full = shutil.disk_usage(probe).free < FULL_BELOW
    except OSError:
        return None
    return storage_fault(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), path) if full else None


@contextmanager
def writing(path: Path, written: Path | None = None) -> Iterator[None]:
    """Turn a fault of the machine while writing `path` into one StorageError naming it."""
    try:
        yield
    except Exception as e:
        if (fault := write_fault(e, path, written)) is not None:
            raise fault from None
        raise


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a fresh temp folder beside `path`; on success it replaces `path` in one rename (again,
    if another process replaced `path` at the same moment: the last writer wins, whole). A full
    disk or a folder this user may not write is a StorageError naming `path`; nothing is left."""
    path = Path(path)
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(path.parent, path.name)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-{os.getpid()}-", dir=path.parent))
    try:
        with writing(path, tmp):
            yield tmp
            _public_tree(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = path.with_name(f".{path.name}.old-{os.getpid()}")
    for _ in range(20):  # another process may be replacing `path` at the same moment: try again
        try:
            if path.exists():
                os.replace(path, old)
            os.replace(tmp, path)
            break
        except OSError as e:  # gone meanwhile, or a new one placed there meanwhile
            if e.errno not in (errno.ENOENT, errno.ENOTEMPTY, errno.EEXIST):
                raise
    else:
        shutil.rmtree(tmp, ignore_errors=True)
        raise OSError(f"{path}: could not be replaced (other processes keep writing it)")
    shutil.rmtree(old, ignore_errors=True)


@contextmanager
def atomic_file(path: str | Path) -> Iterator[BinaryIO]:
    """Yield a binary file beside `path`; once the block ends it is flushed to disk and replaces
    `path` in one rename. A killed or failed write leaves the old `path` (or none), never part of
    the new; a full disk or a forbidden folder is a StorageError naming `path`."""
    path = Path(path)
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-{os.getpid()}-", dir=path.parent)
    try:
        with writing(path, Path(tmp)):
            with os.fdopen(fd, "wb") as f:
                yield f
                f.flush()
                os.fsync(f.fileno())
            _public(Path(tmp), directory=False)
            os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_file(path) as f:
        f.write(data)


def write_text(path: str | Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def unreachable(path: Path) -> str | None:
    """None when `path` is there to open; else why not, in words: not found, a link to nothing, a
    loop of links, no permission to reach it."""
    try:
        path.stat()
        return None
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "a loop of symbolic links (each link leads back to another)"
        if e.errno == errno.ENOENT and path.is_symlink():
            return f"a link to {os.readlink(path)}, which does not exist"
        if e.errno == errno.ENOENT:
            return "not found"
        return e.strerror or type(e).__name__


def read_text(path: str | Path, what: str = "file") -> str:
    """A UTF-8 text file; DataError naming the file (and the byte offset of bad UTF-8)."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path}: is a directory, expected a {what}")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: no such {what}") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read it ({e.strerror})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text (byte {e.start}: {data[e.start : e.start + 1]!r})") from None


def read_json(path: str | Path) -> Any:
    """A JSON file; DataError naming the file and line when it is missing, truncated or not JSON."""
    path = Path(path)
    text = read_text(path, "JSON file")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}:{e.lineno}: not valid JSON ({e.msg}); the file is damaged or truncated") from None


def read_yaml(path: str | Path) -> Any:
    import yaml

    path = Path(path)
    text = read_text(path, "YAML file")
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise DataError(f"{path}{line}: not valid YAML ({getattr(e, 'problem', e)})") from None


def write_jsonl(path: str | Path, records: list[dict]) -> None:
    write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def read_jsonl(path: str | Path) -> list[dict]:
    out = []
    for lineno, line in enumerate(read_text(path, "JSON lines file").split("\n"), 1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
    return out


def content_digest(*paths: str | Path, data: Any = None) -> str:
    """A sha256 of files' bytes (a directory: all its files, by sorted relative path) and of
    JSON-able `data`: a checkpoint keyed by it is never resumed on changed inputs."""
    h = hashlib.sha256()
    for path in map(Path, paths):
        files = sorted(f for f in path.rglob("*") if f.is_file()) if path.is_dir() else [path]
        for f in files:
            h.update(str(f.relative_to(path) if path.is_dir() else f.name).encode() + b"\0")
            with open(f, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
    if data is not None:
        h.update(json.dumps(data, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]
