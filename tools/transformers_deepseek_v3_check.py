#!/usr/bin/env python3
"""Runs a DeepSeek-V3 export of mla-convert (--export deepseek_v3) in stock transformers and reports what issue 28
asks: DeepseekV3ForCausalLM and AutoTokenizer load it without trust_remote_code, answer a chat prompt, and give the
project's perplexity and logits.

One-off tool (the library and its tests never run it). Needs torch and transformers >= 4.51 (DeepseekV3) from
PyPI; checked with torch 2.15.0, transformers 5.25.0, tokenizers 0.23.3 in the venv /work/venv/py:
    /work/venv/py/bin/pip install torch transformers
Run (float32 on the CPU, eager attention, one thread by default):

  mla-convert --model SmolLM2-135M-Instruct.Q4_1.gguf --kv-budget 0.5 --latent-norm --calib-tokens 2048 \
      --out /tmp/x --export deepseek_v3                                 # writes /tmp/x and /tmp/x-deepseek_v3
  python3 tools/transformers_deepseek_v3_check.py --model /tmp/x-deepseek_v3 --text wikitext-2-raw-test.txt \
      --ctx 512 --max-tokens 8192 --window-ids /tmp/w0.json
  mla-dump-logits /tmp/x-deepseek_v3 /tmp/w0.json /tmp/w0.f32           # the project's logits of that window
  python3 tools/transformers_deepseek_v3_check.py --model /tmp/x-deepseek_v3 --window-ids /tmp/w0.json \
      --compare-logits /tmp/w0.f32 --no-chat
  mla-eval --model /tmp/x-deepseek_v3 --text wikitext-2-raw-test.txt --ctx 512 --max-tokens 8192

(mla-dump-logits is built with `cmake --build --preset cpu-release --target mla-dump-logits`, in
build/cpu-release/tests/model/.) It prints (1) the config transformers made of config.json, the model and
tokenizer classes and any weight the checkpoint lacked or had in excess (an error: transformers would initialise
a missing one at random); (2) the answer to a chat prompt through the export's chat template, greedy; (3) with
--text, the perplexity by the project's protocol (include/mla/eval/perplexity.hpp, as mla-eval computes it): the
file read as bytes and decoded as UTF-8, tokenized once by the export's tokenizer with its default special-token
handling (mla-eval's tokenizer default: for a tokenizer.json without a BOS post-processor, no BOS), at most
--max-tokens tokens, non-overlapping windows of --ctx tokens (the tail dropped), each window from a fresh context,
positions 0..ctx-2 scored against tokens 1..ctx-1 in float64, exp(mean NLL). The token count of the whole file is
printed so that it can be compared with mla-eval's "text ... (N tokens)" line. --window-ids writes window
--window's ids ({"tokens": [...]}, from --text) or, without --text, reads them; --compare-logits then compares
transformers' logits of that window with the project's (raw float32 [tokens, vocab], mla-dump-logits): relative
error ||a - b|| / ||b|| per position over the whole vocabulary, worst and mean, and the top-1 agreement.
--logits-ids / --logits-out dump transformers' logits of given ids to JSON.
"""
import argparse
import json
import math
import sys
import time

import numpy as np
import tokenizers
import torch
import transformers
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer


def load(path):
    config = AutoConfig.from_pretrained(path)
    model, info = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="eager",
                                                       output_loading_info=True)
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    return config, model, tokenizer, info


def logits_of(model, ids):
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids], dtype=torch.long), use_cache=False).logits[0].numpy()


def perplexity(model, tokens, ctx, max_tokens):
    usable = min(len(tokens), max_tokens) if max_tokens else len(tokens)
    windows = usable // ctx
    nll, count, t0 = 0.0, 0, time.time()
    for w in range(windows):
        ids = tokens[w * ctx:(w + 1) * ctx]
        logits = logits_of(model, ids)[: ctx - 1].astype(np.float64)
        m = logits.max(axis=1, keepdims=True)
        lse = m[:, 0] + np.log(np.exp(logits - m).sum(axis=1))
        nll += float((lse - logits[np.arange(ctx - 1), ids[1:]]).sum())
        count += ctx - 1
        print(f"\rwindow {w + 1}/{windows} ppl so far {math.exp(nll / count):.4f} "
              f"({count / (time.time() - t0):.0f} tok/s)", end="", file=sys.stderr)
    print(file=sys.stderr)
    return {"windows": windows, "tokens_scored": count, "mean_nll": nll / count if count else float("nan"),
            "perplexity": math.exp(nll / count) if count else float("nan"), "seconds": time.time() - t0}


def compare(ours, theirs):
    """Per-position ||ours - theirs|| / ||theirs|| over the vocabulary (theirs: the project's logits)."""
    err = np.linalg.norm(ours.astype(np.float64) - theirs, axis=1) / np.linalg.norm(theirs.astype(np.float64), axis=1)
    top1 = float((ours.argmax(axis=1) == theirs.argmax(axis=1)).mean())
    return {"positions": int(len(err)), "worst_relative_error": float(err.max()),
            "worst_position": int(err.argmax()), "mean_relative_error": float(err.mean()), "top1_agreement": top1}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="the deepseek_v3 export directory")
    p.add_argument("--text", help="text for the perplexity and --window-ids (skipped without it)")
    p.add_argument("--ctx", type=int, default=512)
    p.add_argument("--max-tokens", type=int, default=8192, help="score at most this many tokens (0: all)")
    p.add_argument("--no-perplexity", action="store_true", help="with --text: only tokenize (for --window-ids)")
    p.add_argument("--window", type=int, default=0, help="the window --window-ids writes")
    p.add_argument("--window-ids", help="with --text: write that window's ids here; without: read them")
    p.add_argument("--compare-logits", help="the project's logits of --window-ids (raw float32 [tokens, vocab])")
    p.add_argument("--logits-ids", help="comma-separated token ids whose logits --logits-out gets")
    p.add_argument("--logits-out", help="JSON file for the logits of --logits-ids")
    p.add_argument("--prompt", default="What is the capital of France?")
    p.add_argument("--max-new-tokens", type=int, default=48)
    p.add_argument("--no-chat", action="store_true")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", help="also write the results here")
    a = p.parse_args()
    torch.set_num_threads(a.threads)

    config, model, tokenizer, info = load(a.model)
    versions = {"torch": torch.__version__, "transformers": transformers.__version__,
                "tokenizers": tokenizers.__version__}
    print("versions:", json.dumps(versions))
    print(f"classes: {type(config).__name__}, {type(model).__name__}, {type(tokenizer).__name__}")
    seen = {k: getattr(config, k, None) for k in
            ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "q_lora_rank", "kv_lora_rank",
             "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim", "first_k_dense_replace", "rope_interleave",
             "rope_parameters", "rms_norm_eps", "tie_word_embeddings", "bos_token_id", "eos_token_id")}
    print("config seen:", json.dumps(seen, default=str))
    attn = model.model.layers[0].self_attn
    print(f"layer 0: softmax scale {attn.scaling:.9g}, kv_a_layernorm eps {attn.kv_a_layernorm.variance_epsilon}, "
          f"mlp {type(model.model.layers[0].mlp).__name__}")
    problems = {k: v for k, v in info.items() if v}
    out = {"model": a.model, "versions": versions, "config": seen, "loading_problems": {k: list(map(str, v))
                                                                                        for k, v in problems.items()}}
    if problems:
        print("error: the checkpoint does not match the model transformers built:", problems, file=sys.stderr)
        return 1

    if not a.no_chat:
        msgs = [{"role": "user", "content": a.prompt}]
        ids = tokenizer.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        with torch.no_grad():
            gen = model.generate(**ids, max_new_tokens=a.max_new_tokens, do_sample=False)
        answer = tokenizer.decode(gen[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
        print(f"chat: {a.prompt!r} -> {answer!r}")
        out["chat"] = {"prompt": a.prompt, "answer": answer}

    window = None
    if a.text:
        text = open(a.text, "rb").read().decode("utf-8")
        tokens = tokenizer(text)["input_ids"]
        first = tokenizer.convert_ids_to_tokens(tokens[:1])
        print(f"text: {a.text} ({len(tokens)} tokens; first {tokens[:1]} {first})")
        out["text_tokens"] = len(tokens)
        if not a.no_perplexity:
            out["perplexity"] = dict(perplexity(model, tokens, a.ctx, a.max_tokens), ctx=a.ctx,
                                     max_tokens=a.max_tokens, text=a.text)
            print("perplexity:", json.dumps(out["perplexity"]))
        if a.window_ids:
            window = tokens[a.window * a.ctx:(a.window + 1) * a.ctx]
            with open(a.window_ids, "w") as f:
                json.dump({"tokens": window, "window": a.window, "ctx": a.ctx, "text": a.text}, f)
    elif a.window_ids:
        window = json.load(open(a.window_ids))["tokens"]
    if a.compare_logits:
        if window is None:
            print("error: --compare-logits needs --window-ids", file=sys.stderr)
            return 1
        ours = logits_of(model, window)
        theirs = np.fromfile(a.compare_logits, dtype="<f4")
        if theirs.size != ours.size:
            print(f"error: {a.compare_logits} has {theirs.size} floats, expected {ours.shape[0]} x {ours.shape[1]}",
                  file=sys.stderr)
            return 1
        out["logits_vs_project"] = compare(ours, theirs.reshape(ours.shape))
        print("logits vs the project's:", json.dumps(out["logits_vs_project"]))
    if a.logits_ids:
        ids = [int(x) for x in a.logits_ids.split(",")]
        lg = logits_of(model, ids)
        with open(a.logits_out, "w") as f:
            json.dump({"tokens": ids, "logits": [[float(x) for x in r] for r in lg]}, f, separators=(",", ":"))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
