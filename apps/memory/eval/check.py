#!/usr/bin/env python3
"""Sanity checks and a keyword (BM25) baseline for apps/memory/eval/dataset.json.

Stdlib only.  Checks the schema, that every gold id exists, that temporal questions with
`as_of` have their gold at or before `as_of` and a later contradicting item (same subject,
same `slot:*` tag) after it, that "now" temporal questions have an older, non-gold state;
prints counts; then runs a small BM25 over the items and prints recall@5, recall@10 and
MRR per question kind.

The BM25 mirrors the service's keyword search (SQLite FTS5, `unicode61 remove_diacritics
2`): an item's document is its text, subject and tags; text is lowercased, diacritics
stripped and split on anything that is not a letter or digit; each whitespace-separated
query word is one phrase (so `PO-2026-00417` must match as the three adjacent tokens
`po 2026 00417`), and the phrases are OR-ed.  `as_of` and `filters` are applied before
ranking, as the service does.

    python3 apps/memory/eval/check.py [path/to/dataset.json] [--quiet]

Exit status 1 when a check fails.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import sys
import unicodedata
from collections import Counter, defaultdict
from pathlib import Path

KINDS = ("episode", "fact", "note", "record")
QKINDS = ("paraphrase", "keyword", "temporal")
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


def ts(s: str) -> dt.datetime:
    return dt.datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ")


def fold(s: str) -> str:
    s = unicodedata.normalize("NFKD", s.lower())
    return "".join(c for c in s if not unicodedata.combining(c)).replace("ı", "i").replace("ø", "o").replace("ð", "d")


def tokens(s: str) -> list[str]:
    return re.findall(r"[^\W_]+", fold(s))


# ---------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------


def validate(data: dict) -> list[str]:
    errs: list[str] = []

    def err(msg):
        errs.append(msg)

    for k in ("version", "seed", "generated_by", "description", "items", "questions"):
        if k not in data:
            err(f"top level: missing {k}")
    if data.get("version") != 1:
        err("top level: version must be 1")
    items = data.get("items", [])
    by_id = {}
    for it in items:
        iid = it.get("id")
        if iid in by_id:
            err(f"item {iid}: duplicate id")
        by_id[iid] = it
        keys = {"id", "kind", "text", "subject", "tags", "priority", "occurred_at", "session"}
        if set(it) != keys:
            err(f"item {iid}: keys {sorted(set(it) ^ keys)} differ from the schema")
            continue
        if it["kind"] not in KINDS:
            err(f"item {iid}: kind {it['kind']!r}")
        if not isinstance(it["text"], str) or not it["text"].strip():
            err(f"item {iid}: empty text")
        elif len(re.findall(r"[.!?](?=\s+[A-Z]|\s*$)", it["text"])) > 3:
            err(f"item {iid}: more than 3 sentences")
        if it["subject"] is not None and (not isinstance(it["subject"], str) or it["subject"] != it["subject"].lower()):
            err(f"item {iid}: subject must be a lowercase key or null")
        if not isinstance(it["tags"], list) or not all(isinstance(t, str) and t for t in it["tags"]):
            err(f"item {iid}: tags must be a list of strings")
        if not isinstance(it["priority"], (int, float)) or not 0 <= it["priority"] <= 1:
            err(f"item {iid}: priority out of 0..1")
        if not isinstance(it["occurred_at"], str) or not RFC3339.match(it["occurred_at"]):
            err(f"item {iid}: occurred_at is not RFC 3339 UTC")
        if not isinstance(it["session"], str) or not it["session"]:
            err(f"item {iid}: session missing")

    slot_items = defaultdict(list)  # (subject, slot tag) -> items
    for it in items:
        for t in it.get("tags", []):
            if t.startswith("slot:"):
                slot_items[(it["subject"], t)].append(it)

    qids = set()
    for q in data.get("questions", []):
        qid = q.get("id")
        if qid in qids:
            err(f"question {qid}: duplicate id")
        qids.add(qid)
        keys = {"id", "kind", "query", "gold", "as_of", "filters"}
        if set(q) != keys:
            err(f"question {qid}: keys {sorted(set(q) ^ keys)} differ from the schema")
            continue
        if q["kind"] not in QKINDS:
            err(f"question {qid}: kind {q['kind']!r}")
        if not q["query"].strip():
            err(f"question {qid}: empty query")
        if not q["gold"]:
            err(f"question {qid}: no gold")
        missing = [g for g in q["gold"] if g not in by_id]
        if missing:
            err(f"question {qid}: gold ids not found: {missing}")
            continue
        if q["as_of"] is not None and not RFC3339.match(q["as_of"]):
            err(f"question {qid}: as_of is not RFC 3339 UTC")
        if q["filters"] is not None:
            if not isinstance(q["filters"], list) or not all(
                    isinstance(f, list) and len(f) == 3 and f[0] in ("kind", "subject", "tags", "occurred_at")
                    for f in q["filters"]):
                err(f"question {qid}: filters must be null or a list of [field, op, value] triples")
        gold = [by_id[g] for g in q["gold"]]
        # gold must pass the question's own filters and as_of
        for g in gold:
            if not passes(g, q):
                err(f"question {qid}: gold {g['id']} is excluded by its own as_of/filters")
        if q["kind"] == "temporal":
            slots = sorted({t for g in gold for t in g["tags"] if t.startswith("slot:")})
            subjects = sorted({g["subject"] for g in gold}, key=str)
            if len(slots) != 1 or len(subjects) != 1:
                err(f"question {qid}: temporal gold should share one subject and one slot tag")
                continue
            same = slot_items[(subjects[0], slots[0])]
            gold_ids = set(q["gold"])
            if q["as_of"] is not None:
                cut = ts(q["as_of"])
                if any(ts(g["occurred_at"]) > cut for g in gold):
                    err(f"question {qid}: gold after as_of")
                if not any(ts(it["occurred_at"]) > cut for it in same):
                    err(f"question {qid}: no later contradicting item after as_of")
                if any(ts(it["occurred_at"]) <= cut and it["id"] not in gold_ids for it in same):
                    err(f"question {qid}: an earlier state item is not gold")
            else:
                newest_gold = min(ts(g["occurred_at"]) for g in gold)
                older = [it for it in same if it["id"] not in gold_ids]
                if not older:
                    err(f"question {qid}: 'now' question without an older state")
                if any(ts(it["occurred_at"]) >= newest_gold for it in older):
                    err(f"question {qid}: a non-gold state item is newer than the gold")
    return errs


def passes(it: dict, q: dict) -> bool:
    if q["as_of"] is not None and it["occurred_at"] > q["as_of"]:  # same format: string order is time order
        return False
    for field, op, value in q["filters"] or []:
        v = it.get(field)
        if field == "tags":
            ok = value in v
            ok = ok if op in ("=", "contains", "in") else not ok
        elif op == "=":
            ok = v == value
        elif op == "!=":
            ok = v != value
        elif op == "in":
            ok = v in value
        else:
            ok = True
        if not ok:
            return False
    return True


# ---------------------------------------------------------------------------------------
# BM25 baseline
# ---------------------------------------------------------------------------------------


class BM25:
    def __init__(self, items: list[dict], k1: float = 1.2, b: float = 0.75):
        self.items = items
        self.k1, self.b = k1, b
        self.docs = [tokens(" ".join([it["text"], it["subject"] or "", " ".join(it["tags"])])) for it in items]
        self.avgdl = sum(map(len, self.docs)) / len(self.docs)
        self.postings: dict[str, set[int]] = defaultdict(set)
        for i, d in enumerate(self.docs):
            for t in d:
                self.postings[t].add(i)

    @staticmethod
    def phrases(query: str) -> list[tuple[str, ...]]:
        out = []
        for w in query.split():
            t = tuple(tokens(w))  # punctuation around a word is dropped, inside it splits the phrase
            if t:
                out.append(t)
        return out

    def count(self, doc: list[str], ph: tuple[str, ...]) -> int:
        n = len(ph)
        if n == 1:
            return doc.count(ph[0])
        return sum(1 for i in range(len(doc) - n + 1) if tuple(doc[i:i + n]) == ph)

    def search(self, query: str, allowed: list[int]) -> list[int]:
        allowed_set = set(allowed)
        total = len(self.docs)
        scores: dict[int, float] = defaultdict(float)
        for ph in self.phrases(query):
            cands = set.intersection(*(self.postings.get(t, set()) for t in ph))
            hits = {i: c for i in cands if (c := self.count(self.docs[i], ph)) > 0}
            if not hits:
                continue
            idf = math.log((total - len(hits) + 0.5) / (len(hits) + 0.5))
            if idf <= 0:
                idf = 1e-6
            for i, tf in hits.items():
                if i not in allowed_set:
                    continue
                dl = len(self.docs[i])
                scores[i] += idf * tf * (self.k1 + 1) / (tf + self.k1 * (1 - self.b + self.b * dl / self.avgdl))
        return [i for i, _ in sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))]


def evaluate(data: dict, ranker) -> dict:
    items = data["items"]
    ids = [it["id"] for it in items]
    res = defaultdict(lambda: {"n": 0, "r5": 0.0, "r10": 0.0, "mrr": 0.0})
    per_q = {}
    for q in data["questions"]:
        allowed = [i for i, it in enumerate(items) if passes(it, q)]
        ranked = [ids[i] for i in ranker(q, allowed)]
        gold = set(q["gold"])
        r5 = len(gold & set(ranked[:5])) / len(gold)
        r10 = len(gold & set(ranked[:10])) / len(gold)
        rr = next((1 / (k + 1) for k, x in enumerate(ranked) if x in gold), 0.0)
        per_q[q["id"]] = (r5, r10, rr)
        for key in (q["kind"], "all"):
            a = res[key]
            a["n"] += 1
            a["r5"] += r5
            a["r10"] += r10
            a["mrr"] += rr
    for a in res.values():
        for k in ("r5", "r10", "mrr"):
            a[k] /= a["n"]
    return {"summary": dict(res), "per_question": per_q}


def table(title: str, summary: dict) -> str:
    lines = [title, f"| kind       |   n | recall@5 | recall@10 |   MRR |", "|------------|----:|---------:|----------:|------:|"]
    for k in (*QKINDS, "all"):
        if k in summary:
            a = summary[k]
            lines.append(f"| {k:<10} | {a['n']:>3} | {a['r5']:>8.3f} | {a['r10']:>9.3f} | {a['mrr']:.3f} |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------


STOP = set("""a about after all also am an and any anything are as at be because been before being both but by can
could did do does doing for from had has have he her him his how i if in into is it its just me might more most must
my no not now of on or our she should so some than that the their them then there these they this those to too up us
was we were what when where which while who whom why will with would you your s one way get go thing things day know
kind tell""".split())


def leak(q: dict, by_id: dict) -> int:
    """Content words a query shares with its gold texts (person names and stop words aside)."""
    subj = {by_id[g]["subject"] for g in q["gold"]}
    gold_words = set()
    for g in q["gold"]:
        gold_words |= set(tokens(by_id[g]["text"] + " " + " ".join(by_id[g]["tags"])))
    # the person's name: capitalised words of the query after its first word, and the subject key
    names = {t for w in q["query"].split()[1:] if w[:1].isupper() for t in tokens(w)}
    names |= {s for s in subj if s}
    qw = {t for t in tokens(q["query"]) if t not in STOP and t not in names and not t.isdigit()}
    return len(qw & gold_words)


def main(argv: list[str]) -> int:
    quiet = "--quiet" in argv
    args = [a for a in argv if not a.startswith("--")]
    path = Path(args[0]) if args else Path(__file__).resolve().parent / "dataset.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    errs = validate(data)
    items, questions = data["items"], data["questions"]
    by_id = {it["id"]: it for it in items}

    print(f"dataset: {path}")
    print(f"items: {len(items)}  " + "  ".join(f"{k}={v}" for k, v in sorted(Counter(it['kind'] for it in items).items())))
    print(f"sessions: {len({it['session'] for it in items})}  subjects: {len({it['subject'] for it in items if it['subject']})}"
          f"  items without subject: {sum(1 for it in items if it['subject'] is None)}")
    print(f"time span: {min(it['occurred_at'] for it in items)} .. {max(it['occurred_at'] for it in items)}")
    print(f"questions: {len(questions)}")
    for k in QKINDS:
        qs = [q for q in questions if q["kind"] == k]
        golds = Counter(len(q["gold"]) for q in qs)
        print(f"  {k:<10} {len(qs):>3}  gold sizes {dict(sorted(golds.items()))}"
              f"  with as_of {sum(1 for q in qs if q['as_of'])}  with filters {sum(1 for q in qs if q['filters'])}")
    para = [q for q in questions if q["kind"] == "paraphrase"]
    if para:
        leaks = [leak(q, by_id) for q in para]
        print(f"paraphrase word overlap with gold (content words, names aside): "
              f"mean {sum(leaks) / len(leaks):.2f}, questions with any overlap {sum(1 for x in leaks if x)}")
    if errs:
        print(f"\n{len(errs)} check(s) failed:")
        for e in errs[:50]:
            print("  " + e)
    else:
        print("all checks passed")

    bm = BM25(items)
    result = evaluate(data, lambda q, allowed: bm.search(q["query"], allowed))
    print()
    print(table("BM25 baseline (keyword only; text + subject + tags; as_of and filters applied)", result["summary"]))
    if not quiet:
        worst = [(qid, v) for qid, v in result["per_question"].items() if qid.startswith("q-kw") and v[1] < 1]
        if worst:
            print(f"\nkeyword questions BM25 misses at 10: {len(worst)}")
            qmap = {q["id"]: q for q in questions}
            for qid, v in worst[:10]:
                print(f"  {qid} {qmap[qid]['query']!r} recall@10={v[1]:.2f}")
    return 1 if errs else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
