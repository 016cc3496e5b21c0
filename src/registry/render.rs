//! Human tables for `versions`, `tags` and `history` (the `--json` forms serialize the structs).

use std::collections::BTreeMap;

use serde_json::Value;

use super::{TagEvent, Version};

/// How many hex digits of a digest a table shows.
const SHORT: usize = 12;

fn short(digest: &str) -> &str {
    digest.get(..SHORT).unwrap_or(digest)
}

/// Left-aligned columns separated by two spaces; the last column is not padded.
pub(super) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if i + 1 < row.len() {
                let pad = widths[i] - cell.chars().count() + 2;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `auc=0.8123 logloss=0.4410`: the numeric top-level metrics, sorted by name.
fn metrics_summary(metrics: &Value) -> String {
    let Value::Object(map) = metrics else {
        return String::new();
    };
    let mut parts: Vec<String> = map
        .iter()
        .filter_map(|(name, value)| value.as_f64().map(|v| format!("{name}={v:.4}")))
        .collect();
    parts.sort();
    parts.join(" ")
}

/// Time without fractional seconds: `2025-03-14 09:30:12Z`.
fn short_time(rfc3339: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(rfc3339) {
        Ok(t) => t
            .with_timezone(&chrono::Utc)
            .format("%Y-%m-%d %H:%M:%SZ")
            .to_string(),
        Err(_) => rfc3339.to_string(),
    }
}

/// `mlbuild versions`: one line per version, oldest first.
pub fn render_versions(versions: &[Version]) -> String {
    if versions.is_empty() {
        return "no versions registered yet\n".to_string();
    }
    let rows: Vec<Vec<String>> = versions
        .iter()
        .map(|v| {
            vec![
                v.id.clone(),
                short_time(&v.created_at),
                v.algo.clone(),
                short(&v.canonical).to_string(),
                short(&v.model).to_string(),
                v.run.map_or_else(|| "-".to_string(), |r| r.to_string()),
                metrics_summary(&v.metrics),
            ]
        })
        .collect();
    table(
        &[
            "VERSION",
            "CREATED",
            "ALGO",
            "CANONICAL",
            "MODEL",
            "RUN",
            "METRICS",
        ],
        &rows,
    )
}

/// `mlbuild tags`: one line per tag, by name.
pub fn render_tags(tags: &BTreeMap<String, String>) -> String {
    if tags.is_empty() {
        return "no tags yet\n".to_string();
    }
    let rows: Vec<Vec<String>> = tags
        .iter()
        .map(|(tag, version)| vec![tag.clone(), version.clone()])
        .collect();
    table(&["TAG", "VERSION"], &rows)
}

/// `mlbuild runs`: one line per run, newest first.
pub fn render_runs(runs: &[super::RunSummary]) -> String {
    if runs.is_empty() {
        return "no runs yet\n".to_string();
    }
    let count = |r: &super::RunSummary, s: &str| r.steps.get(s).copied().unwrap_or(0).to_string();
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            vec![
                r.run.id.to_string(),
                r.run.started_at.clone(),
                r.run.finished_at.clone().unwrap_or_else(|| "-".into()),
                r.run.command.clone(),
                r.run.status.to_string(),
                count(r, "ran"),
                count(r, "cached"),
                count(r, "restored"),
                count(r, "failed"),
            ]
        })
        .collect();
    table(
        &[
            "run", "started", "finished", "command", "status", "ran", "cached", "restored",
            "failed",
        ],
        &rows,
    )
}

/// `mlbuild history TAG`: one line per move, oldest first.
pub fn render_history(events: &[TagEvent]) -> String {
    if events.is_empty() {
        return "no moves recorded\n".to_string();
    }
    let rows: Vec<Vec<String>> = events
        .iter()
        .map(|e| {
            vec![
                short_time(&e.at),
                e.from.clone().unwrap_or_else(|| "-".to_string()),
                e.to.clone(),
                e.by.clone(),
                e.reason.clone(),
            ]
        })
        .collect();
    table(&["AT", "FROM", "TO", "BY", "REASON"], &rows)
}
