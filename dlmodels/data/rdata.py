"""Read R's lazy-load databases (``NAME.rdx`` + ``NAME.rdb``, how R packages store their data sets)
with the standard library: enough of R's serialization format for vectors, lists and attributes.

Format (R Internals, "Serialization Formats" and "Lazy loading"):

- ``NAME.rdx`` is an RDS file: gzip of an XDR serialization of the index, a named list
  ``list(variables = list(NAME = c(offset, length), ...), references = list(...), compressed =
  TRUE)``. ``compressed`` TRUE (or 1) means zlib; 2 bzip2, 3 xz.
- each ``NAME.rdb`` entry is ``rdb[offset : offset + length]``: a 4-byte big-endian length of the
  uncompressed data, then (for compressed 2 or 3 only) one type byte ``Z``/``2``/``X``/``0``
  (zlib/bzip2/xz/none), then the compressed data, itself one serialized object.
- a serialization (XDR, big-endian): ``b"X\\n"``, int32 version (2 or 3), int32 writer R version,
  int32 minimum reader version, and for version 3 an int32 length + the native encoding name. Then
  one item: an int32 ``flags`` word: bits 0-7 the SEXP type, bit 8 "is object", bit 9 "has
  attributes", bit 10 "has tag", bits 12-27 the "levels" (for a CHARSXP its encoding: 2 bytes,
  4 latin1, 8 UTF-8, 64 ASCII). Per type:

  - NILVALUE (254), the environments 253/242/241 and missing arg 251: nothing follows.
  - REFSXP (255): a back reference to the n-th symbol/environment read (n = flags >> 8, or the next
    int32 when that is 0).
  - SYMSXP (1): its name, a CHARSXP item; it is added to the reference table.
  - LISTSXP (2, a pairlist cell): [attributes item if bit 9] [tag item if bit 10], the value
    item, then the rest of the list (the next cell or NILVALUE).
  - CHARSXP (9): int32 length (-1 = NA) then that many bytes.
  - LGLSXP (10) / INTSXP (13): int32 length then int32s (NA = -2**31); REALSXP (14): float64s;
    STRSXP (16): CHARSXP items; VECSXP (19) / EXPRSXP (20): items. A length of -1 means a long
    vector: two int32s (high, low) follow. A vector's attributes (a pairlist) follow its data.

`unserialize` turns vectors into Python lists (an `RList` when they carry attributes), and
`load_lazyload_db` reads every variable of a database.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import struct
import zlib

from dlmodels.data.cache import DataError

NILVALUE, SYMSXP, LISTSXP, CHARSXP, REFSXP = 254, 1, 2, 9, 255
LGLSXP, INTSXP, REALSXP, STRSXP, VECSXP, EXPRSXP = 10, 13, 14, 16, 19, 20
_NOTHING_FOLLOWS = {NILVALUE, 253, 242, 241, 251}  # NULL, global/empty/base env, missing arg
_ENCODINGS = {2: "latin-1", 4: "latin-1", 8: "utf-8", 64: "ascii"}  # BYTES decoded as latin-1


class RList(list):
    """An R vector that had attributes (e.g. ``names``), as a list with ``.attributes``."""

    def __init__(self, values, attributes):
        super().__init__(values)
        self.attributes = attributes

    def named(self) -> dict:
        """``{name: value}`` from the ``names`` attribute."""
        return dict(zip(self.attributes["names"], self))


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.pos, self.refs = data, 0, []

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise DataError(f"R serialization ends early: wanted {n} bytes at {self.pos} of "
                            f"{len(self.data)}")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def int(self) -> int:
        return struct.unpack(">i", self.take(4))[0]

    def length(self) -> int:
        n = self.int()
        if n == -1:
            high, low = self.int(), self.int()
            n = (high << 32) + low
        return n

    def item(self):
        flags = self.int()
        kind, has_attr, has_tag = flags & 0xFF, flags & (1 << 9), flags & (1 << 10)
        if kind in _NOTHING_FOLLOWS:
            return None
        if kind == REFSXP:
            return self.refs[(flags >> 8 or self.int()) - 1]
        if kind == SYMSXP:
            symbol = self.item()
            self.refs.append(symbol)
            return symbol
        if kind == LISTSXP:  # a pairlist, as {tag: value} (cells read in a loop, not recursively)
            out = {}
            while kind == LISTSXP:
                if has_attr:
                    self.item()
                tag = self.item() if has_tag else len(out)
                out[tag] = self.item()
                flags = self.int()
                kind, has_attr, has_tag = flags & 0xFF, flags & (1 << 9), flags & (1 << 10)
            if kind != NILVALUE:
                raise DataError(f"R pairlist ends with SEXP type {kind}, expected NILVALUE")
            return out
        if kind == CHARSXP:
            n = self.int()
            return None if n == -1 else self.take(n).decode(_ENCODINGS.get((flags >> 12) & 0x4E,
                                                                          "utf-8"))
        if kind in (LGLSXP, INTSXP):
            n = self.length()
            value = list(struct.unpack(f">{n}i", self.take(4 * n)))
        elif kind == REALSXP:
            n = self.length()
            value = list(struct.unpack(f">{n}d", self.take(8 * n)))
        elif kind in (STRSXP, VECSXP, EXPRSXP):
            value = [self.item() for _ in range(self.length())]
        else:
            raise DataError(f"R serialization: SEXP type {kind} is not supported by this reader")
        return RList(value, self.item()) if has_attr else value


def unserialize(data: bytes):
    """One object from R's XDR serialization (``serialize(x, NULL)``, the inside of an .rds)."""
    if data[:2] != b"X\n":
        raise DataError(f"not an R XDR serialization (starts with {data[:2]!r}, expected b'X\\n')")
    reader = _Reader(data)
    reader.pos = 2
    version = reader.int()
    reader.int(), reader.int()
    if version == 3:
        reader.take(reader.int())
    elif version != 2:
        raise DataError(f"R serialization version {version}; this reader knows 2 and 3")
    return reader.item()


def _decompress(blob: bytes, compressed: int, where: str) -> bytes:
    if len(blob) < 4:
        raise DataError(f"{where}: entry of {len(blob)} bytes is too short")
    size, body = struct.unpack(">I", blob[:4])[0], blob[4:]
    kind = b"Z"
    if compressed in (2, 3):
        kind, body = body[:1], body[1:]
    try:
        out = {b"Z": zlib.decompress, b"2": bz2.decompress, b"X": lzma.decompress,
               b"0": bytes}[kind](body)
    except KeyError:
        raise DataError(f"{where}: unknown compression type {kind!r}") from None
    except (zlib.error, OSError, lzma.LZMAError, ValueError) as e:
        raise DataError(f"{where}: cannot decompress ({type(e).__name__}: {e})") from e
    if len(out) != size:
        raise DataError(f"{where}: decompressed to {len(out)} bytes, its header says {size}")
    return out


def load_lazyload_db(rdx: bytes, rdb: bytes) -> dict:
    """``{variable name: object}`` for every variable of a lazy-load database, from the bytes of
    its ``.rdx`` (gzipped index) and ``.rdb`` files."""
    try:
        index = unserialize(gzip.decompress(rdx))
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"R lazy-load index: not gzip ({type(e).__name__}: {e})") from e
    if not isinstance(index, RList) or "variables" not in index.attributes.get("names", ()):
        raise DataError("R lazy-load index is not a named list with 'variables'")
    fields = index.named()
    compressed = (fields.get("compressed") or [1])[0]
    variables = fields["variables"].named() if fields["variables"] else {}
    out = {}
    for name, (offset, length) in variables.items():
        if offset < 0 or offset + length > len(rdb):
            raise DataError(f"R lazy-load entry {name!r} at {offset}+{length} lies outside the "
                            f"{len(rdb)}-byte .rdb")
        out[name] = unserialize(_decompress(rdb[offset:offset + length], compressed,
                                            f"R lazy-load entry {name!r}"))
    return out
