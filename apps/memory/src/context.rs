//! Context packing: the best items for a query, as text for a model's prompt, within a
//! token budget counted by the model's own tokenizer.

use serde::Serialize;

use prefiq_embed::TokenCounter;

use crate::search::SearchHit;

/// The largest budget, in tokens.
pub const MAX_BUDGET_TOKENS: usize = 1_000_000;

/// One packed item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PackedItem {
    /// The item's id.
    pub id: String,
    /// The tokens its line takes.
    pub tokens: usize,
}

/// A packed context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Packed {
    /// The text: one line per item, best first.
    pub text: String,
    /// Its tokens, counted on the whole text: never more than the budget.
    pub tokens: usize,
    /// The items it holds.
    pub items: Vec<PackedItem>,
    /// How many results did not fit.
    pub dropped: usize,
}

/// The line an item takes: `[date] subject: text`.
pub fn line(hit: &SearchHit) -> String {
    let date = hit.occurred_at.get(..10).unwrap_or(&hit.occurred_at);
    let text = hit.text.replace(['\n', '\r'], " ");
    match &hit.subject {
        Some(subject) => format!("[{date}] {subject}: {text}"),
        None => format!("[{date}] {text}"),
    }
}

/// Packs `hits` (best first) into `budget` tokens: each item whose line still fits is
/// taken, in order, so a long item that does not fit leaves room for shorter ones after
/// it. The whole text is counted again at the end (a tokenizer may merge across the line
/// breaks), and items come off the end until it fits.
pub fn pack(hits: &[SearchHit], budget: usize, counter: &dyn TokenCounter) -> Packed {
    let separator = counter.count("\n").max(1);
    let mut lines: Vec<(String, PackedItem)> = Vec::new();
    let mut used = 0usize;
    let mut dropped = 0usize;
    for hit in hits {
        let text = line(hit);
        let tokens = counter.count(&text);
        let cost = tokens + if lines.is_empty() { 0 } else { separator };
        if used + cost <= budget {
            used += cost;
            lines.push((
                text,
                PackedItem {
                    id: hit.id.clone(),
                    tokens,
                },
            ));
        } else {
            dropped += 1;
        }
    }
    loop {
        let text = lines
            .iter()
            .map(|(l, _)| l.as_str())
            .collect::<Vec<_>>()
            .join("\n");
        let tokens = if text.is_empty() {
            0
        } else {
            counter.count(&text)
        };
        if tokens <= budget {
            return Packed {
                text,
                tokens,
                items: lines.into_iter().map(|(_, item)| item).collect(),
                dropped,
            };
        }
        lines.pop();
        dropped += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts words, and a line break as one token.
    struct Words;

    impl TokenCounter for Words {
        fn name(&self) -> &str {
            "words"
        }

        fn count(&self, text: &str) -> usize {
            text.split_whitespace().count() + text.matches('\n').count()
        }
    }

    fn hit(id: &str, text: &str) -> SearchHit {
        SearchHit {
            id: id.into(),
            text: text.into(),
            score: 1.0,
            tier: "warm".into(),
            kind: "note".into(),
            subject: None,
            occurred_at: "2026-03-01T12:00:00Z".into(),
            source: None,
        }
    }

    /// Packs hits of these texts into `budget` and compares the ids taken, the tokens
    /// and the dropped count.
    fn check(texts: &[&str], budget: usize, ids: &[&str], tokens: usize, dropped: usize) {
        let hits: Vec<SearchHit> = texts
            .iter()
            .enumerate()
            .map(|(i, t)| hit(&format!("i{i}"), t))
            .collect();
        let packed = pack(&hits, budget, &Words);
        let got: Vec<&str> = packed.items.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(got, ids, "{texts:?} in {budget}");
        assert_eq!(packed.tokens, tokens);
        assert_eq!(packed.dropped, dropped);
        assert!(packed.tokens <= budget);
        assert_eq!(packed.tokens, Words.count(&packed.text));
    }

    #[test]
    fn packs_best_first_within_the_budget() {
        check(&[], 10, &[], 0, 0);
        // "[2026-03-01] a b" is 3 words.
        check(&["a b"], 3, &["i0"], 3, 0);
        check(&["a b"], 2, &[], 0, 1);
        check(&["a b", "c d"], 7, &["i0", "i1"], 7, 0);
        check(&["a b", "c d"], 6, &["i0"], 3, 1);
        // A long item that does not fit leaves room for a shorter one after it.
        check(&["a b c d e f g", "x"], 6, &["i1"], 2, 1);
        check(&["a", "b c d e f g h", "c"], 5, &["i0", "i2"], 5, 1);
        check(&["a b"], 0, &[], 0, 1);
    }
}
