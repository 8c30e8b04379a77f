#!/usr/bin/env python3
"""Writes safetensors_reference.safetensors.hex with the reference implementation (PyPI `safetensors`,
Rust core, here 0.8.0, through its numpy API) for safetensors_test.cpp to read. The values are simple
formulas that the test recomputes. Run only to regenerate:
    python3 -m venv /tmp/v && /tmp/v/bin/pip install safetensors numpy && /tmp/v/bin/python make_safetensors_golden.py
"""
import os

import numpy as np
from safetensors.numpy import save_file

tensors = {
    "f32": (np.arange(6, dtype=np.float32).reshape(2, 3) * 0.5 - 1.0),
    "f16": np.array([1.0, -2.0, 65504.0, 2.0 ** -24], dtype=np.float16),
    "f64": np.array([[1e300], [-1e-300]], dtype=np.float64),
    "i64": np.array([-(2 ** 62), 7], dtype=np.int64),
    "i32": np.arange(-3, 3, dtype=np.int32).reshape(3, 2),
    "u8": np.arange(5, dtype=np.uint8),
    "bool": np.array([True, False, True]),
    "scalar": np.array(3.25, dtype=np.float32),
    "empty": np.zeros((0, 4), dtype=np.float32),
}
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "safetensors_reference.safetensors")
save_file(tensors, out, metadata={"format": "pt", "note": "written by huggingface/safetensors"})
# Committed as hex text (`xxd -p -c 64` layout; `xxd -r -p` gives the binary back), not as a binary file.
with open(out, "rb") as f, open(out + ".hex", "w") as h:
    data = f.read()
    h.writelines(data[i:i + 64].hex() + "\n" for i in range(0, len(data), 64))
os.remove(out)
print("wrote", out + ".hex", len(data), "bytes as hex")
