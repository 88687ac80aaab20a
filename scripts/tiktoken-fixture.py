#!/usr/bin/env python3
"""Writes crates/prefiq-embed/tests/fixtures/tiktoken.json: the token ids Python's
tiktoken gives ~30 texts in cl100k_base and o200k_base (encode_ordinary: special-token
text counts as text), which tiktoken-rs must reproduce (tests/tokens.rs).

Offline: tiktoken downloads its BPE files on first use, so the files tiktoken-rs bundles
are put in a TIKTOKEN_CACHE_DIR first, each under the name tiktoken's load.py gives it
(sha1 of the download URL). tiktoken still checks their sha256 against the digests it
pins; this script checks the same before it starts and says so if they differ.

pip deps: tiktoken
usage: python3 scripts/tiktoken-fixture.py [TIKTOKEN_RS_ASSETS_DIR]
       (default: ~/.cargo/registry/src/*/tiktoken-rs-*/assets, the newest)
"""

import glob
import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

ENCODINGS = {
    # name: (URL tiktoken downloads from, sha256 tiktoken pins)
    "cl100k_base": (
        "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    ),
    "o200k_base": (
        "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    ),
}

TEXTS = [
    "",
    "hello world",
    "Hello, World!",
    "The quick brown fox jumps over the lazy dog.",
    "Die Rechnung über 1.234,56 € wurde am Freitag bezahlt.",
    "Größe, Maße, Straße: ÄÖÜ äöü ß",
    "東京都の発注書は承認待ちです。",
    "你好，世界！机器学习很有趣。",
    "한국어 텍스트도 있습니다",
    "Emoji: 🙂🚀👩‍💻 and flags 🇩🇪🇯🇵",
    "fn main() {\n    println!(\"{}\", 1 + 2);\n}\n",
    "def f(x):\n\treturn x ** 2  # square\n",
    "SELECT id, name FROM customers WHERE balance > 1000 ORDER BY name;",
    '{"invoice": 42, "lines": [{"sku": "A-1", "qty": 3}]}',
    "    leading spaces",
    "trailing spaces    ",
    "many      spaces   between\t\ttabs",
    "\n\n\nnewlines\r\n\r\nand CRLF\n",
    "1234567890123456789012345678901234567890",
    "3.14159265358979323846264338327950288419716939937510",
    "IBAN DE89 3704 0044 0532 0130 00, BIC COBADEFFXXX",
    "it's they're we've I'm you'll he'd DON'T",
    "<|endoftext|> is a special token but counted as text",
    "https://example.invalid/path?query=1&other=two#frag",
    "user@example.invalid wrote: >>> quoted",
    "ALLCAPS lowercase MixedCase camelCaseWord snake_case_word",
    "naïve café résumé coöperate",
    "Привет, как дела? Всё хорошо.",
    "مرحبا بالعالم",
    "a" * 300,
    " " * 100 + "x",
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor. " * 5,
]


def assets_dir() -> Path:
    if len(sys.argv) > 1:
        return Path(sys.argv[1])
    found = sorted(glob.glob(os.path.expanduser("~/.cargo/registry/src/*/tiktoken-rs-*/assets")))
    if not found:
        raise SystemExit("tiktoken-rs is not in ~/.cargo/registry: build prefiq-embed first")
    return Path(found[-1])


def main() -> None:
    assets = assets_dir()
    cache = Path(tempfile.mkdtemp(prefix="tiktoken-cache-"))
    try:
        for name, (url, pinned) in ENCODINGS.items():
            data = (assets / f"{name}.tiktoken").read_bytes()
            actual = hashlib.sha256(data).hexdigest()
            if actual != pinned:
                raise SystemExit(
                    f"{name}: tiktoken-rs bundles a file with sha256 {actual}, tiktoken pins "
                    f"{pinned}: tiktoken would refuse it (and try to download)"
                )
            print(f"{name}: the bundled file's sha256 matches tiktoken's pin", file=sys.stderr)
            (cache / hashlib.sha1(url.encode()).hexdigest()).write_bytes(data)
        os.environ["TIKTOKEN_CACHE_DIR"] = str(cache)
        import tiktoken  # noqa: PLC0415 (after the cache is set)

        cases = []
        for text in TEXTS:
            case = {"text": text}
            for name in ENCODINGS:
                case[name] = tiktoken.get_encoding(name).encode_ordinary(text)
            cases.append(case)
        out = Path(__file__).resolve().parent.parent / "crates/prefiq-embed/tests/fixtures/tiktoken.json"
        doc = {
            "source": f"tiktoken {tiktoken.__version__} (Python), encode_ordinary, BPE files from {assets.parent.name}",
            "cases": cases,
        }
        out.write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {out}: {len(cases)} texts", file=sys.stderr)
    finally:
        shutil.rmtree(cache)


if __name__ == "__main__":
    main()
