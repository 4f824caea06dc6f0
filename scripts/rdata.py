"""Read R's lazy-load databases (``Rdata.rdx`` + ``Rdata.rdb``) without R.

Only the parts of R's XDR serialization format that data packages of
character vectors use are covered: pairlists, symbols, strings, vectors
and attributes. It is enough to get the novels out of Debian's
``r-cran-janeaustenr`` package; anything else raises a clear error.
A build-time helper of ``scripts/build_corpus.py`` (which imports it from beside itself),
not part of the installed package.
"""
from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

# R's SEXP type codes (R Internals, "Serialization formats")
NILSXP, SYMSXP, LISTSXP, CHARSXP, LGLSXP = 0, 1, 2, 9, 10
INTSXP, REALSXP, STRSXP, VECSXP = 13, 14, 16, 19
REFSXP, NILVALUE_SXP, EMPTYENV_SXP, GLOBALENV_SXP = 255, 254, 242, 253


class _Reader:
    def __init__(self, data: bytes):
        if data[:2] != b"X\n":
            raise ValueError("not an XDR-serialized R object (expected header 'X\\n')")
        self.buf, self.pos, self.refs = data, 2, []
        version = self.int()
        self.int(), self.int()  # R version that wrote it, minimal reader version
        if version == 3:
            n = self.int()  # native encoding name, skipped
            self.pos += n
        self.root = self.item()

    def int(self) -> int:
        (value,) = struct.unpack_from(">i", self.buf, self.pos)
        self.pos += 4
        return value

    def length(self) -> int:
        n = self.int()
        if n == -1:  # long vector: two more ints
            hi, lo = self.int(), self.int()
            n = (hi << 32) + lo
        return n

    def item(self):
        flags = self.int()
        sexptype = flags & 0xFF
        has_attr, has_tag = bool(flags & (1 << 9)), bool(flags & (1 << 10))
        if sexptype in (NILVALUE_SXP, EMPTYENV_SXP, GLOBALENV_SXP):
            return None
        if sexptype == REFSXP:
            return self.refs[(flags >> 8) - 1]
        if sexptype == SYMSXP:
            name = self.item()
            self.refs.append(name)
            return name
        if sexptype == CHARSXP:
            n = self.int()
            if n == -1:
                return None  # NA_character_
            s = self.buf[self.pos:self.pos + n].decode("utf-8", errors="replace")
            self.pos += n
            return s
        if sexptype == LISTSXP:
            attrs = self.item() if has_attr else None
            tag = self.item() if has_tag else None
            head = self.item()
            tail = self.item()
            return [(tag, head)] + (tail if isinstance(tail, list) else [])
        if sexptype in (STRSXP, VECSXP):
            values = [self.item() for _ in range(self.length())]
        elif sexptype in (INTSXP, LGLSXP):
            n = self.length()
            values = list(struct.unpack_from(f">{n}i", self.buf, self.pos))
            self.pos += 4 * n
        elif sexptype == REALSXP:
            n = self.length()
            values = list(struct.unpack_from(f">{n}d", self.buf, self.pos))
            self.pos += 8 * n
        else:
            raise ValueError(f"R object type {sexptype} is not supported by this reader")
        if has_attr:
            attrs = dict(self.item())
            if "names" in attrs and sexptype == VECSXP:
                return dict(zip(attrs["names"], values))
        return values


def unserialize(data: bytes):
    """Turn R's XDR serialization bytes into Python lists, dicts and strings."""
    return _Reader(data).root


def read_rdb(directory: str | Path, stem: str = "Rdata") -> dict[str, object]:
    """Every object of a lazy-load database ``stem.rdx``/``stem.rdb`` by name."""
    directory = Path(directory)
    index = dict(unserialize(_inflate(gzip.decompress((directory / f"{stem}.rdx").read_bytes()))))
    blob = (directory / f"{stem}.rdb").read_bytes()
    out = {}
    for name, (offset, length) in dict(index["variables"]).items():
        record = blob[offset:offset + length]
        out[name] = unserialize(_inflate(record))
    return out


def _inflate(record: bytes) -> bytes:
    """A record is a 4-byte big-endian length, then zlib data (or raw bytes, for the index)."""
    if record[:2] == b"X\n":
        return record
    (n,) = struct.unpack_from(">i", record, 0)
    data = zlib.decompress(record[4:])
    if len(data) != n:
        raise ValueError(f"corrupt R database record: expected {n} bytes, got {len(data)}")
    return data
