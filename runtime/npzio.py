"""Reading and writing .npz archives safely and reproducibly.

np.load trusts the array headers inside an archive: a header claiming a 10 GB shape makes it
allocate 10 GB before reading a byte. `read_npz` checks every header against the limits and
against the member's real size first, and never unpickles. `write_npz` writes members in
sorted order with a fixed timestamp so the same arrays always give the same bytes.
"""

from __future__ import annotations

import io
import math
import zipfile
from collections.abc import Mapping

import numpy as np

from rnnedge.errors import BundleError
from rnnedge.runtime.graph import MAX_ELEMENTS, MAX_RANK

ALLOWED_DTYPES = {np.dtype(t) for t in (np.float32, np.int32, np.int64, np.int8)}  # int64: ids
MAX_MEMBERS = 100_000
_HEADER_READERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}
_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip can hold; no clock in the bytes


def write_npz(arrays: Mapping[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for name in sorted(arrays):
            member = io.BytesIO()
            np.lib.format.write_array(
                member, np.ascontiguousarray(arrays[name]), allow_pickle=False
            )
            zf.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=_EPOCH), member.getvalue())
    return buf.getvalue()


def read_npz(data: bytes, *, what: str) -> dict[str, np.ndarray]:
    """All arrays of an npz held in `data`; `what` names the file in error messages."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        members = zf.infolist()
    except Exception as e:  # BadZipFile, OSError, EOFError, NotImplementedError("zip file
        # version 8.4") from a mutated header, ...: whatever zipfile raises, it is not an npz
        raise BundleError(f"{what}: not a valid npz archive ({type(e).__name__}: {e})") from e
    if len(members) > MAX_MEMBERS:
        raise BundleError(f"{what}: {len(members)} arrays exceeds the limit of {MAX_MEMBERS}")
    out = {}
    for info in members:
        if not info.filename.endswith(".npy") or info.is_dir():
            raise BundleError(f"{what}: unexpected member {info.filename!r}")
        out[info.filename[:-4]] = _read_member(zf, info, what)
    return out


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, what: str) -> np.ndarray:
    where = f"{what}: array {info.filename[:-4]!r}"
    try:
        with zf.open(info) as f:
            version = np.lib.format.read_magic(f)
            if version not in _HEADER_READERS:
                raise BundleError(f"{where}: npy format version {version} is not supported")
            shape, fortran, dtype = _HEADER_READERS[version](f)
            if dtype not in ALLOWED_DTYPES:
                raise BundleError(f"{where}: dtype {dtype} is not allowed")
            # Python ints: np.prod in int64 wraps around, so (2**32, 2**32) would pass as 0
            if len(shape) > MAX_RANK or math.prod(max(int(d), 1) for d in shape) > MAX_ELEMENTS:
                raise BundleError(f"{where}: shape {list(shape)} exceeds the size limits")
            expected = math.prod(int(d) for d in shape) * dtype.itemsize
            body = f.read(expected + 1)
    except BundleError:
        raise
    except Exception as e:  # numpy parses the header with ast/tokenize: SyntaxError,
        # tokenize.TokenError, ValueError, ...; whatever it raises, the member is corrupt
        raise BundleError(f"{where}: corrupt ({type(e).__name__}: {e})") from e
    if len(body) != expected:
        raise BundleError(f"{where}: holds {len(body)} bytes, its header promises {expected}")
    arr = np.frombuffer(body, dtype=dtype).reshape(shape, order="F" if fortran else "C")
    return np.ascontiguousarray(arr)
