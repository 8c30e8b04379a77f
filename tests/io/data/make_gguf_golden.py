#!/usr/bin/env python3
"""Writes gguf_py_golden.gguf.hex: an independent oracle for the mla::io GGUF reader and dequantisers.

Made with llama.cpp's own Python package `gguf` (gguf-py, PyPI `gguf`, here 0.19.0, with numpy):
  * GGUFWriter writes the container (all metadata value types, alignment, tensor infos, padding);
  * for each ggml type, `q.<TYPE>` holds random blocks (half-precision scale fields replaced by finite
    values) stored raw, and `expected.<TYPE>` (F32) holds gguf.quants.dequantize() of the same bytes.
The C++ test (gguf_test.cpp) reads the file with mla::io::gguf_file and compares its dequantisation
with `expected.*`. The file is committed as hex text (`xxd -p -c 64` layout; `xxd -r -p` gives the binary
back), not as a binary model-format file. Not needed to build or test: run it only to regenerate it.
    python3 -m venv /tmp/v && /tmp/v/bin/pip install gguf numpy && /tmp/v/bin/python make_gguf_golden.py
"""
import os
import sys

import numpy as np
import gguf
from gguf.constants import GGMLQuantizationType as T, GGML_QUANT_SIZES
from gguf.quants import dequantize

rng = np.random.default_rng(20240607)

# Byte offsets of the half-precision scale fields inside one block (ggml-common.h layouts).
HALF_FIELDS = {
    T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2], T.Q8_0: [0],
    T.Q2_K: [80, 82], T.Q3_K: [108], T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208],
}
TYPES = [T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K, T.MXFP4,
         T.F16, T.BF16]


def random_half(n):
    v = rng.standard_normal(n) * np.exp2(rng.integers(-12, 1, n))
    v[rng.random(n) < 0.1] = 2.0 ** -20  # some subnormal scales
    return v.astype(np.float16)


def make_blocks(qtype, n_elems):
    block, size = GGML_QUANT_SIZES[qtype]
    n_blocks = n_elems // block
    if qtype == T.F16:
        return random_half(n_elems).view(np.uint8).copy()
    if qtype == T.BF16:
        f = (rng.standard_normal(n_elems) * 3).astype(np.float32)
        return (f.view(np.uint32) >> 16).astype(np.uint16).view(np.uint8).copy()
    raw = rng.integers(0, 256, (n_blocks, size), dtype=np.uint8)
    if qtype == T.MXFP4:
        raw[:, 0] = rng.integers(100, 150, n_blocks)
        raw[0, 0] = 0      # 2^-127: subnormal results
        raw[1, 0] = 254    # 2^127: 6 * 2^127 overflows to inf, 0.5 * 2^127 does not
    for off in HALF_FIELDS.get(qtype, []):
        raw[:, off:off + 2] = random_half(n_blocks).view(np.uint8).reshape(n_blocks, 2)
    return raw.reshape(-1)


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gguf_py_golden.gguf")
    w = gguf.GGUFWriter(out, "llama")
    w.add_uint8("test.u8", 200)
    w.add_int8("test.i8", -100)
    w.add_uint16("test.u16", 60000)
    w.add_int16("test.i16", -30000)
    w.add_uint32("test.u32", 4000000000)
    w.add_int32("test.i32", -2000000000)
    w.add_float32("test.f32", 0.15625)
    w.add_uint64("test.u64", 18000000000000000000)
    w.add_int64("test.i64", -9000000000000000000)
    w.add_float64("test.f64", -2.5e-300)
    w.add_bool("test.bool", True)
    w.add_string("test.string", "h\u00e9llo, GGUF")
    w.add_array("test.array_strings", ["a", "", "\u00fcnicode", "last"])
    w.add_array("test.array_i32", [1, -2, 3])
    w.add_block_count(2)
    w.add_context_length(2048)
    for qtype in TYPES:
        block, _ = GGML_QUANT_SIZES[qtype]
        n = 512 if block == 256 else 256
        raw = make_blocks(qtype, n)
        expected = dequantize(raw.reshape(1, -1), qtype).astype(np.float32).reshape(2, n // 2)
        w.add_tensor("q." + qtype.name, raw.reshape(2, -1), raw_dtype=qtype)
        w.add_tensor("expected." + qtype.name, expected)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    hex_out = out + ".hex"
    with open(out, "rb") as f, open(hex_out, "w") as h:
        data = f.read()
        h.writelines(data[i:i + 64].hex() + "\n" for i in range(0, len(data), 64))
    os.remove(out)
    print("wrote", hex_out, len(data), "bytes as hex")


if __name__ == "__main__":
    sys.exit(main())
