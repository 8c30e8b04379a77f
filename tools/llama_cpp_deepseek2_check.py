#!/usr/bin/env python3
"""Runs a GGUF deepseek2 export of mla-convert (--export gguf) in llama.cpp and reports what issue 28 asks.

One-off tool (the library and its tests never run it). It uses llama.cpp through the PyPI source package
llama-cpp-python (the version this project checks against is 0.3.36: `pip install --no-binary llama-cpp-python
llama-cpp-python==0.3.36`; here the venv /work/venv/py has it). Run:

  mla-convert --model SmolLM2-135M-Instruct.Q4_1.gguf --calib wikitext-2-valid-tokenized.txt --kv-budget 0.5 \
      --latent-norm --out /tmp/x --export gguf [--export-type q8_0]
  python3 tools/llama_cpp_deepseek2_check.py --model /tmp/x-deepseek2.gguf --text wikitext-2-raw-test.txt \
      --ctx 512 --max-tokens 8192
  mla-eval --model /tmp/x-deepseek2.gguf --text wikitext-2-raw-test.txt --ctx 512 --max-tokens 8192

It prints (1) llama.cpp's own log lines about the model's MLA hyper-parameters and its KV cache (the cache is
one shared key of kv_lora_rank + rope dims per token and layer, F16 by default), (2) the answer to a chat prompt
through the GGUF's chat template (greedy), (3) the perplexity by the project's protocol (include/mla/eval/
perplexity.hpp): the text tokenized once without BOS, at most --max-tokens tokens, cut into non-overlapping
windows of --ctx tokens (the tail dropped), each window from a fresh context, positions 0..ctx-2 scored against
tokens 1..ctx-1, exp(mean NLL). That is what mla-eval prints for the same file, so the two can be compared.
--f32-cache keeps llama.cpp's cache in float32 (its default, float16, rounds the cached latent).
"""
import argparse
import json
import math
import os
import re
import sys
import tempfile
import time

import numpy as np
from llama_cpp import Llama, __version__ as llama_cpp_version


def load_logged(model, ctx, threads, f32_cache):
    """Loads the model with llama.cpp's log on, captured from file descriptor 2; returns (llm, log text)."""
    extra = {"type_k": 0, "type_v": 0} if f32_cache else {}
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as log:
        os.dup2(log.fileno(), 2)
        try:
            llm = Llama(model_path=model, n_ctx=ctx, n_batch=min(ctx, 2048), n_ubatch=min(ctx, 512),
                        logits_all=True, verbose=True, n_threads=threads, n_threads_batch=threads, seed=0, **extra)
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
        log.seek(0)
        return llm, log.read().decode("utf-8", errors="replace")


def perplexity(llm, text, ctx, max_tokens):
    tokens = llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)
    usable = min(len(tokens), max_tokens) if max_tokens else len(tokens)
    windows = usable // ctx
    nll, count, t0 = 0.0, 0, time.time()
    for w in range(windows):
        ids = tokens[w * ctx:(w + 1) * ctx]
        llm.reset()
        llm.eval(ids)
        logits = np.array(llm.scores[: ctx - 1], dtype=np.float64)
        m = logits.max(axis=1, keepdims=True)
        lse = m[:, 0] + np.log(np.exp(logits - m).sum(axis=1))
        nll += float((lse - logits[np.arange(ctx - 1), ids[1:]]).sum())
        count += ctx - 1
        print(f"\rwindow {w + 1}/{windows} ppl so far {math.exp(nll / count):.4f} "
              f"({count / (time.time() - t0):.0f} tok/s)", end="", file=sys.stderr)
    print(file=sys.stderr)
    return {"tokens_in_text": len(tokens), "windows": windows, "tokens_scored": count,
            "perplexity": math.exp(nll / count) if count else float("nan"), "seconds": time.time() - t0}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="the GGUF deepseek2 export")
    p.add_argument("--text", help="text for the perplexity (skipped without it)")
    p.add_argument("--ctx", type=int, default=512)
    p.add_argument("--max-tokens", type=int, default=8192, help="score at most this many tokens (0: all)")
    p.add_argument("--prompt", default="What is the capital of France?")
    p.add_argument("--max-new-tokens", type=int, default=48)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--f32-cache", action="store_true")
    p.add_argument("--json", help="also write the results here")
    a = p.parse_args()

    llm, log = load_logged(a.model, a.ctx, a.threads, a.f32_cache)
    wanted = re.compile(r"general\.architecture|n_lora_kv|n_embd_head_k_mla|n_embd_head_v_mla|n_rot|n_head_kv|"
                        r"n_embd_k_gqa|n_embd_v_gqa|llama_kv_cache|KV self size|llama_context: n_ctx ")
    log_lines = [l for l in log.splitlines() if wanted.search(l) and "dev = " not in l and "metadata:" not in l]
    print("llama.cpp " + llama_cpp_version + " log (model and KV cache):")
    for l in log_lines:
        print("  " + l)

    out = {"source": "llama.cpp via llama-cpp-python " + llama_cpp_version, "model": a.model, "log": log_lines}
    r = llm.create_chat_completion(messages=[{"role": "user", "content": a.prompt}], max_tokens=a.max_new_tokens,
                                   temperature=0.0, top_k=1)
    answer = r["choices"][0]["message"]["content"]
    print(f"chat: {a.prompt!r} -> {answer!r}")
    out["chat"] = {"prompt": a.prompt, "answer": answer}
    if a.text:
        text = open(a.text, "rb").read().decode("utf-8")
        out["perplexity"] = dict(perplexity(llm, text, a.ctx, a.max_tokens), ctx=a.ctx, max_tokens=a.max_tokens,
                                 text=a.text, f32_cache=a.f32_cache)
        print("perplexity:", json.dumps(out["perplexity"]))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
