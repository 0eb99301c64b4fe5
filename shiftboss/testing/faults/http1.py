"""Just enough HTTP/1.1 for a reverse proxy: read a request (its body buffered: requests
are small), read a response head, and relay a response body piece by piece as it
arrives (chunked, sized, or until the connection closes), so that long-lived streams
such as Kubernetes watches pass through unbuffered.

Not supported: ``Upgrade`` (kubectl exec, port-forward) and pipelined requests.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from http import HTTPStatus

#: A request body larger than this is refused (the proxy buffers request bodies).
MAX_REQUEST_BODY = 64 * 1024 * 1024
_PIECE = 64 * 1024
_END_OF_HEAD = b"\r\n\r\n"

Headers = tuple[tuple[str, str], ...]


class ProtocolError(Exception):
    """The peer sent something that is not HTTP/1.1 as this proxy understands it."""


def header(headers: Headers, name: str) -> str | None:
    """The first value of header ``name`` (case-insensitive), or None."""
    name = name.lower()
    return next((value for key, value in headers if key.lower() == name), None)


def _wants_close(headers: Headers) -> bool:
    return "close" in (header(headers, "connection") or "").lower()


def _is_chunked(headers: Headers) -> bool:
    return "chunked" in (header(headers, "transfer-encoding") or "").lower()


def _parse_head(raw: bytes) -> tuple[str, Headers]:
    lines = raw[: -len(_END_OF_HEAD)].decode("latin-1").split("\r\n")
    fields: list[tuple[str, str]] = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise ProtocolError(f"header line without a colon: {line!r}")
        fields.append((name.strip(), value.strip()))
    return lines[0], tuple(fields)


async def _read_head(reader: asyncio.StreamReader) -> bytes | None:
    """The head up to and including the blank line; None if the peer closed first."""
    try:
        return await reader.readuntil(_END_OF_HEAD)
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise ProtocolError("connection closed in the middle of a message head") from exc
        return None
    except asyncio.LimitOverrunError as exc:
        raise ProtocolError("message head longer than 64 KiB") from exc


@dataclass(frozen=True)
class Request:
    method: str
    target: str
    headers: Headers
    body: bytes

    @property
    def path(self) -> str:
        return self.target.partition("?")[0]

    @property
    def query(self) -> str:
        return self.target.partition("?")[2]

    @property
    def keep_alive(self) -> bool:
        return not _wants_close(self.headers)

    def encode(self, host: str) -> bytes:
        """The request as sent upstream: ``Host`` rewritten, the body sized, not chunked."""
        skip = {"host", "content-length", "transfer-encoding"}
        lines = [f"{self.method} {self.target} HTTP/1.1", f"Host: {host}"]
        lines += [f"{k}: {v}" for k, v in self.headers if k.lower() not in skip]
        if self.body or self.method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + self.body


async def read_request(reader: asyncio.StreamReader) -> Request | None:
    """The next request on a client connection; None when the client closed it."""
    raw = await _read_head(reader)
    if raw is None:
        return None
    start, headers = _parse_head(raw)
    parts = start.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise ProtocolError(f"not an HTTP/1.x request line: {start!r}")
    method, target, _ = parts
    if _is_chunked(headers):
        body = await _read_chunked(reader)
    else:
        length = int(header(headers, "content-length") or 0)
        if length > MAX_REQUEST_BODY:
            raise ProtocolError(f"request body of {length} bytes, more than {MAX_REQUEST_BODY}")
        body = await reader.readexactly(length)
    return Request(method.upper(), target, headers, body)


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
        body += await reader.readexactly(size)
        await reader.readexactly(2)
        if len(body) > MAX_REQUEST_BODY:
            raise ProtocolError(f"chunked request body longer than {MAX_REQUEST_BODY} bytes")
    while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers, discarded
        pass
    return bytes(body)


@dataclass(frozen=True)
class ResponseHead:
    raw: bytes
    status: int
    headers: Headers


async def read_response_head(reader: asyncio.StreamReader) -> ResponseHead | None:
    """The upstream's response head; None if it closed the connection without one."""
    raw = await _read_head(reader)
    if raw is None:
        return None
    start, headers = _parse_head(raw)
    parts = start.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise ProtocolError(f"not an HTTP/1.x status line: {start!r}")
    return ResponseHead(raw, int(parts[1]), headers)


async def relay_body(
    head: ResponseHead,
    method: str,
    src: asyncio.StreamReader,
    dst: asyncio.StreamWriter,
) -> bool:
    """Copy the response body from ``src`` to ``dst`` as it arrives, flushing every piece.
    True when both connections may carry another request afterwards."""
    if method == "HEAD" or head.status in (204, 304) or 100 <= head.status < 200:
        return not _wants_close(head.headers)
    if _is_chunked(head.headers):
        await _relay_chunked(src, dst)
        return not _wants_close(head.headers)
    length = header(head.headers, "content-length")
    if length is not None:
        await _relay_exactly(src, dst, int(length))
        return not _wants_close(head.headers)
    while piece := await src.read(_PIECE):  # delimited by the connection closing
        dst.write(piece)
        await dst.drain()
    return False


async def _relay_exactly(src: asyncio.StreamReader, dst: asyncio.StreamWriter, size: int) -> None:
    while size:
        piece = await src.read(min(size, _PIECE))
        if not piece:
            raise ProtocolError(f"upstream closed with {size} bytes of the body unsent")
        dst.write(piece)
        await dst.drain()
        size -= len(piece)


async def _relay_chunked(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    while True:
        line = await src.readuntil(b"\r\n")
        dst.write(line)
        size = int(line.split(b";")[0], 16)
        if size == 0:
            break
        await _relay_exactly(src, dst, size + 2)  # the data and its CRLF
    while True:  # trailers, then the blank line that ends the body
        line = await src.readuntil(b"\r\n")
        dst.write(line)
        if line == b"\r\n":
            break
    await dst.drain()


def encode_response(status: int, body: bytes, headers: Headers) -> bytes:
    """A complete response with a sized body (for ``Respond`` rules)."""
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Unknown"
    names = {k.lower() for k, _ in headers}
    lines = [f"HTTP/1.1 {status} {reason}", *(f"{k}: {v}" for k, v in headers)]
    if "content-type" not in names and body:
        lines.append("Content-Type: application/json")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
