//! The retrieval evaluation's measures: the dataset's shape (`eval/dataset.json`, written
//! by `eval/generate.py`) and recall@k and MRR over ranked answers. The benchmark
//! (`benches/recall.rs`) and the regression test (`tests/recall.rs`) both score with it.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// The dataset.
#[derive(Debug, Clone, Deserialize)]
pub struct Dataset {
    /// The items to remember, in order.
    pub items: Vec<EvalItem>,
    /// The questions.
    pub questions: Vec<Question>,
}

/// One item of the dataset.
#[derive(Debug, Clone, Deserialize)]
pub struct EvalItem {
    /// The dataset's id (gold answers name it).
    pub id: String,
    /// Its kind.
    pub kind: String,
    /// Its text.
    pub text: String,
    /// Its subject.
    pub subject: Option<String>,
    /// Its tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Its priority.
    pub priority: Option<f64>,
    /// When it happened.
    pub occurred_at: String,
}

impl EvalItem {
    /// The item as `POST /api/v1/memory/items` takes it.
    pub fn body(&self) -> Value {
        serde_json::json!({
            "kind": self.kind, "text": self.text, "subject": self.subject, "tags": self.tags,
            "priority": self.priority, "occurred_at": self.occurred_at,
        })
    }
}

/// One question with its gold evidence.
#[derive(Debug, Clone, Deserialize)]
pub struct Question {
    /// Its id.
    pub id: String,
    /// `paraphrase`, `keyword` or `temporal`.
    pub kind: String,
    /// What is asked.
    pub query: String,
    /// The dataset ids of the items that answer it.
    pub gold: Vec<String>,
    /// Only what happened until then counts.
    pub as_of: Option<String>,
    /// List-API filters the asker passes.
    pub filters: Option<Value>,
}

impl Question {
    /// The search body for `mode`, returning 10 results.
    pub fn body(&self, mode: &str) -> Value {
        let mut body = serde_json::json!({"query": self.query, "mode": mode, "limit": 10});
        if let Some(as_of) = &self.as_of {
            body["as_of"] = Value::String(as_of.clone());
        }
        if let Some(filters) = &self.filters {
            body["filters"] = filters.clone();
        }
        body
    }
}

/// Sums of the measures over questions.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Score {
    /// Questions scored.
    pub questions: usize,
    recall5: f64,
    recall10: f64,
    reciprocal_ranks: f64,
}

/// The means of a [`Score`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Means {
    /// Mean fraction of each question's gold items in its first 5 results.
    pub recall_at_5: f64,
    /// The same in the first 10.
    pub recall_at_10: f64,
    /// Mean of 1 / the rank of the first gold item (0 when none is found).
    pub mrr: f64,
}

impl Score {
    /// Scores one question: `gold` ids against `ranked` ids, best first.
    pub fn add(&mut self, gold: &[String], ranked: &[String]) {
        let found = |k: usize| {
            gold.iter()
                .filter(|g| ranked.iter().take(k).any(|r| r == *g))
                .count() as f64
                / gold.len().max(1) as f64
        };
        self.questions += 1;
        self.recall5 += found(5);
        self.recall10 += found(10);
        self.reciprocal_ranks += ranked
            .iter()
            .position(|r| gold.contains(r))
            .map_or(0.0, |p| 1.0 / (p as f64 + 1.0));
    }

    /// The means.
    pub fn means(&self) -> Means {
        let n = self.questions.max(1) as f64;
        Means {
            recall_at_5: self.recall5 / n,
            recall_at_10: self.recall10 / n,
            mrr: self.reciprocal_ranks / n,
        }
    }
}

/// Scores by `(mode, kind of question)`, with `all` for every kind.
#[derive(Debug, Default, Clone)]
pub struct Report(pub BTreeMap<(String, String), Score>);

impl Report {
    /// Scores one answer of `mode` to a question of `kind`.
    pub fn add(&mut self, mode: &str, kind: &str, gold: &[String], ranked: &[String]) {
        for k in [kind, "all"] {
            self.0
                .entry((mode.to_owned(), k.to_owned()))
                .or_default()
                .add(gold, ranked);
        }
    }

    /// The means of `mode` over every question.
    pub fn overall(&self, mode: &str) -> Means {
        self.0
            .get(&(mode.to_owned(), "all".to_owned()))
            .copied()
            .unwrap_or_default()
            .means()
    }

    /// The table, one line per mode and kind.
    pub fn table(&self) -> String {
        let mut out = format!(
            "{:<8} {:<11} {:>5} {:>9} {:>10} {:>6}\n",
            "mode", "questions", "n", "recall@5", "recall@10", "MRR"
        );
        for ((mode, kind), score) in &self.0 {
            let m = score.means();
            out.push_str(&format!(
                "{mode:<8} {kind:<11} {:>5} {:>9.3} {:>10.3} {:>6.3}\n",
                score.questions, m.recall_at_5, m.recall_at_10, m.mrr
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    /// Scores one question and compares (recall@5, recall@10, MRR).
    fn check(gold: &[&str], ranked: &[&str], expected: (f64, f64, f64)) {
        let mut score = Score::default();
        score.add(&ids(gold), &ids(ranked));
        let m = score.means();
        assert_eq!(
            (m.recall_at_5, m.recall_at_10, m.mrr),
            expected,
            "{gold:?} in {ranked:?}"
        );
    }

    #[test]
    fn measures_follow_their_definitions() {
        check(&["a"], &["a"], (1.0, 1.0, 1.0));
        check(&["a"], &[], (0.0, 0.0, 0.0));
        check(&["a"], &["x", "a"], (1.0, 1.0, 0.5));
        check(
            &["a"],
            &["1", "2", "3", "4", "5", "a"],
            (0.0, 1.0, 1.0 / 6.0),
        );
        check(
            &["a", "b"],
            &["b", "x", "x", "x", "x", "x", "a"],
            (0.5, 1.0, 1.0),
        );
        check(
            &["a", "b"],
            &["1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "a"],
            (0.0, 0.0, 1.0 / 11.0),
        );
    }

    #[test]
    fn a_report_averages_per_kind_and_overall() {
        let mut report = Report::default();
        report.add("hybrid", "keyword", &ids(&["a"]), &ids(&["a"]));
        report.add("hybrid", "paraphrase", &ids(&["a"]), &ids(&["b"]));
        assert_eq!(report.overall("hybrid").recall_at_10, 0.5);
        assert_eq!(
            report.0[&("hybrid".to_owned(), "keyword".to_owned())].questions,
            1
        );
        assert!(report.table().contains("hybrid   all"));
    }
}
