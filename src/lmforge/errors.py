"""User-facing errors. Each message names the config key, file or line at fault."""

import errno


def first_line(exc: BaseException) -> str:
    """An exception's message cut to its first line (its class name when it has none)."""
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__


class LmforgeError(Exception):
    """Base: a user-facing error with a clear message (names the key/file/line)."""


class ConfigError(LmforgeError):
    """An invalid or incompatible configuration, found before any work starts."""


class DataError(LmforgeError):
    """Missing, empty or malformed input data."""


class StorageError(LmforgeError):
    """The machine refused a write: no space left, no permission, a read-only file system."""


# an OSError's errno → what would help, for faults of the machine rather than of the input
_FAULT_HELP = {
    errno.ENOSPC: "no space left on its device: free space there (`df -h`) or point paths.* at another disk",
    errno.EDQUOT: "the disk quota is used up: free space there or point paths.* at another disk",
    errno.EFBIG: "the file is larger than its file system allows: point paths.* at another disk",
    errno.EROFS: "its file system is read-only: point paths.* at a writable disk",
    errno.EACCES: "permission denied: make its folder writable for this user (`ls -ld`), or run as its owner",
    errno.EPERM: "operation not permitted: make its folder writable for this user (`ls -ld`), or run as its owner",
}


def storage_fault(e: BaseException, path: object = None) -> StorageError | None:
    """A StorageError naming `path` (or the file the OS named) and what would help, when `e` is a
    fault of the machine (a full disk, a read-only or forbidden folder); None for any other error."""
    if not isinstance(e, OSError) or e.errno not in _FAULT_HELP:
        return None
    where = path if path is not None else (e.filename or "a file")
    return StorageError(f"cannot write {where}: {_FAULT_HELP[e.errno]}")
