#!/usr/bin/env python3
"""Golden gpt-oss logits from an independent implementation: Hugging Face transformers' GptOssForCausalLM.

The checkpoint is a synthetic one written by the project's generator (deterministic for a seed):

    mla-make-gpt-oss --preset tiny --seed 20240805 --out /tmp/gptoss-tiny

(4 layers: 0 and 2 slide over a window of 8, 1 and 3 are full; 8 heads / 2 KV heads of 64, 8 experts
top-4 with MXFP4 weights, learned sinks, YaRN factor 32 with truncate=false, vocab 512).

transformers loads it in float32 with the MXFP4 experts dequantised (Mxfp4Config(dequantize=True);
without CUDA it dequantises anyway), eager attention (the sink column), and runs fixed token ids:

  (a) "short": 7 tokens, inside the window;
  (b) "long": 40 tokens, five windows, so the window and the sinks shape the later rows.

For each case the JSON holds the float32 logits of every position, the top-1 ids, and how far the
float32 logits are from the same transformers model run in float64 (the golden's own precision). It
also records, per layer, an FNV-1a hash of transformers' dequantised expert weights (float32 bytes,
laid out back as [expert, out, in] row-major, i.e. the project's layout) so the C++ test can check
that both dequantisations agree bit for bit, and the FNV-1a hash of every checkpoint file so the test
knows it regenerated the very same checkpoint.

transformers also runs each case as a prefill of the first token followed by one-token decode steps
through its own KV cache (sliding-window layers included); `hf_decode_vs_prefill` is the largest
relative difference it sees (a consistency check of the reference, not a golden value).

Made with torch 2.15.0, transformers 5.24.0 (CPU), in a venv:
    python3 -m venv /tmp/venv-torch && /tmp/venv-torch/bin/pip install torch transformers safetensors
    /tmp/venv-torch/bin/python tools/gpt_oss_golden.py --checkpoint /tmp/gptoss-tiny \
        --seed 20240805 --out tests/model/data/gpt_oss_tiny_golden.json
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
import transformers
from transformers import GptOssForCausalLM, Mxfp4Config

FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
MASK = (1 << 64) - 1


def fnv1a64(data: bytes) -> str:
    # 64-bit FNV-1a (plain Python; a few MB take a few seconds).
    h = FNV_OFFSET
    p = FNV_PRIME
    m = MASK
    for b in memoryview(data):
        h = ((h ^ b) * p) & m
    return f"{h:016x}"


# E2M1 per formats.md §1.8, written here independently of transformers.
E2M1 = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0], dtype=np.float32)


def numpy_dequant(blocks: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """[E, rows, G, 16] u8 + [E, rows, G] u8 -> [E, rows, G*32] float32 (low nibble first)."""
    lo = E2M1[blocks & 0x0F]
    hi = E2M1[blocks >> 4]
    vals = np.stack([lo, hi], axis=-1).reshape(*blocks.shape[:-1], 32)
    vals = np.ldexp(vals, scales.astype(np.int32)[..., None] - 127).astype(np.float32)
    return vals.reshape(*blocks.shape[:-2], blocks.shape[-2] * 32)


def token_ids(n: int, vocab: int, salt: int) -> list:
    # Fixed, reproducible ids (no RNG library involved): a multiplicative sequence mod vocab.
    return [int((salt + 7919 * i * i + 104729 * i) % vocab) for i in range(n)]


def run_prefill(model, ids):
    with torch.no_grad():
        out = model(input_ids=torch.tensor([ids]), use_cache=False)
    return out.logits[0]


def run_decode(model, ids):
    rows = []
    with torch.no_grad():
        cache = None
        for i, t in enumerate(ids):
            out = model(input_ids=torch.tensor([[t]]), past_key_values=cache, use_cache=True,
                        position_ids=torch.tensor([[i]]), cache_position=torch.tensor([i]))
            cache = out.past_key_values
            rows.append(out.logits[0, -1])
    return torch.stack(rows)


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--seed", type=int, required=True, help="the seed given to mla-make-gpt-oss")
    ap.add_argument("--generator-args", default="--preset tiny", help="the other mla-make-gpt-oss arguments")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)

    ck = args.checkpoint
    files = sorted(f for f in os.listdir(ck) if f.endswith(".json") or f.endswith(".safetensors"))
    hashes = {}
    for f in files:
        with open(os.path.join(ck, f), "rb") as fh:
            hashes[f] = fnv1a64(fh.read())
    print("checkpoint files:", hashes, file=sys.stderr)

    def load(dtype):
        return GptOssForCausalLM.from_pretrained(
            ck, dtype=dtype, attn_implementation="eager", experts_implementation="eager",
            quantization_config=Mxfp4Config(dequantize=True)).eval()

    model = load(torch.float32)
    cfg = model.config
    print("config:", cfg.layer_types, cfg.sliding_window, cfg.rope_parameters, file=sys.stderr)
    assert cfg.layer_types[0] == "sliding_attention" and cfg.layer_types[1] == "full_attention"
    assert cfg.rope_parameters["rope_type"] == "yarn" and cfg.rope_parameters["truncate"] is False

    # transformers' dequantisation against an independent numpy decode of the raw bytes, bit for bit,
    # and per-layer hashes of it in the project's [E, out, in] layout.
    from safetensors import safe_open
    raw = {}
    for f in files:
        if f.endswith(".safetensors"):
            with safe_open(os.path.join(ck, f), framework="pt") as st:
                for k in st.keys():
                    if k.endswith("_blocks") or k.endswith("_scales"):
                        raw[k] = st.get_tensor(k).numpy()
    expert_hashes = []
    for l, layer in enumerate(model.model.layers):
        ex = layer.mlp.experts
        entry = {}
        for proj in ("gate_up_proj", "down_proj"):
            hf = getattr(ex, proj).detach()  # [E, in, out]
            assert hf.dtype == torch.float32, hf.dtype
            ours = numpy_dequant(raw[f"model.layers.{l}.mlp.experts.{proj}_blocks"],
                                 raw[f"model.layers.{l}.mlp.experts.{proj}_scales"])  # [E, out, in]
            back = hf.transpose(1, 2).contiguous().numpy()  # [E, out, in]
            assert back.shape == ours.shape, (back.shape, ours.shape)
            assert back.tobytes() == ours.tobytes(), f"layer {l} {proj}: transformers' dequantisation differs"
            entry[proj] = fnv1a64(back.tobytes())
        expert_hashes.append(entry)
    print("transformers' MXFP4 dequantisation == numpy decode of formats.md §1.8, bit for bit", file=sys.stderr)

    model64 = load(torch.float64)
    vocab = cfg.vocab_size
    cases = []
    for name, n, salt in (("short", 7, 3), ("long", 40, 11)):
        ids = token_ids(n, vocab, salt)
        logits = run_prefill(model, ids)
        logits64 = run_prefill(model64, ids)
        decode = run_decode(model, ids)
        assert torch.isfinite(logits).all()
        case = {
            "name": name,
            "tokens": ids,
            "logits": [[float(f"{v:.9g}") for v in row] for row in logits.tolist()],  # float32 round-trips
            "top1": logits.argmax(-1).tolist(),
            "hf_float32_vs_float64": rel(logits, logits64),
            "hf_decode_vs_prefill": max(rel(decode[i], logits[i]) for i in range(n)),
            "top1_float64": logits64.argmax(-1).tolist(),
        }
        print(f"{name}: {n} tokens, f32 vs f64 {case['hf_float32_vs_float64']:.3g}, decode vs prefill "
              f"{case['hf_decode_vs_prefill']:.3g}, top1 {case['top1']}", file=sys.stderr)
        cases.append(case)

    golden = {
        "source": "transformers GptOssForCausalLM, float32, eager attention, MXFP4 dequantised "
                  "(tools/gpt_oss_golden.py)",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "generator": f"mla-make-gpt-oss {args.generator_args} --seed {args.seed}",
        "seed": args.seed,
        "checkpoint_fnv1a64": hashes,
        "expert_weights_fnv1a64": expert_hashes,
        "cases": cases,
    }
    with open(args.out, "w") as fh:
        json.dump(golden, fh, separators=(",", ":"))
        fh.write("\n")
    print("wrote", args.out, os.path.getsize(args.out), "bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
