#!/usr/bin/env python3
"""Golden DeepSeek-V3 logits from an independent implementation: stock transformers DeepseekV3ForCausalLM.

The directory is the project's tiny DeepSeek-V3 export, written for a seed by the C++ generator (deterministic,
tests/model/deepseek_v3_tiny.hpp: the converted model of deepseek2_tiny.hpp, 2 MLA layers, ranks 24 and 16 padded
to 24, own latent norms, F32, vocab 260, a byte-level BPE tokenizer.json):

    cmake --build --preset cpu-release -j1 --target mla-make-deepseek-v3-tiny
    build/cpu-release/tests/model/mla-make-deepseek-v3-tiny /tmp/deepseek-v3-tiny 20250214

transformers loads it with AutoModelForCausalLM (no trust_remote_code; every weight present, none in excess, or
this script stops), float32, eager attention, one thread, and evaluates 16 fixed token ids in one batch. It also
evaluates them one token at a time through its own cache; `transformers_decode_vs_prefill` is the largest relative
difference (a consistency check of the reference, not a golden value). AutoTokenizer encodes a short text with its
default special-token handling (`text_ids`; the C++ test encodes it with the project's tokenizer read from the same
directory). The JSON holds the FNV-1a 64 hashes of the files it read (the C++ test regenerates the directory and
checks them), the tokens, the float32 logits of every position (all 260 vocabulary entries), their top-1 ids and
the versions.

Made with torch 2.15.0, transformers 5.25.0, tokenizers 0.23.3 (PyPI) in /work/venv/py:
    /work/venv/py/bin/python tools/transformers_deepseek_v3_golden.py --model /tmp/deepseek-v3-tiny --seed 20250214 \\
        --out tests/model/data/deepseek_v3_tiny_golden.json
"""
import argparse
import json
import os
import sys

import numpy as np
import tokenizers
import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache

FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
MASK = (1 << 64) - 1
FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")
TEXT = "Hello there, the theory in the inn."


def fnv1a64(data: bytes) -> str:
    h = FNV_OFFSET
    for b in memoryview(data):
        h = ((h ^ b) * FNV_PRIME) & MASK
    return f"{h:016x}"


def token_ids(n: int, vocab: int, salt: int) -> list:
    # Fixed, reproducible ids (no RNG library): a quadratic sequence mod vocab (as tools/deepseek2_golden.py).
    return [int((salt + 7919 * i * i + 104729 * i) % vocab) for i in range(n)]


def rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--seed", type=int, required=True, help="the seed the generator was given (recorded)")
    p.add_argument("--out", required=True)
    p.add_argument("--tokens", type=int, default=16)
    a = p.parse_args()
    torch.set_num_threads(1)

    digests = {}
    for name in FILES:
        with open(os.path.join(a.model, name), "rb") as f:
            digests[name] = fnv1a64(f.read())
    model, info = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32, attn_implementation="eager",
                                                       output_loading_info=True)
    problems = {k: v for k, v in info.items() if v}
    if problems:
        print(f"{a.model}: the checkpoint does not match the model transformers built: {problems}", file=sys.stderr)
        return 1
    model.eval()
    tok = AutoTokenizer.from_pretrained(a.model)
    vocab = model.config.vocab_size
    ids = token_ids(a.tokens, vocab, 11)

    with torch.no_grad():
        prefill = model(input_ids=torch.tensor([ids]), use_cache=False).logits[0].numpy().astype(np.float32)
        # One token at a time through transformers' cache: a consistency check of the reference.
        cache = DynamicCache(config=model.config)
        steps = []
        for t in ids:
            steps.append(model(input_ids=torch.tensor([[t]]), cache=cache, use_cache=True).logits[0, -1])
        decode = torch.stack(steps).numpy()
    worst = max(rel(decode[i], prefill[i]) for i in range(len(ids)))

    out = {
        "source": "transformers DeepseekV3ForCausalLM, float32, eager attention, one batch "
                  "(tools/transformers_deepseek_v3_golden.py)",
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "tokenizers": tokenizers.__version__},
        "model_class": type(model).__name__,
        "tokenizer_class": type(tok).__name__,
        "generator": f"mla-make-deepseek-v3-tiny <out_dir> {a.seed}",
        "seed": a.seed,
        "files_fnv1a64": digests,
        "transformers_decode_vs_prefill": worst,
        "text": TEXT,
        "text_ids": tok(TEXT)["input_ids"],
        "tokens": ids,
        "top1": [int(np.argmax(r)) for r in prefill],
        "logits": [[float(x) for x in r] for r in prefill],
    }
    with open(a.out, "w") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")
    print(f"{a.out}: {len(ids)} positions x {vocab} logits, decode vs prefill {worst:.2e}, files {digests}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
