//! `show VERSION` and `diff VERSION VERSION` (formats in `docs/registry.md`).

use std::collections::BTreeSet;
use std::fmt::Write;
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::{json, Value};

use super::{Registry, Version};
use crate::error::Exit;
use crate::report::Printer;

async fn version(reg: &Registry, id: &str) -> Result<Version> {
    reg.get(id)
        .await?
        .with_context(|| format!("no version `{id}` in the registry (see `mlbuild versions`)"))
}

/// The `show --json` document: the version, the tags pointing at it, the card's store path.
pub async fn show_doc(reg: &Registry, dir: &Path, id: &str) -> Result<Value> {
    let v = version(reg, id).await?;
    let tags: Vec<String> = reg
        .tags()
        .await?
        .into_iter()
        .filter(|(_, to)| *to == v.id)
        .map(|(t, _)| t)
        .collect();
    let paths = crate::project::Paths::resolve(dir);
    let card_path = crate::store::Store::open(&paths.cache)
        .ok()
        .map(|s| s.blob_path(&v.card))
        .filter(|p| p.exists())
        .map(|p| p.display().to_string());
    let mut doc = serde_json::to_value(&v)?;
    doc["tags"] = json!(tags);
    doc["card_path"] = json!(card_path);
    Ok(doc)
}

pub async fn show(
    reg: &Registry,
    dir: &Path,
    printer: &Printer,
    id: &str,
    json: bool,
) -> Result<Exit> {
    let doc = show_doc(reg, dir, id).await?;
    if json {
        printer.data(&serde_json::to_string_pretty(&doc)?);
        return Ok(Exit::Ok);
    }
    let mut s = String::new();
    let p = &doc["provenance"];
    let _ = writeln!(s, "version   {}", doc["id"].as_str().unwrap_or("?"));
    let _ = writeln!(s, "created   {}", doc["created_at"].as_str().unwrap_or("?"));
    let _ = writeln!(s, "algo      {}", doc["algo"].as_str().unwrap_or("?"));
    let _ = writeln!(
        s,
        "tags      {}",
        doc["tags"]
            .as_array()
            .map(|t| t
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", "))
            .unwrap_or_default()
    );
    let _ = writeln!(s, "model     {}", doc["model"].as_str().unwrap_or("?"));
    let _ = writeln!(s, "canonical {}", doc["canonical"].as_str().unwrap_or("?"));
    let _ = writeln!(
        s,
        "card      {}",
        doc["card_path"]
            .as_str()
            .unwrap_or_else(|| doc["card"].as_str().unwrap_or("?"))
    );
    let _ = writeln!(
        s,
        "git       {} {}",
        p["git_commit"].as_str().unwrap_or("-"),
        if p["git_dirty"] == true {
            "(dirty)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        s,
        "data      {}",
        p["data_snapshot"].as_str().unwrap_or("-")
    );
    let _ = writeln!(
        s,
        "mlbuild   {}  engine H2O {}",
        p["mlbuild_version"].as_str().unwrap_or("-"),
        p["engine"]["version"].as_str().unwrap_or("-")
    );
    if let Some(m) = doc["metrics"].as_object() {
        for (k, v) in m {
            let _ = writeln!(s, "  {k:<24} {}", fmt(v));
        }
    }
    printer.data(s.trim_end());
    Ok(Exit::Ok)
}

fn fmt(v: &Value) -> String {
    v.as_f64()
        .map(|x| format!("{x:.6}"))
        .unwrap_or_else(|| v.to_string())
}

/// Flattens a JSON object into `a.b.c → value` leaves.
fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, x, out);
            }
        }
        _ => out.push((prefix.to_string(), v.clone())),
    }
}

/// The `diff --json` document: metrics (with `change` for numbers), params (the config slices
/// recorded in provenance) and leaderboards, side by side; only what differs for params.
pub fn diff_doc(a: &Version, b: &Version) -> Value {
    let mut metrics = serde_json::Map::new();
    let names: BTreeSet<String> = [&a.metrics, &b.metrics]
        .iter()
        .filter_map(|m| m.as_object())
        .flat_map(|m| m.keys().cloned())
        .collect();
    for n in names {
        let (x, y) = (&a.metrics[&n], &b.metrics[&n]);
        let change = match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => json!(y - x),
            _ => Value::Null,
        };
        metrics.insert(n, json!({ "old": x, "new": y, "change": change }));
    }
    let mut pa = Vec::new();
    let mut pb = Vec::new();
    flatten("", &a.provenance["config"], &mut pa);
    flatten("", &b.provenance["config"], &mut pb);
    let keys: BTreeSet<&String> = pa.iter().chain(&pb).map(|(k, _)| k).collect();
    let get = |l: &Vec<(String, Value)>, k: &str| {
        l.iter()
            .find(|(x, _)| x == k)
            .map(|(_, v)| v.clone())
            .unwrap_or(Value::Null)
    };
    let mut params = serde_json::Map::new();
    for k in keys {
        let (x, y) = (get(&pa, k), get(&pb, k));
        if x != y {
            params.insert(k.clone(), json!({ "old": x, "new": y }));
        }
    }
    json!({
        "old": a.id, "new": b.id,
        "metrics": metrics,
        "params": params,
        "algo": { "old": a.algo, "new": b.algo },
        "data_snapshot": { "old": a.provenance["data_snapshot"], "new": b.provenance["data_snapshot"] },
        "leaderboard": { "old": a.provenance["leaderboard"], "new": b.provenance["leaderboard"] },
    })
}

pub async fn diff(reg: &Registry, printer: &Printer, a: &str, b: &str, json: bool) -> Result<Exit> {
    let (va, vb) = (version(reg, a).await?, version(reg, b).await?);
    let doc = diff_doc(&va, &vb);
    if json {
        printer.data(&serde_json::to_string_pretty(&doc)?);
        return Ok(Exit::Ok);
    }
    let mut s = format!("{:<28} {:>12} {:>12} {:>12}\n", "metric", a, b, "change");
    if let Some(m) = doc["metrics"].as_object() {
        for (k, v) in m {
            let _ = writeln!(
                s,
                "{k:<28} {:>12} {:>12} {:>12}",
                fmt(&v["old"]),
                fmt(&v["new"]),
                fmt(&v["change"])
            );
        }
    }
    if let Some(p) = doc["params"].as_object() {
        if !p.is_empty() {
            let _ = writeln!(s, "\n{:<40} {:>16} {:>16}", "param", "old", "new");
            for (k, v) in p {
                let _ = writeln!(
                    s,
                    "{k:<40} {:>16} {:>16}",
                    v["old"].to_string(),
                    v["new"].to_string()
                );
            }
        }
    }
    printer.data(s.trim_end());
    Ok(Exit::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(id: &str, auc: f64, max_models: u32) -> Version {
        Version {
            id: id.into(),
            created_at: String::new(),
            model: String::new(),
            canonical: String::new(),
            algo: "GBM".into(),
            metrics: json!({ "auc": auc, "rmse": 0.4 }),
            card: String::new(),
            provenance: json!({ "config": { "execute": { "max_models": max_models, "seed": 1 } } }),
            run: None,
        }
    }

    #[test]
    fn diff_shows_metric_changes_and_only_changed_params() {
        let d = diff_doc(&v("a", 0.7, 2), &v("b", 0.75, 4));
        assert!((d["metrics"]["auc"]["change"].as_f64().unwrap() - 0.05).abs() < 1e-12);
        assert_eq!(d["metrics"]["rmse"]["change"], 0.0);
        assert_eq!(
            d["params"]["execute.max_models"],
            json!({ "old": 2, "new": 4 })
        );
        assert!(d["params"].get("execute.seed").is_none());
    }
}
