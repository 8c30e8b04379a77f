#!/usr/bin/env python3
"""Golden deepseek2 logits from an independent implementation: llama.cpp (through llama-cpp-python).

The GGUF is the project's tiny deepseek2 export, written for a seed by the C++ generator (deterministic,
tests/model/deepseek2_tiny.hpp: 2 MLA layers, ranks 24 and 16 padded to 24, own latent norms, F32, vocab 260):

    cmake --build --preset cpu-release -j1 --target mla-make-deepseek2-tiny
    build/cpu-release/tests/model/mla-make-deepseek2-tiny /tmp/deepseek2-tiny.gguf 20250214

llama.cpp loads it with an F32 KV cache (type_k = type_v = GGML_TYPE_F32 = 0; its default F16 cache would round
the cached latent), logits for every position, one thread, and evaluates 16 fixed token ids in one batch. It
also evaluates them one token at a time through its own cache; `llama_decode_vs_prefill` is the largest relative
difference (a consistency check of the reference, not a golden value). The JSON holds the FNV-1a 64 hash of the
GGUF it read (the C++ test regenerates the file and checks it), the tokens, the float32 logits of every
position (all 260 vocabulary entries), their top-1 ids and the llama.cpp version.

Made with llama-cpp-python 0.3.36 (CPU build) in /work/venv/py:
    /work/venv/py/bin/python tools/deepseek2_golden.py --gguf /tmp/deepseek2-tiny.gguf --seed 20250214 \\
        --out tests/model/data/deepseek2_tiny_golden.json
"""
import argparse
import json
import sys

import numpy as np
import llama_cpp
from llama_cpp import Llama

FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
MASK = (1 << 64) - 1


def fnv1a64(data: bytes) -> str:
    h = FNV_OFFSET
    for b in memoryview(data):
        h = ((h ^ b) * FNV_PRIME) & MASK
    return f"{h:016x}"


def token_ids(n: int, vocab: int, salt: int) -> list:
    # Fixed, reproducible ids (no RNG library): a quadratic sequence mod vocab.
    return [int((salt + 7919 * i * i + 104729 * i) % vocab) for i in range(n)]


def load(path: str) -> Llama:
    return Llama(model_path=path, n_ctx=64, n_batch=64, n_ubatch=64, logits_all=True, verbose=False,
                 n_threads=1, n_threads_batch=1, seed=0, type_k=0, type_v=0)


def rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gguf", required=True)
    p.add_argument("--seed", type=int, required=True, help="the seed the generator was given (recorded)")
    p.add_argument("--out", required=True)
    p.add_argument("--tokens", type=int, default=16)
    a = p.parse_args()

    with open(a.gguf, "rb") as f:
        digest = fnv1a64(f.read())
    llm = load(a.gguf)
    vocab = llm.n_vocab()
    ids = token_ids(a.tokens, vocab, 11)

    llm.reset()
    llm.eval(ids)
    prefill = np.array(llm.scores[: len(ids)], dtype=np.float32)

    # One token at a time through llama.cpp's cache: a consistency check of the reference.
    llm.reset()
    steps = []
    for t in ids:
        llm.eval([t])
        steps.append(np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32))
    decode = np.stack(steps)
    worst = max(rel(decode[i], prefill[i]) for i in range(len(ids)))

    out = {
        "source": "llama.cpp via llama-cpp-python, F32 KV cache, one batch (tools/deepseek2_golden.py)",
        "llama_cpp_python": llama_cpp.__version__,
        "generator": f"mla-make-deepseek2-tiny <out.gguf> {a.seed}",
        "seed": a.seed,
        "gguf_fnv1a64": digest,
        "llama_decode_vs_prefill": worst,
        "tokens": ids,
        "top1": [int(np.argmax(r)) for r in prefill],
        "logits": [[float(x) for x in r] for r in prefill],
    }
    with open(a.out, "w") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")
    print(f"{a.out}: {len(ids)} positions x {vocab} logits, decode vs prefill {worst:.2e}, gguf {digest}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
