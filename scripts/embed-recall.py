#!/usr/bin/env python3
"""Recall of prefiq-embed's models, measured in numpy (the Rust test
crates/prefiq-embed/tests/recall.rs measures the same set in Rust).

pip deps: numpy safetensors tokenizers
usage: python3 scripts/embed-recall.py --wheel GT_WHEEL [--wordllama WORDLLAMA_WHEEL]
                                       [--static DIR ...] [--corpus FILE.md ...]

Two measures:
- labelled: crates/prefiq-embed/tests/fixtures/recall.json, 89 questions each with one
  relevant note among 109; recall@1, @5, @10 and MRR.
- teacher agreement (with --corpus): the sentences of the given Markdown files; for each,
  how many of all-MiniLM-L6-v2's 10 nearest other sentences the model also ranks in its
  top 10 (mean overlap, 1.0 = the teacher's neighbours exactly).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import zipfile
from pathlib import Path

import numpy as np
from safetensors.numpy import load as load_safetensors
from safetensors.numpy import load_file
from tokenizers import Tokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from minilm_numpy import MiniLm  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "crates/prefiq-embed/tests/fixtures/recall.json"


class Static:
    """A token-embedding table: mean of the rows of a text's tokens, L2-normalised."""

    def __init__(self, name: str, table: np.ndarray, tokenizer: Tokenizer, skip: set[int]):
        self.name = name
        self.table = table.astype(np.float32)
        self.tokenizer = tokenizer
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        self.skip = skip

    @classmethod
    def from_dir(cls, path: Path) -> "Static":
        tensors = load_file(str(path / "embeddings.safetensors"))
        table = tensors["embeddings"].astype(np.float32)
        if "scales" in tensors:
            table = table * tensors["scales"][:, None]
        tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        skip = {t.content and tokenizer.token_to_id(t.content) for t in tokenizer.get_added_tokens_decoder().values()}
        return cls(f"static {path.name} ({table.shape[1]}d)", table, tokenizer, skip)

    def embed_batched(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.table.shape[1]), dtype=np.float32)
        for i, enc in enumerate(self.tokenizer.encode_batch(texts, add_special_tokens=False)):
            ids = [t for t in enc.ids if t not in self.skip]
            if ids:
                v = self.table[ids].mean(axis=0)
                out[i] = v / max(np.linalg.norm(v), 1e-12)
        return out


def wordllama(wheel: str) -> Static:
    with zipfile.ZipFile(wheel) as z:
        table = load_safetensors(z.read("wordllama/weights/l2_supercat_256.safetensors"))["embedding.weight"]
        tokenizer = Tokenizer.from_str(z.read("wordllama/tokenizers/l2_supercat_tokenizer_config.json").decode())
    return Static("wordllama l2_supercat (256d)", table, tokenizer, set())


class Teacher:
    def __init__(self, wheel: str):
        self.name = "all-MiniLM-L6-v2 (384d)"
        self.model = MiniLm(wheel, dtype=np.float32, exact_erf=False)

    def embed_batched(self, texts: list[str]) -> np.ndarray:
        return self.model.embed_batched(texts)


def labelled(model) -> dict:
    data = json.loads(FIXTURE.read_text(encoding="utf-8"))
    docs = model.embed_batched(data["documents"])
    queries = model.embed_batched([q["query"] for q in data["queries"]])
    ranks = []
    for q, vec in zip(data["queries"], queries):
        scores = docs @ vec
        ranks.append(int((scores > scores[q["relevant"]]).sum()) + 1)
    ranks = np.array(ranks)
    return {
        "r@1": float((ranks <= 1).mean()),
        "r@5": float((ranks <= 5).mean()),
        "r@10": float((ranks <= 10).mean()),
        "mrr": float((1.0 / ranks).mean()),
    }


def sentences(paths: list[str]) -> list[str]:
    out = []
    for path in paths:
        text = Path(path).read_text(encoding="utf-8")
        text = re.sub(r"```.*?```", " ", text, flags=re.S)
        for part in re.split(r"(?<=[.!?])\s+|\n\s*\n", text):
            part = " ".join(part.split())
            if 8 <= len(part.split()) <= 60:
                out.append(part)
    return sorted(set(out))


def neighbours(vectors: np.ndarray, k: int = 10) -> np.ndarray:
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -np.inf)
    return np.argsort(-sims, axis=1, kind="stable")[:, :k]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--wheel", required=True)
    parser.add_argument("--wordllama")
    parser.add_argument("--static", nargs="*", default=[str(ROOT / "crates/prefiq-embed/models/static-minilm")])
    parser.add_argument("--corpus", nargs="*", default=[])
    args = parser.parse_args()

    teacher = Teacher(args.wheel)
    models = [teacher] + [Static.from_dir(Path(p)) for p in args.static]
    if args.wordllama:
        models.append(wordllama(args.wordllama))
    corpus = sentences(args.corpus)
    truth = neighbours(teacher.embed_batched(corpus)) if corpus else None
    for model in models:
        row = labelled(model)
        if truth is not None:
            got = neighbours(model.embed_batched(corpus))
            row["teacher@10"] = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(truth, got)]))
        print(json.dumps({"model": model.name, **{k: round(v, 3) for k, v in row.items()}}))
    if corpus:
        print(json.dumps({"corpus_sentences": len(corpus)}))


if __name__ == "__main__":
    main()
