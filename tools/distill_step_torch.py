#!/usr/bin/env python3
"""The end-to-end distillation step of mla-convert (--e2e-steps) written in PyTorch, timed on the same machine as
the project's (bench/distill_step.cpp, mla_distill_step), for issue 29 item 5.

One-off tool (the library and its tests never run it). Needs torch, safetensors and numpy from PyPI; checked with
torch 2.15.0 in the venv /work/venv/py:
    python3 -m venv /work/venv/py && /work/venv/py/bin/pip install torch safetensors numpy

Same model, same trainable set, same windows, same loss: the student is a checkpoint mla-convert wrote for a Llama
model (config.json with its "mla" object, model.safetensors in float32; include/mla/model/mla_config.hpp gives the
format), run in float32 with the naive MLA form (per-head keys and values expanded from the latent, as the
project's training forward does); the loss is sum over the batch's tokens of KL(p_teacher || softmax(z)) divided
by the batch's tokens, with the teacher's distributions and the token windows that mla_distill_step --dump wrote;
the trained tensors are kv_a_proj, k_rope_proj, k_b_proj, v_b_proj (and kv_a_layernorm when present) of every MLA
layer for `latent`, and q_proj and o_proj too for `attention`; the optimiser is torch.optim.Adam set up as the
project's (a step relative to each tensor's RMS, eps 1e-12, the same cosine schedule), so that the losses of the
later steps can be compared too. Before timing, the first step's loss and gradient norm are checked against
the project's (reference.json): a mismatch stops the script.

With --mla-bench the script first runs the project's step (the same command line as the dump) and then its own,
so that both numbers come from one run:

  mla-convert --model SmolLM2-135M-Instruct.Q4_1.gguf --kv-budget 0.5 --calib-tokens 2048 --out /tmp/conv
  python3 tools/distill_step_torch.py --mla-bench build/cpu-release/bench/mla_distill_step \\
      --model SmolLM2-135M-Instruct.Q4_1.gguf --student /tmp/conv --text wikitext-2-raw-test.txt \\
      --window 256 --batch 2 --steps 5 --train latent --threads 2 --dump /tmp/step
"""
import argparse
import json
import math
import os
import subprocess
import sys
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--student", required=True, help="converted checkpoint directory (mla-convert --out)")
    ap.add_argument("--dump", required=True, help="directory mla_distill_step --dump wrote (or writes)")
    ap.add_argument("--mla-bench", help="path of mla_distill_step: run it first (writes --dump)")
    ap.add_argument("--model", help="source model, for --mla-bench")
    ap.add_argument("--text", help="text, for --mla-bench")
    ap.add_argument("--window", type=int, default=256)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--train", choices=["latent", "attention"], default="latent")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--lr", type=float, default=2e-3, help="step relative to each tensor's RMS (the project's default)")
    a = ap.parse_args()

    if a.mla_bench:
        if not (a.model and a.text):
            sys.exit("distill_step_torch.py: --mla-bench needs --model and --text")
        env = dict(os.environ, OMP_NUM_THREADS=str(a.threads))
        cmd = [a.mla_bench, "--model", a.model, "--student", a.student, "--text", a.text, "--window", str(a.window),
               "--batch", str(a.batch), "--steps", str(a.steps), "--train", a.train, "--dump", a.dump]
        print("$ OMP_NUM_THREADS=%d %s" % (a.threads, " ".join(cmd)), flush=True)
        subprocess.run(cmd, check=True, env=env)

    import numpy as np
    import torch
    from safetensors.torch import load_file

    torch.set_num_threads(a.threads)
    cfg = json.load(open(os.path.join(a.student, "config.json")))
    if cfg.get("model_type") != "llama":
        sys.exit("distill_step_torch.py: '%s' is model_type %r; this script runs Llama conversions"
                 % (a.student, cfg.get("model_type")))
    mla = cfg["mla"]
    if mla.get("rope_layout") != "neox":
        sys.exit("distill_step_torch.py: rope_layout %r is not neox" % mla.get("rope_layout"))
    w = load_file(os.path.join(a.student, "model.safetensors"))
    w = {k: v.float() for k, v in w.items()}
    windows = json.load(open(os.path.join(a.dump, "windows.json")))["windows"]
    ref = json.load(open(os.path.join(a.dump, "reference.json")))
    if ref["train"] != a.train or len(windows) != a.batch or len(windows[0]) != a.window:
        sys.exit("distill_step_torch.py: --dump %s was written for another step (train %s, %d windows of %d)"
                 % (a.dump, ref["train"], len(windows), len(windows[0])))
    vocab, hidden = cfg["vocab_size"], cfg["hidden_size"]
    H, Hkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = cfg.get("head_dim") or hidden // H
    eps = cfg["rms_norm_eps"]
    theta = cfg.get("rope_theta", 10000.0)
    if cfg.get("rope_scaling"):
        sys.exit("distill_step_torch.py: rope_scaling is not implemented here")
    B, T = len(windows), len(windows[0])
    tokens = torch.tensor(windows, dtype=torch.long)
    teacher = torch.from_numpy(np.fromfile(os.path.join(a.dump, "teacher.f32"), dtype=np.float32)).view(B, T, vocab)
    plogp = torch.special.xlogy(teacher, teacher).sum()  # the constant part of the KL
    scale = mla.get("softmax_scale", 1.0 / math.sqrt(hd))
    pos = torch.arange(T, dtype=torch.float64)
    causal = torch.ones(T, T, dtype=torch.bool).tril()

    def cos_sin(inv):  # [T, dim/2], computed in double as the project does
        ang = pos[:, None] * torch.tensor(inv, dtype=torch.float64)[None, :]
        return ang.cos().float(), ang.sin().float()

    def rope(x, cs):  # NeoX half split over the last dim
        c, s = cs
        h = x.shape[-1] // 2
        x1, x2 = x[..., :h], x[..., h:]
        return torch.cat([x1 * c - x2 * s, x2 * c + x1 * s], dim=-1)

    def rms(x, g, e):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + e) * g

    layers = []
    trained = []
    for l, lc in enumerate(mla["layers"]):
        p = "model.layers.%d." % l
        L = {"attn_norm": w[p + "input_layernorm.weight"], "mlp_norm": w[p + "post_attention_layernorm.weight"],
             "gate": w[p + "mlp.gate_proj.weight"], "up": w[p + "mlp.up_proj.weight"],
             "down": w[p + "mlp.down_proj.weight"], "kind": lc["attention"]}
        a_ = p + "self_attn."
        if lc["attention"] == "gqa":
            for k in ("q", "k", "v", "o"):
                L[k] = w[a_ + k + "_proj.weight"]
            L["cs"] = cos_sin([1.0 / theta ** (2.0 * i / hd) for i in range(hd // 2)])
        else:
            d, dr, r, dv = lc["qk_nope_head_dim"], lc["qk_rope_head_dim"], lc["kv_lora_rank"], lc["v_head_dim"]
            L.update(d=d, dr=dr, r=r, dv=dv)
            names = {"wq": "q_proj", "w_dkv": "kv_a_proj", "w_kr": "k_rope_proj", "w_uk": "k_b_proj",
                     "w_uv": "v_b_proj", "wo": "o_proj"}
            for k, stem in names.items():
                L[k] = w[a_ + stem + ".weight"].clone()
            if a_ + "kv_a_layernorm.weight" in w:
                L["latent_norm"] = w[a_ + "kv_a_layernorm.weight"].clone()
            inv = lc.get("rope_inv_freq") or [1.0 / theta ** (2.0 * i / dr) for i in range(dr // 2)]
            L["cs"] = cos_sin(inv)
            keys = ["w_dkv", "w_kr", "w_uk", "w_uv"] + (["wq", "wo"] if a.train == "attention" else [])
            keys += ["latent_norm"] if "latent_norm" in L else []
            for k in keys:
                L[k].requires_grad_(True)
                trained.append(L[k])
        layers.append(L)
    embed = w["model.embed_tokens.weight"]
    unembed = w.get("lm_head.weight", embed)
    final_norm = w["model.norm.weight"]

    def attention(L, xn):
        if L["kind"] == "gqa":
            q = (xn @ L["q"].T).view(B, T, H, hd).transpose(1, 2)
            k = (xn @ L["k"].T).view(B, T, Hkv, hd).transpose(1, 2).repeat_interleave(H // Hkv, 1)
            v = (xn @ L["v"].T).view(B, T, Hkv, hd).transpose(1, 2).repeat_interleave(H // Hkv, 1)
            q, k = rope(q, L["cs"]), rope(k, L["cs"])
            s = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(hd))
            o = torch.softmax(s.masked_fill(~causal, float("-inf")), -1) @ v
            return o.transpose(1, 2).reshape(B, T, H * hd) @ L["o"].T
        d, dr, r, dv = L["d"], L["dr"], L["r"], L["dv"]
        q = (xn @ L["wq"].T).view(B, T, H, d + dr).transpose(1, 2)  # [B, H, T, d + dr]
        q_nope, q_rope = q[..., :d], rope(q[..., d:], L["cs"])
        c = xn @ L["w_dkv"].T  # [B, T, r]
        if "latent_norm" in L:
            c = rms(c, L["latent_norm"], 1e-6)
        k_pe = rope(xn @ L["w_kr"].T, L["cs"])  # [B, T, dr]
        k = (c @ L["w_uk"].T).view(B, T, H, d).transpose(1, 2)
        v = (c @ L["w_uv"].T).view(B, T, H, dv).transpose(1, 2)
        s = (q_nope @ k.transpose(-1, -2) + q_rope @ k_pe[:, None].transpose(-1, -2)) * scale
        o = torch.softmax(s.masked_fill(~causal, float("-inf")), -1) @ v
        return o.transpose(1, 2).reshape(B, T, H * dv) @ L["wo"].T

    def loss_fn():
        x = embed[tokens]
        for L in layers:
            x = x + attention(L, rms(x, L["attn_norm"], eps))
            m = rms(x, L["mlp_norm"], eps)
            x = x + (torch.nn.functional.silu(m @ L["gate"].T) * (m @ L["up"].T)) @ L["down"].T
        z = rms(x, final_norm, eps) @ unembed.T
        return (plogp - (teacher * torch.log_softmax(z, -1)).sum()) / (B * T)

    # The project's optimiser (rms_adam in include/mla/convert/distill.hpp): Adam (0.9, 0.999, eps 1e-12) with each
    # tensor's step relative to its RMS when registered, on the cosine schedule of mla_distill_step (steps + 1).
    groups = [{"params": [t], "base": a.lr * float(t.detach().double().pow(2).mean().sqrt())} for t in trained]
    opt = torch.optim.Adam([{"params": g["params"], "lr": g["base"]} for g in groups], betas=(0.9, 0.999), eps=1e-12)
    n_trained = sum(t.numel() for t in trained)
    print("torch %s, %d threads: %d layers, trained set %s (%d values), %d windows of %d tokens per step"
          % (torch.__version__, torch.get_num_threads(), len(layers), a.train, n_trained, B, T), flush=True)

    def step(s):
        opt.zero_grad(set_to_none=True)
        loss = loss_fn()
        loss.backward()
        gn = math.sqrt(sum(float(t.grad.double().pow(2).sum()) for t in trained))
        rate = 0.5 * (1.0 + math.cos(math.pi * (s - 1) / (a.steps + 1)))
        for g, pg in zip(groups, opt.param_groups):
            pg["lr"] = g["base"] * rate
        opt.step()
        return float(loss.detach()), gn

    t0 = time.perf_counter()
    loss0, gn0 = step(1)
    print("step 1 (untimed warm-up, %.2f s): loss %.6f nats/token, gradient norm %.6e; the project's: %.6f, %.6e"
          % (time.perf_counter() - t0, loss0, gn0, ref["loss"], ref["grad_norm"]), flush=True)
    dl, dg = abs(loss0 - ref["loss"]) / ref["loss"], abs(gn0 - ref["grad_norm"]) / ref["grad_norm"]
    if dl > 1e-4 or dg > 1e-3:
        sys.exit("distill_step_torch.py: not the same step: loss differs by %.2e, gradient norm by %.2e (relative)"
                 % (dl, dg))
    print("same step: loss within %.1e, gradient norm within %.1e (relative)" % (dl, dg))
    times = []
    for s in range(2, a.steps + 2):
        t0 = time.perf_counter()
        loss, _ = step(s)
        times.append(time.perf_counter() - t0)
        print("step %d: %.3f s, loss %.6f" % (s, times[-1], loss), flush=True)
    med = sorted(times)[len(times) // 2]
    print("median step %.3f s over %d steps = %.1f tokens/s (%d tokens per step)" % (med, a.steps, B * T / med, B * T))


if __name__ == "__main__":
    main()
