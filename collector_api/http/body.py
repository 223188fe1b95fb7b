"""Reading a request body within a size limit, on the wire and after decompression."""
from __future__ import annotations

import asyncio

from isal import isal_zlib
from starlette.requests import Request

from collector_api.http.errors import CollectorError, PayloadTooLarge, RequestTimeout, UnsupportedMedia

ENCODINGS = ("gzip", "deflate", "identity", "")


def check_declared_size(request: Request, limit: int) -> None:
    """413 from the Content-Length header alone, before a byte of the body is read."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise CollectorError(f"Content-Length {declared[:20]!r} is not a number") from None
        if size > limit:
            raise PayloadTooLarge(f"body of {size} bytes exceeds the limit of {limit} bytes")


def content_encoding(request: Request) -> str:
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if encoding not in ENCODINGS:
        raise UnsupportedMedia(f"unsupported Content-Encoding {encoding!r}: use gzip, deflate or none")
    return encoding


async def read_wire(request: Request, limit: int, timeout_s: float | None = None) -> tuple[bytes, str]:
    """The body as sent (still compressed) and its encoding; 413 once the wire bytes pass `limit`,
    408 when the whole body has not arrived within `timeout_s` (a stalled upload must not hold
    its admission slot: FLUSSO_BODY_TIMEOUT_SECONDS).

    Ingest requests wait for their turn holding only this, a fraction of the inflated size; they
    are inflated when their turn comes (`inflate`). Sizes: docs/benchmarks-ingest.md."""
    encoding = content_encoding(request)
    check_declared_size(request, limit)
    wire, parts = 0, []
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.stream():
                wire += len(chunk)
                if wire > limit:
                    raise PayloadTooLarge(f"body exceeds the limit of {limit} bytes")
                parts.append(chunk)
    except TimeoutError:
        raise RequestTimeout(f"the request body did not arrive within {timeout_s:g} s ({wire} bytes received)"
                             ) from None
    return b"".join(parts), encoding


_STEP = 256 * 1024  # compressed bytes fed to the inflater at a time


def inflate(raw: bytes, encoding: str, limit: int) -> bytes:
    """The decompressed body; 413 as soon as the inflated bytes pass `limit`, 400 if corrupt.

    Decompression streams and never inflates more than `limit` + 1 bytes, so a compression bomb
    costs bounded memory. It uses ISA-L (python-isal, zlib's API), which inflates faster than
    zlib (figures in docs/benchmarks-ingest.md).
    """
    if encoding in ("identity", ""):
        return raw
    wbits = 16 + isal_zlib.MAX_WBITS if encoding == "gzip" else isal_zlib.MAX_WBITS | 32  # deflate: zlib or gzip header
    inflater = isal_zlib.decompressobj(wbits)
    parts: list[bytes] = []
    produced = 0
    try:
        for start in range(0, len(raw), _STEP):
            data = raw[start:start + _STEP]
            while data:
                out = inflater.decompress(data, limit + 1 - produced)
                produced += len(out)
                parts.append(out)
                if produced > limit:
                    raise PayloadTooLarge(f"decompressed body exceeds the limit of {limit} bytes")
                data = inflater.unconsumed_tail
                if inflater.eof:
                    break
            if inflater.eof:
                break
        if not inflater.eof:
            raise CollectorError(f"{encoding} body is truncated or not {encoding}-compressed")
    except isal_zlib.error as exc:
        raise CollectorError(f"body is not valid {encoding} data: {exc}") from None
    return b"".join(parts)


async def read_body(request: Request, limit: int, timeout_s: float | None = None) -> bytes:
    """The decompressed body, within `limit` on the wire and after decompression, and `timeout_s`."""
    raw, encoding = await read_wire(request, limit, timeout_s)
    return inflate(raw, encoding, limit)
