#!/usr/bin/env python3
"""Independent reference numbers for SmolLM2-135M-Instruct (Q4_1 GGUF) from llama.cpp.

One-off tool: its outputs are committed (golden logits) or recorded in bench/RESULTS.md (perplexity).
The mla library and its tests never run it. It uses llama.cpp through the PyPI source package
llama-cpp-python (built from source: `pip install --no-binary llama-cpp-python llama-cpp-python`).

  python3 tools/llama_cpp_reference.py dequantize --model M.gguf --out /tmp/M.f32.gguf
  python3 tools/llama_cpp_reference.py logits --model /tmp/M.f32.gguf --out tests/model/data/smollm2_llama_cpp_logits.json
  python3 tools/llama_cpp_reference.py perplexity --model M.gguf --text wikitext-2-raw-test.txt --ctx 2048

dequantize: rewrites the GGUF with every tensor dequantised to F32 by the `gguf` package (metadata copied).
llama.cpp multiplies Q4_1/Q8_0 weights with activations rounded to 8 bits; on F32 weights it computes in
float32, which is what the mla reference model does with the same dequantised weights, so the golden
logits come from the F32 file.
logits: feeds fixed token ids (no tokenizer involved) and records, per position, the top-1 id, the
top-8 ids with their logits, and the logits of 16 fixed probe ids, with llama.cpp's K/V cache in float32.
perplexity: tokenizes the whole file with llama.cpp's tokenizer (no BOS: the model's add_bos is false),
cuts non-overlapping windows of --ctx tokens, drops the tail, scores positions 0..ctx-2 against tokens
1..ctx-1 of each window from a fresh context, and prints exp(mean NLL) (the convention of GPTQ/TransMLA,
shared/notes/formats.md §5 A).
"""
import argparse
import json
import math
import sys
import time

import numpy as np
from llama_cpp import Llama, __version__ as llama_cpp_version

# Fixed prompts as token ids (chosen once from the vocabulary; no tokenizer needed to replay them).
# Fixed prompts as token ids (llama.cpp's tokenization of the texts in the comments, done once; replaying
# ids keeps the golden logits independent of any tokenizer).
PROMPTS = {
    # ChatML: default system prompt, user "What is the capital of France?", generation prompt.
    "chat": [1, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 3365, 3511, 308, 34519, 28, 7018, 411, 407, 19712,
             8182, 2, 198, 1, 4093, 198, 1780, 314, 260, 3575, 282, 4649, 47, 2, 198, 1, 520, 9531, 198],
    # "The capital of France is Paris. The city has been the seat of government since the Middle Ages, and it
    #  is known for its museums. The population of the city is"
    "prose": [504, 3575, 282, 4649, 314, 7042, 30, 378, 2240, 553, 719, 260, 8952, 282, 1693, 1675, 260, 5550,
              13192, 28, 284, 357, 314, 1343, 327, 624, 14739, 30, 378, 2155, 282, 260, 2240, 314],
    # "def fibonacci(n):\n    if n < 2:\n        return n\n"
    "code": [1604, 3987, 46477, 24, 94, 727, 472, 585, 304, 2067, 216, 34, 42, 448, 1003, 304, 198],
}
PROBES = [0, 1, 2, 13, 30, 198, 260, 314, 1000, 4649, 9690, 12345, 20000, 30000, 40000, 49151]


def load(model, ctx, f32_cache=False, a_threads=1):
    # f32_cache: keep llama.cpp's K/V cache in float32 (its default is float16) for the golden logits.
    # One thread by default: llama.cpp's spinning thread barrier collapses when another process shares
    # the cores (measured 36 tok/s with 2 threads on a loaded 2-core machine).
    extra = {"type_k": 0, "type_v": 0} if f32_cache else {}
    return Llama(model_path=model, n_ctx=ctx, n_batch=min(ctx, 2048), n_ubatch=min(ctx, 512), logits_all=True,
                 verbose=False, n_threads=a_threads, n_threads_batch=a_threads, seed=0, **extra)


def cmd_logits(a):
    llm = load(a.model, 512, f32_cache=True)
    out = {"source": "llama.cpp via llama-cpp-python " + llama_cpp_version, "model": a.model.split("/")[-1],
           "probe_ids": PROBES, "prompts": {}}
    for name, ids in PROMPTS.items():
        llm.reset()
        llm.eval(ids)
        logits = np.array(llm.scores[: len(ids)], dtype=np.float64)  # [positions, vocab]
        rows = []
        for p in range(len(ids)):
            row = logits[p]
            top = np.argsort(-row)[:8]
            rows.append({"top1": int(top[0]), "top_ids": [int(i) for i in top],
                         "top_logits": [float(row[i]) for i in top],
                         "probe_logits": [float(row[i]) for i in PROBES]})
        out["prompts"][name] = {"ids": ids, "positions": rows}
    with open(a.out, "w") as f:
        json.dump(out, f, indent=1)
    print("wrote", a.out)


def cmd_dequantize(a):
    import gguf
    r = gguf.GGUFReader(a.model)
    arch = r.fields["general.architecture"]
    arch = bytes(arch.parts[arch.data[0]]).decode()
    w = gguf.GGUFWriter(a.out, arch)
    for key, field in r.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture" or key == "general.file_type":
            continue
        vtype = field.types[0]
        if vtype == gguf.GGUFValueType.ARRAY:
            etype = field.types[1]
            if etype == gguf.GGUFValueType.STRING:
                vals = [bytes(field.parts[i]).decode("utf-8", errors="surrogateescape") for i in field.data]
            else:
                vals = [field.parts[i][0].item() for i in field.data]
            w.add_key_value(key, vals, vtype, sub_type=etype)
        elif vtype == gguf.GGUFValueType.STRING:
            w.add_key_value(key, bytes(field.parts[field.data[0]]).decode("utf-8"), vtype)
        else:
            w.add_key_value(key, field.parts[field.data[0]][0].item(), vtype)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    for t in r.tensors:
        data = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
        w.add_tensor(t.name, data.reshape([int(x) for x in reversed(t.shape)]), raw_dtype=gguf.GGMLQuantizationType.F32)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print("wrote", a.out)


def cmd_perplexity(a):
    text = open(a.text, "rb").read().decode("utf-8")
    llm = load(a.model, a.ctx, a_threads=a.threads)
    t0 = time.time()
    tokens = llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)
    print(f"tokenized {len(tokens)} tokens in {time.time() - t0:.1f} s", file=sys.stderr)
    windows = len(tokens) // a.ctx
    if a.max_windows:
        windows = min(windows, a.max_windows)
    nll, count = 0.0, 0
    t0 = time.time()
    for w in range(windows):
        ids = tokens[w * a.ctx:(w + 1) * a.ctx]
        llm.reset()
        llm.eval(ids)
        logits = np.array(llm.scores[: a.ctx - 1], dtype=np.float64)
        m = logits.max(axis=1, keepdims=True)
        lse = (m[:, 0] + np.log(np.exp(logits - m).sum(axis=1)))
        nll += float((lse - logits[np.arange(a.ctx - 1), ids[1:]]).sum())
        count += a.ctx - 1
        print(f"\rwindow {w + 1}/{windows} ppl so far {math.exp(nll / count):.4f} "
              f"({count / (time.time() - t0):.0f} tok/s)", end="", file=sys.stderr)
    print(file=sys.stderr)
    print(json.dumps({"source": "llama.cpp via llama-cpp-python " + llama_cpp_version, "tokens": len(tokens),
                      "ctx": a.ctx, "windows": windows, "tokens_scored": count,
                      "perplexity": math.exp(nll / count), "seconds": time.time() - t0}))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    l = sub.add_parser("logits")
    l.add_argument("--model", required=True)
    l.add_argument("--out", required=True)
    d = sub.add_parser("dequantize")
    d.add_argument("--model", required=True)
    d.add_argument("--out", required=True)
    q = sub.add_parser("perplexity")
    q.add_argument("--model", required=True)
    q.add_argument("--text", required=True)
    q.add_argument("--ctx", type=int, default=2048)
    q.add_argument("--max-windows", type=int, default=0)
    q.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    {"logits": cmd_logits, "perplexity": cmd_perplexity, "dequantize": cmd_dequantize}[a.cmd](a)


if __name__ == "__main__":
    main()
