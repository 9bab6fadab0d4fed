"""Exception family raised when reading or writing .ncv bitstreams."""

from __future__ import annotations

__all__ = [
    "BitstreamError",
    "NotNcvError",
    "UnsupportedVersionError",
    "TruncatedError",
    "ChecksumError",
    "HeaderValueError",
    "BudgetExceededError",
]


class BitstreamError(ValueError):
    """Base class: the bytes are not a valid .ncv stream (or a value cannot be written)."""


class NotNcvError(BitstreamError):
    """The data does not start with the .ncv magic bytes."""


class UnsupportedVersionError(BitstreamError):
    """The stream uses a format version this reader does not know."""


class TruncatedError(BitstreamError, EOFError):
    """The stream ends in the middle of the header or of a packet."""


class ChecksumError(BitstreamError):
    """A CRC32 stored in the stream does not match the bytes it covers."""


class HeaderValueError(BitstreamError):
    """A header or packet field is out of its allowed range."""


class BudgetExceededError(BitstreamError):
    """The stream is valid but needs more than the reader's resource budget (``DecodeLimits``) allows."""
