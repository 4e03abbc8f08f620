"""Opening a trace file: gzip inflated here within the limits (damage ends the stream, never raises),
and the first bytes sniffed without consuming them."""

from __future__ import annotations

import io
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

from obs_pipelines.ingest.formats.common import CHUNK
from obs_pipelines.ingest.limits import DEFAULT_LIMITS, IngestLimits

GZIP_MAGIC = b"\x1f\x8b"
_GZ_READ = 128 * 1024  # compressed bytes read at a time


class GzipInflate(io.RawIOBase):
    """The decompressed bytes of a gzip file (all members), within `limits`.

    Never raises on bad data: damage (corrupt or truncated data, trailing garbage, a limit reached) ends
    the stream and is described in `damage`, with the byte offsets, so whatever came before it is read
    (a BufferedReader loses the bytes of a read that raises). zlib checks each member's CRC and length.
    """

    def __init__(self, fh, limits: IngestLimits):
        self._fh = fh
        self._limits = limits
        self._d = zlib.decompressobj(31)
        self._in = b""  # compressed bytes read but not yet given to zlib
        self._member_started = False
        self._done = False
        self.read_bytes = 0  # compressed bytes read from the file
        self.out_bytes = 0  # decompressed bytes produced
        self.damage: str | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while not self._done:
            data = self._inflate(len(b))
            if data:
                n = len(data)
                b[:n] = data
                return n
        return 0

    def _read(self) -> bytes:
        data = self._fh.read(_GZ_READ)
        self.read_bytes += len(data)
        return data

    def _offset(self) -> int:
        """Compressed byte offset (in the file) of the input zlib has not used yet."""
        return self.read_bytes - len(self._in) - len(self._d.unconsumed_tail) - len(self._d.unused_data)

    def _stop(self, what: str, lost: str | None = None) -> None:
        self._done = True
        if lost is None:
            rest = max(0, os.fstat(self._fh.fileno()).st_size - self._offset())
            lost = f"lost: the remaining {rest} compressed bytes of the file, not read"
        self.damage = f"{what} at compressed byte {self._offset()} (decompressed byte {self.out_bytes}); {lost}"

    def _inflate(self, n: int) -> bytes:
        d = self._d
        if d.eof:
            return self._next_member()
        src = d.unconsumed_tail or self._in or self._read()
        self._in = b""
        if not src:  # end of file
            tail = d.flush()
            if self._member_started and not d.eof:
                self.out_bytes += len(tail)
                self._stop("truncated gzip file: the data ends inside a member",
                           "lost: whatever followed; every complete line before it was read")  # fmt: skip
            else:
                self._done = True
            return tail
        self._member_started = True
        try:
            out = d.decompress(src, n)
        except zlib.error as exc:
            self._in = src  # so that the offset points at the bad input
            self._stop(f"corrupt gzip data ({exc})")
            return b""
        return self._within_limits(out)

    def _within_limits(self, out: bytes) -> bytes:
        """`out`, cut at max_decompressed_bytes; stops the stream when a limit is reached."""
        lim = self._limits
        allowed = lim.max_decompressed_bytes - self.out_bytes
        if len(out) > allowed:
            out = out[: max(0, allowed)]
            self.out_bytes += len(out)
            self._stop(f"decompressed size over max_decompressed_bytes ({lim.max_decompressed_bytes})")
            return out
        self.out_bytes += len(out)
        if self.out_bytes > lim.ratio_min_bytes and self.out_bytes > lim.max_compression_ratio * self.read_bytes:
            self._stop(f"compression ratio over max_compression_ratio ({lim.max_compression_ratio:g})")
        return out

    def _next_member(self) -> bytes:
        """After a member: another member, the end, zero padding (ignored, as gzip does) or garbage."""
        rest = self._d.unused_data + self._in
        self._d = zlib.decompressobj(31)
        self._member_started = False
        while len(rest) < 2:
            more = self._read()
            if not more:
                break
            rest += more
        self._in = rest
        if not rest:
            self._done = True
        elif rest[:2] == GZIP_MAGIC:
            pass  # the next member
        elif not rest.strip(b"\x00") and self._only_zeros_left():
            self._done = True
        else:
            rest = max(0, os.fstat(self._fh.fileno()).st_size - self._offset())
            self._stop("trailing garbage after the last gzip member",
                       f"lost: nothing (the {rest} bytes of garbage are ignored, all data before them was read)")  # fmt: skip
        return b""

    def _only_zeros_left(self) -> bool:
        while True:
            more = self._read()
            self._in = more
            if not more:
                return True
            if more.strip(b"\x00"):
                return False


@dataclass
class Opened:
    """A file opened for reading: `stream` (buffered, peekable) and, for gzip, its inflater."""

    stream: io.BufferedReader
    inflate: GzipInflate | None
    fh: io.BufferedReader  # the file itself (the same object as `stream` when not gzipped)

    @property
    def gzipped(self) -> bool:
        return self.inflate is not None

    def damage(self) -> str | None:
        return self.inflate.damage if self.inflate is not None else None

    def close(self) -> None:
        try:
            self.stream.close()
        finally:
            self.fh.close()


def open_stream(path: Path, limits: IngestLimits = DEFAULT_LIMITS) -> Opened:
    fh = open(path, "rb")
    try:
        head = fh.peek(2)[:2]
        if head == GZIP_MAGIC:
            inflate = GzipInflate(fh, limits)
            return Opened(io.BufferedReader(inflate, buffer_size=CHUNK), inflate, fh)
        return Opened(fh, None, fh)
    except BaseException:
        fh.close()
        raise


def inner_name(path: Path, gzipped: bool) -> str:
    name = path.name.lower()
    if gzipped and name.endswith(".gz"):
        name = name[:-3]
    return name


def sniff(stream) -> bytes:
    """First non-whitespace byte, without consuming (stream must be a BufferedReader / GzipFile)."""
    head = stream.peek(4096)
    stripped = head.lstrip()
    if stripped.startswith(b"\xef\xbb\xbf"):
        stripped = stripped[3:].lstrip()
    return stripped[:1]
