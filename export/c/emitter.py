"""The C writer: tensors as pointers into one caller-provided workspace, constants as static
const arrays, and the loops every kernel is built from (elementwise with broadcasting, index
gathers for the shape ops). Kernels (float_ops.py, int8.py, int8_dynamic.py) call it; it
knows nothing of any op."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from rnnedge.runtime.quant.plan import QParams

CTYPES = {"float32": "float", "int8": "int8_t", "int16": "int16_t", "int32": "int32_t"}
BYTES = {"float": 4, "int8_t": 1, "int16_t": 2, "int32_t": 4}
ALIGN = 64  # every workspace tensor starts on a cache line
LINE_ITEMS = 16
# int8 arrays are written as 64-bit little-endian hex words, 8 weights in "0x7f3a12bc0481fe02,"
# (2.4 characters a weight, "-12, " took 4.7) and read through a `const int8_t *`: a character
# type may read any object (C99 6.5p7), so this is no aliasing trick. Words of 4 bytes took
# 2.75 characters a weight. Floats stay float literals: reading them through a uint32 would be.
WORD_BYTES = 8
# every compiler rnnedge targets (gcc, clang) defines __BYTE_ORDER__; the boards are little-endian
LITTLE_ENDIAN_ONLY = """#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "rnnedge: the int8 arrays below are little-endian words; this target is big-endian"
#endif
"""


@dataclass(frozen=True)
class Tensor:
    """A tensor of ONE stream in the generated code: `var` is a C pointer expression."""

    var: str
    shape: tuple[int, ...]
    q: QParams | None = None  # integer parameters, or None for float32

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def ctype(self) -> str:
        return "float" if self.q is None else CTYPES[self.q.dtype]


def c_float(v: float) -> str:
    """The shortest float32 literal that reads back as exactly the same float32: numpy's
    shortest round-trip digits (Dragon4), positional or scientific, whichever is shorter. The
    `f` suffix makes the compiler round the decimal straight to float (C99 6.4.4.2), never
    through a double, which could round twice."""
    f = np.float32(v)
    if np.isnan(f):
        return "NAN"
    if np.isinf(f):
        return "INFINITY" if f > 0 else "-INFINITY"
    pos = np.format_float_positional(f, unique=True)  # "1.", "0.25", "-0."
    pos = re.sub(r"^(-?)0\.(?=\d)", r"\1.", pos)  # "0.25" -> ".25" (but "0." stays)
    mant, exp = np.format_float_scientific(f, unique=True, exp_digits=1).split("e")
    sci = f"{mant.rstrip('.')}e{int(exp)}"  # "1.e+20" -> "1e20"
    return min(pos, sci, key=len) + "f"


def packed_words(flat: np.ndarray) -> list[str]:
    """int8 values as little-endian 64-bit hex words, zero-padded to whole words."""
    flat = np.asarray(flat)
    if flat.size and (flat.min() < -128 or flat.max() > 127):
        raise ValueError(f"int8 array holds {flat.min()}..{flat.max()}")
    data = flat.astype(np.int8).tobytes()
    data += bytes(-len(data) % WORD_BYTES if data else WORD_BYTES)  # C forbids empty arrays
    return [f"0x{w:x}" for w in np.frombuffer(data, "<u8").tolist()]


def c_string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


class CEmitter:
    def __init__(self, constants: Mapping[str, np.ndarray]) -> None:
        self.constants = constants  # the Graph's, for kernels that lay a weight out anew
        self.decls: list[tuple[str, str]] = []  # (name, static const array)
        self.body: list[str] = []  # the step function's statements
        self.workspace = 0  # bytes
        self._count = 0
        self._named: dict[tuple, str] = {}  # one array per distinct constant
        self._packed: set[str] = set()  # the arrays of int8 words (WORD_BYTES)

    def fresh(self, prefix: str) -> str:
        self._count += 1
        return f"{prefix}{self._count}"

    def line(self, text: str) -> None:
        self.body.append("    " + text)

    def comment(self, text: str) -> None:
        self.line("/* " + text.replace("*/", "* /") + " */")

    def const(self, values: np.ndarray, ctype: str, what: str = "") -> str:
        """A static const array; returns the C expression of a pointer to its first item (for
        an int8 array: its words read as int8_t, see WORD_BYTES)."""
        flat = np.asarray(values).ravel()
        key = (ctype, flat.dtype.str, flat.tobytes())
        if key in self._named:  # the batched step (batched.py) reads the single step's arrays
            return self._named[key]
        name = self.fresh("k")
        head = f"/* {what} */\n" if what else ""
        if ctype == "int8_t":
            words = packed_words(flat)
            array = f"static const uint64_t {name}[{len(words)}] RN_ALIGNED"
            self._named[key] = f"((const int8_t *){name})"
            self._packed.add(name)
        else:
            words = [c_float(v) for v in flat] if ctype == "float" else [str(int(v)) for v in flat]
            words = words or ["0"]  # C forbids empty arrays
            array = f"static const {ctype} {name}[{len(words)}] RN_ALIGNED"
            self._named[key] = name
        rows = [",".join(words[i : i + LINE_ITEMS]) for i in range(0, len(words), LINE_ITEMS)]
        self.decls.append((name, f"{head}{array} = {{\n" + ",\n".join(rows) + "\n};\n"))
        return self._named[key]

    def used_decls(self) -> list[str]:
        """The constants the step reads (a kernel may not need every input's array)."""
        return self.decls_of(set(re.findall(r"\bk\d+\b", "\n".join(self.body))))

    def decls_of(self, names: set[str]) -> list[str]:
        """The arrays named, after the byte-order check when any holds packed words."""
        texts = [text for name, text in self.decls if name in names]
        return [LITTLE_ENDIAN_ONLY, *texts] if names & self._packed else texts

    def const_tensor(self, values: np.ndarray, q: QParams | None, what: str) -> Tensor:
        ctype = "float" if q is None else CTYPES[q.dtype]
        return Tensor(self.const(values, ctype, what), tuple(np.shape(values)), q)

    def scratch(self, shape: Sequence[int], q: QParams | None = None, ctype: str = "") -> Tensor:
        """A new tensor in the workspace, declared as a writable pointer."""
        t = Tensor(self.fresh("t"), tuple(shape), q)
        ctype = ctype or t.ctype
        size = max(t.size, 1) * BYTES[ctype]
        self.line(f"{ctype} *{t.var} = ({ctype} *)(ws + {self.workspace});")
        self.workspace += -(-size // ALIGN) * ALIGN
        return t

    def alias(self, src: Tensor, shape: Sequence[int], offset: int = 0) -> Tensor:
        """A view of `src` (a reshape, or a contiguous slice): no copy."""
        t = Tensor(self.fresh("t"), tuple(shape), src.q)
        expr = src.var if offset == 0 else f"{src.var} + {offset}"
        self.line(f"const {src.ctype} *{t.var} = {expr};")
        return t

    def index(self, src: Tensor, out_shape: tuple[int, ...]) -> str:
        """The C index of `src`'s element for output element i under numpy broadcasting."""
        if src.shape == out_shape or (src.size == math.prod(out_shape) and len(src.shape) == 0):
            return "i"
        if src.size == 1:
            return "0"
        if tuple(np.broadcast_shapes(src.shape, out_shape)) != tuple(out_shape):
            raise ValueError(f"cannot broadcast {list(src.shape)} to {list(out_shape)}")
        ix = np.broadcast_to(np.arange(src.size).reshape(src.shape), out_shape).ravel()
        return f"{self.const(ix, 'int32_t', 'broadcast index')}[i]"

    def elementwise(
        self,
        ins: Sequence[Tensor],
        out_shape: tuple[int, ...],
        q: QParams | None,
        expr: str,
        int_type: str = "int64_t",
    ) -> Tensor:
        """out[i] = expr(a0, a1, ...): float inputs load as float, integer ones as int_type
        (int64 unless the kernel's arithmetic fits int32, which vectorises everywhere)."""
        shape = tuple(np.broadcast_shapes(*(t.shape for t in ins))) if ins else out_shape
        out = self.scratch(shape, q)
        nest = broadcast_loops([t.shape for t in ins], shape)
        if nest is None:  # every input is whole or one value: one flat loop
            heads, index = (
                [f"for (int i = 0; i < {out.size}; i++) {{"],
                [self.index(t, shape) for t in ins],
            )
        else:
            heads, index = nest
        loads = " ".join(
            f"const {'float' if t.q is None else int_type} a{j} = {t.var}[{index[j]}];"
            for j, t in enumerate(ins)
        )
        for head in heads:
            self.line(head)
        self.line(f"    {loads}")
        self.line(f"    {out.var}[i] = ({out.ctype})({expr});")
        self.line("}")
        return out

    def gather(self, src: Tensor, ix: np.ndarray, fill: float = 0.0) -> Tensor:
        """out = src.flat[ix] (ix shaped as the output; -1 means `fill`); an alias when ix is
        a contiguous run of src."""
        flat = ix.ravel()
        shape = tuple(ix.shape)
        n = flat.size
        if n and flat[0] >= 0 and np.array_equal(flat, np.arange(flat[0], flat[0] + n)):
            return self.alias(src, shape, int(flat[0]))
        out = self.scratch(shape, src.q)
        k = self.const(flat, "int32_t", "gather index")
        fill_c = c_float(fill) if src.q is None else str(int(fill))
        self.line(f"for (int i = 0; i < {n}; i++)")
        self.line(f"    {out.var}[i] = {k}[i] < 0 ? {fill_c} : {src.var}[{k}[i]];")
        return out


def broadcast_loops(
    shapes: Sequence[tuple[int, ...]], out_shape: tuple[int, ...]
) -> tuple[list[str], list[str]] | None:
    """Nested loops over `out_shape` that compute each broadcast input's index from the loop
    counters, so the innermost loop reads memory in order and vectorises (an index array read
    per element made it a scalar gather: measured 3x on Mamba's [512, 1] x [512, 16]); the
    output's dims merged where every input varies alike. (loop heads ending in `{` with `i`
    the output index, each input's index); None when no input needs more than "i" or "0"."""
    if all(tuple(s) == tuple(out_shape) or math.prod(s) == 1 for s in shapes):
        return None
    rank = len(out_shape)
    groups: list[list] = []  # [extent, (does input j vary along it)]
    for d, extent in enumerate(out_shape):
        if extent == 1:
            continue
        flags = tuple(d - (rank - len(s)) >= 0 and s[d - (rank - len(s))] != 1 for s in shapes)
        if groups and groups[-1][1] == flags:
            groups[-1][0] *= extent
        else:
            groups.append([extent, flags])
    counters = [f"i{g}" for g in range(len(groups))]
    heads = [f"for (int {c} = 0; {c} < {e}; {c}++)" for c, (e, _) in zip(counters, groups)]
    linear = counters[0]
    for c, (e, _) in zip(counters[1:], groups[1:]):
        linear = f"({linear}) * {e} + {c}"
    heads[-1] += " {"
    heads.append(f"    const int i = {linear};")
    index = []
    for j in range(len(shapes)):
        terms, stride = [], 1
        for c, (e, flags) in zip(reversed(counters), reversed(groups)):
            if flags[j]:
                terms.append(c if stride == 1 else f"{c} * {stride}")
                stride *= e
        index.append(" + ".join(reversed(terms)) or "0")
    return heads, index
