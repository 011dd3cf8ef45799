"""User-facing errors. Each message names the config key, file or line at fault."""


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
