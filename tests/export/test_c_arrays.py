"""export/c/emitter.py's constant arrays: int8 as little-endian words and floats as their
shortest literals, read back by a compiled C program byte for byte, and small on disk (the
int8 model.c ships in the bundle and is compiled on the board)."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
import torch
from models import rnn_with_head

from rnnedge.export.c import emit_c
from rnnedge.export.c.emitter import CEmitter, c_float
from rnnedge.export.c.prelude import PRELUDE
from rnnedge.export.capture.program import capture
from rnnedge.quantize.calibrate import calibrate
from rnnedge.quantize.int8 import plan_int8

COMPILERS = [c for c in ("gcc", "clang") if shutil.which(c)]
WARN = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O2"]

EDGE_FLOATS = [
    0.0,
    -0.0,
    1.0,
    -1.0,
    0.1,
    1e-45,  # the smallest subnormal
    1.1754942e-38,  # the largest subnormal
    1.17549435e-38,  # the smallest normal
    3.4028235e38,  # the largest float32
    -3.4028235e38,
    16777217.0,  # not a float32: rounds to 2^24
    1e20,
    123456.7,
    float("inf"),
    float("-inf"),
]


def edge_and_random_floats() -> np.ndarray:
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2**32, 4000, dtype=np.uint64).astype(np.uint32)
    rand = bits.view(np.float32)
    rand = rand[np.isfinite(rand)]
    normal = rng.standard_normal(1000).astype(np.float32) * 0.05  # weights as trained
    return np.concatenate([np.array(EDGE_FLOATS, np.float32), rand, normal])


def read_back(cc: str, tmp_path, em: CEmitter, arrays: list[tuple[str, int, int]]) -> list[bytes]:
    """Compiles the emitter's arrays with a main that prints each one's bytes in hex."""
    prints = "\n".join(
        f"    dump((const unsigned char *){expr}, {n * size});" for expr, n, size in arrays
    )
    src = "\n".join(
        [
            PRELUDE,
            "#include <stdio.h>",
            *em.used_decls(),
            "static void dump(const unsigned char *p, int n)",
            "{",
            '    for (int i = 0; i < n; i++) printf("%02x", p[i]);',
            '    printf("\\n");',
            "}",
            "int main(void)",
            "{",
            prints,
            "    return 0;",
            "}",
        ]
    )
    (tmp_path / "a.c").write_text(src + "\n")
    exe = tmp_path / "a.out"
    done = subprocess.run(
        [cc, *WARN, "a.c", "-o", str(exe), "-lm"], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0 and not done.stderr, done.stderr
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    return [bytes.fromhex(line) for line in out.splitlines()]


@pytest.mark.parametrize("cc", COMPILERS)
def test_arrays_read_back_exactly_in_c(cc, tmp_path) -> None:
    rng = np.random.default_rng(1)
    ints = [rng.integers(-128, 128, n).astype(np.int8) for n in (1, 7, 8, 9, 64, 1001)]
    ints.append(np.array([-128, 127, 0, -1, 1, -128, 127], np.int8))
    floats = edge_and_random_floats()
    em = CEmitter({})
    names = [em.const(a, "int8_t", "w_q") for a in ints] + [em.const(floats, "float", "w")]
    em.line(" ".join(f"(void){n};" for n in names))  # so used_decls keeps every array
    arrays = [(n, a.size, 1) for n, a in zip(names, ints)] + [(names[-1], floats.size, 4)]
    got = read_back(cc, tmp_path, em, arrays)
    for a, b in zip(ints, got):
        assert b == a.tobytes()
    assert np.array_equal(
        np.frombuffer(got[-1], np.float32).view(np.uint32), floats.view(np.uint32)
    )


def test_nan_and_shortest_literals() -> None:
    assert c_float(float("nan")) == "NAN" and c_float(float("-inf")) == "-INFINITY"
    assert [c_float(v) for v in (0.1, -0.0, 1.0, 1e20, 1e-45, -0.0123456789)] == [
        ".1f",
        "-0.f",
        "1.f",
        "1e20f",
        "1e-45f",
        "-.012345679f",
    ]


def test_int8_weights_cost_under_three_characters_each() -> None:
    # "-12, " per weight took 4.7 characters; 8 weights per "0x7f3a12bc0481fe02," take 19
    w = np.random.default_rng(2).integers(-127, 128, 64 * 1024).astype(np.int8)
    em = CEmitter({})
    em.line(f"(void){em.const(w, 'int8_t')};")
    assert len("".join(em.used_decls())) / w.size < 2.5


def test_int8_c_file_is_under_a_quarter_of_the_float_one() -> None:
    # a GRU 32 -> 192 and its head: 130 k weights, whose arrays outweigh the kernels' code
    # (measured 23% int8 / float; 35% when int8 took "-12, " and floats "-0.0123456789f, ")
    torch.manual_seed(0)
    g = capture(rnn_with_head("gru", 192, 1, 32).eval(), torch.zeros(1, 1, 32)).graph
    rng = np.random.default_rng(0)
    seqs = [rng.standard_normal((20, *g.inputs[0].shape)).astype(np.float32) for _ in range(2)]
    f = emit_c(g)["model.c"]
    q = emit_c(g, plan_int8(g, calibrate(g, seqs)))["model.int8.c"]
    assert len(q) / len(f) < 0.25, (len(q), len(f))


@pytest.mark.parametrize("cc", COMPILERS)
def test_big_endian_target_stops_at_the_int8_words(cc, tmp_path) -> None:
    em = CEmitter({})
    em.line(f"(void){em.const(np.arange(9, dtype=np.int8), 'int8_t')};")
    src = "\n".join([PRELUDE, *em.used_decls(), "int rn_one;", ""])
    (tmp_path / "b.c").write_text(src)
    big = ["-U__BYTE_ORDER__", "-D__BYTE_ORDER__=__ORDER_BIG_ENDIAN__"]
    for flags, ok in (([], True), (big, False)):
        done = subprocess.run(
            [cc, "-std=c99", *flags, "-c", "b.c", "-o", "/dev/null"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
        )
        assert (done.returncode == 0) == ok and ("big-endian" in done.stderr) != ok, done.stderr
    float_only = CEmitter({})
    float_only.line(f"(void){float_only.const(np.ones(3, np.float32), 'float')};")
    assert "__BYTE_ORDER__" not in "".join(float_only.used_decls())
