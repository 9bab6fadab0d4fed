"""ncodec bitstream: the .ncv container format and rANS entropy coding (bytes only, no model code)."""

from .container import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_MAX_SAMPLES,
    FORMAT_VERSION,
    FORMAT_VERSIONS,
    MAGIC,
    DecodeLimits,
    FrameType,
    Packet,
    StreamHeader,
    StreamReader,
    StreamWriter,
    pack_stream,
    unpack_stream,
)
from .entropy import CdfTables, build_cdf, decode_symbols, encode_symbols
from .errors import (
    BitstreamError,
    BudgetExceededError,
    ChecksumError,
    HeaderValueError,
    NotNcvError,
    TruncatedError,
    UnsupportedVersionError,
)

__all__ = [
    "FORMAT_VERSION",
    "FORMAT_VERSIONS",
    "MAGIC",
    "FrameType",
    "StreamHeader",
    "Packet",
    "StreamWriter",
    "StreamReader",
    "DecodeLimits",
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_MAX_SAMPLES",
    "pack_stream",
    "unpack_stream",
    "build_cdf",
    "CdfTables",
    "encode_symbols",
    "decode_symbols",
    "BitstreamError",
    "NotNcvError",
    "UnsupportedVersionError",
    "TruncatedError",
    "ChecksumError",
    "HeaderValueError",
    "BudgetExceededError",
]
