"""User-facing errors. Each message names the config key, file or line at fault."""


class LmforgeError(Exception):
    """Base: a user-facing error with a clear message (names the key/file/line)."""


class ConfigError(LmforgeError):
    """An invalid or incompatible configuration, found before any work starts."""


class DataError(LmforgeError):
    """Missing, empty or malformed input data."""
