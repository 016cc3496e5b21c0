//! The model card: a markdown page stored with each version.

use std::fmt::Write;

use serde_json::Value;

use crate::h2o::Leaderboard;
use crate::pipeline::ProblemSpec;

pub struct CardInput<'a> {
    pub project: &'a str,
    pub spec: &'a ProblemSpec,
    pub execute: &'a Value,
    pub monitor: &'a Value,
    pub leaderboard: &'a Leaderboard,
    pub provenance: &'a Value,
}

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
    s
}
