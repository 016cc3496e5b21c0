//! The model card: a markdown page stored with each version.
//!
//! Sections: a summary table (target, problem, metric, leader, digests, provenance), the holdout
//! metrics, the leaderboard table, and the plots. Each plot (`crate::report::plots`) is its own
//! SVG blob in the store; the card cannot embed a store blob portably (GitHub and GitLab do not
//! render `data:` URIs), so it links each plot by a relative path, [`plot_file`]:
//! `plots/<name>-<first 12 hex of its digest>.svg`, with the full digest beside it. The links
//! work once the blobs are copied there next to the card (`docs/card.md` shows how); the card is
//! readable without them. A plot that could not be made is a line saying why.

use std::fmt::Write;

use serde_json::Value;

use crate::h2o::Leaderboard;
use crate::steps::ProblemSpec;

pub struct CardInput<'a> {
    pub project: &'a str,
    pub spec: &'a ProblemSpec,
    pub execute: &'a Value,
    pub monitor: &'a Value,
    pub leaderboard: &'a Leaderboard,
    pub provenance: &'a Value,
    /// In the order they appear.
    pub plots: &'a [Plot],
}

/// One plot of the card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plot {
    /// `leaderboard`, `shap`, `roc` or `residuals`: the file name stem and the key under the
    /// provenance's `plots`.
    pub name: String,
    /// The section heading.
    pub title: String,
    pub outcome: PlotOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlotOutcome {
    /// Stored as the blob `digest` (blake3 of the SVG).
    Stored { digest: String },
    /// Not made, and why (one sentence, shown in the card).
    Missing { reason: String },
}

/// The relative path a card links a plot at: `plots/<name>-<first 12 hex of digest>.svg`.
pub fn plot_file(name: &str, digest: &str) -> String {
    format!("plots/{name}-{}.svg", crate::store::short_digest(digest))
}

#[allow(
    clippy::too_many_lines,
    reason = "the card's sections in order, a few lines of markdown each"
)]
pub fn render(c: &CardInput<'_>) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Model card: {}\n", c.project);
    let _ = writeln!(s, "| | |\n|---|---|");
    let _ = writeln!(s, "| target | `{}` |", c.spec.target);
    let _ = writeln!(
        s,
        "| problem | {} |",
        crate::steps::define::problem_name(c.spec.problem)
    );
    let _ = writeln!(s, "| primary metric | {} |", c.spec.metric);
    let _ = writeln!(
        s,
        "| leader | `{}` ({}) |",
        c.execute["leader"].as_str().unwrap_or("?"),
        c.execute["algo"].as_str().unwrap_or("?")
    );
    let _ = writeln!(
        s,
        "| canonical MOJO digest | `{}` |",
        c.execute["canonical"].as_str().unwrap_or("?")
    );
    let _ = writeln!(
        s,
        "| data snapshot | `{}` |",
        c.provenance["data_snapshot"].as_str().unwrap_or("?")
    );
    let _ = writeln!(
        s,
        "| git commit | {} |",
        match (
            c.provenance["git_commit"].as_str(),
            c.provenance["git_dirty"].as_bool()
        ) {
            (Some(h), Some(true)) => format!("`{h}` (dirty)"),
            (Some(h), _) => format!("`{h}`"),
            _ => "not in a git repository".to_string(),
        }
    );
    let _ = writeln!(
        s,
        "| engine | H2O {} × {} node(s) |",
        c.provenance["engine"]["version"].as_str().unwrap_or("?"),
        c.provenance["engine"]["nodes"]
    );
    let _ = writeln!(
        s,
        "| mlbuild | {} |",
        c.provenance["mlbuild_version"].as_str().unwrap_or("?")
    );

    let _ = writeln!(
        s,
        "\n## Holdout metrics (computed by mlbuild from the stored predictions)\n"
    );
    let _ = writeln!(s, "| metric | value |\n|---|---|");
    if let Some(m) = c.monitor["metrics"].as_object() {
        for (k, v) in m {
            let _ = writeln!(
                s,
                "| {k} | {} |",
                v.as_f64()
                    .map(|x| format!("{x:.6}"))
                    .unwrap_or_else(|| v.to_string())
            );
        }
    }

    let _ = writeln!(s, "\n## Leaderboard (holdout as leaderboard frame)\n");
    let metrics: Vec<&String> = c
        .leaderboard
        .columns
        .iter()
        .filter(|c| *c != "model_id" && *c != "algo" && !c.is_empty())
        .collect();
    let _ = writeln!(
        s,
        "| # | model | algo | {} |",
        metrics
            .iter()
            .map(|m| m.as_str())
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let _ = writeln!(s, "|---|---|---|{}", "---|".repeat(metrics.len()));
    for (i, row) in c.leaderboard.rows.iter().enumerate() {
        let vals: Vec<String> = metrics
            .iter()
            .map(|m| {
                row.metrics
                    .get(*m)
                    .map(|v| format!("{v:.5}"))
                    .unwrap_or_default()
            })
            .collect();
        let _ = writeln!(
            s,
            "| {} | `{}` | {} | {} |",
            i + 1,
            row.model_id,
            row.algo,
            vals.join(" | ")
        );
    }

    if !c.plots.is_empty() {
        let _ = writeln!(s, "\n## Plots\n");
        let _ = writeln!(
            s,
            "Each plot is an SVG blob in mlbuild's store, named by its blake3 digest and listed \
             under `plots` in the version's provenance. The images below link to \
             `plots/<name>-<first 12 hex>.svg` next to this card (see mlbuild's `docs/card.md` \
             to export them there)."
        );
        for p in c.plots {
            let _ = writeln!(s, "\n### {}\n", p.title);
            match &p.outcome {
                PlotOutcome::Stored { digest } => {
                    let _ = writeln!(
                        s,
                        "![{}]({})\n\nblob `{digest}`",
                        p.title,
                        plot_file(&p.name, digest)
                    );
                }
                PlotOutcome::Missing { reason } => {
                    // One line: an H2O message may span several.
                    let reason = reason.split_whitespace().collect::<Vec<_>>().join(" ");
                    let _ = writeln!(s, "Not plotted: {reason}");
                }
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::config::Problem;
    use crate::h2o::LeaderboardRow;

    #[test]
    fn the_card_lists_stored_plots_by_file_and_digest_and_says_why_others_are_missing() {
        let spec = ProblemSpec {
            target: "CAPSULE".into(),
            problem: Problem::Binary,
            metric: "auc".into(),
            ignore: vec![],
            classes: vec!["0".into(), "1".into()],
        };
        let leaderboard = Leaderboard {
            sort_metric: "auc".into(),
            columns: vec!["model_id".into(), "auc".into(), "algo".into()],
            rows: vec![LeaderboardRow {
                model_id: "GBM_1".into(),
                algo: "GBM".into(),
                metrics: [("auc".to_string(), 0.9)].into(),
            }],
        };
        let lb = "a".repeat(64);
        let roc = "b".repeat(64);
        let plots = [
            Plot {
                name: "leaderboard".into(),
                title: "Leaderboard".into(),
                outcome: PlotOutcome::Stored { digest: lb.clone() },
            },
            Plot {
                name: "shap".into(),
                title: "SHAP importance".into(),
                outcome: PlotOutcome::Missing {
                    reason: "SHAP was skipped: monitor.shap_rows = 0".into(),
                },
            },
            Plot {
                name: "roc".into(),
                title: "ROC on the holdout".into(),
                outcome: PlotOutcome::Stored {
                    digest: roc.clone(),
                },
            },
        ];
        let card = render(&CardInput {
            project: "prostate",
            spec: &spec,
            execute: &json!({"leader": "GBM_1", "algo": "GBM"}),
            monitor: &json!({"metrics": {"auc": 0.9}}),
            leaderboard: &leaderboard,
            provenance: &json!({}),
            plots: &plots,
        });
        assert!(card.contains("\n## Plots\n"), "{card}");
        assert!(
            card.contains(&format!(
                "### Leaderboard\n\n![Leaderboard](plots/leaderboard-aaaaaaaaaaaa.svg)\n\nblob `{lb}`\n"
            )),
            "{card}"
        );
        assert!(
            card.contains(&format!(
                "![ROC on the holdout](plots/roc-bbbbbbbbbbbb.svg)\n\nblob `{roc}`"
            )),
            "{card}"
        );
        assert!(
            card.contains(
                "### SHAP importance\n\nNot plotted: SHAP was skipped: monitor.shap_rows = 0\n"
            ),
            "{card}"
        );
        assert!(!card.contains("plots/shap-"), "{card}");
        // The plots come after the leaderboard table, in the given order.
        let at = |s: &str| card.find(s).unwrap();
        assert!(at("## Leaderboard") < at("### Leaderboard"));
        assert!(at("### Leaderboard") < at("### SHAP") && at("### SHAP") < at("### ROC"));
        assert_eq!(plot_file("roc", &roc), "plots/roc-bbbbbbbbbbbb.svg");
    }
}
