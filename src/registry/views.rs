//! What `show VERSION` and `diff VERSION VERSION` show: their JSON documents and text (formats
//! in `docs/registry.md`), and `show --export`'s files. The commands print them.

use std::collections::BTreeSet;
use std::fmt::Write;
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::{json, Value};

use super::render::table;
use super::{Registry, Version};
use crate::h2o::Leaderboard;
use crate::store::Store;

async fn version(reg: &Registry, id: &str) -> Result<Version> {
    reg.get(id)
        .await?
        .with_context(|| format!("no version `{id}` in the registry (see `mlbuild versions`)"))
}

/// The `show --json` document: the version, the tags pointing at it, the card's store path and
/// the version's history (its bytes restored or replaced, oldest first).
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
    let card_path = Some(Store::existing(&paths.cache).blob_path(&v.card))
        .filter(|p| p.exists())
        .map(|p| p.display().to_string());
    let history = reg.version_events(&v.id).await?;
    let mut doc = serde_json::to_value(&v)?;
    doc["tags"] = json!(tags);
    doc["card_path"] = json!(card_path);
    doc["history"] = json!(history);
    Ok(doc)
}

/// The text of `show` (without `--json`): one field a line, metrics, then the version's history.
#[allow(
    clippy::too_many_lines,
    reason = "one line per field of `show`, in the documented order"
)]
pub fn show_text(doc: &Value) -> String {
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
    if p["source"] == "deploy" {
        // Made elsewhere and added with `deploy --mojo`: no run, no data snapshot, no git state.
        let _ = writeln!(
            s,
            "source    deploy --mojo {} by {}",
            p["file"].as_str().unwrap_or("?"),
            p["deployed_by"].as_str().unwrap_or("?")
        );
        let _ = writeln!(
            s,
            "mlbuild   {}  trained by H2O {} (MOJO {})",
            p["mlbuild_version"].as_str().unwrap_or("-"),
            p["h2o_version"].as_str().unwrap_or("?"),
            p["mojo_version"].as_str().unwrap_or("?")
        );
    } else {
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
    }
    if let Some(m) = doc["metrics"].as_object() {
        for (k, v) in m {
            let _ = writeln!(s, "  {k:<24} {}", fmt(v));
        }
    }
    for e in doc["history"].as_array().into_iter().flatten() {
        let short = |k: &str| {
            e[k].as_str()
                .map_or("?", crate::store::short_digest)
                .to_string()
        };
        let _ = writeln!(
            s,
            "history   {} {} {} {} → {} by {}: {}",
            e["at"].as_str().unwrap_or("?"),
            e["blob"].as_str().unwrap_or("?"),
            e["kind"].as_str().unwrap_or("?"),
            short("from"),
            short("to"),
            e["by"].as_str().unwrap_or("?"),
            e["reason"].as_str().unwrap_or("")
        );
    }
    s.trim_end().to_string()
}

/// `show VERSION --export DIR`: the version's card as `DIR/card.md` and each plot of
/// `provenance.plots` as `DIR/plots/<name>-<12 hex>.svg` (the paths the card links), every blob
/// verified on read and every file written atomically. Returns the version's id and how many
/// files were written.
pub async fn export_card(
    reg: &Registry,
    dir: &Path,
    id: &str,
    out: &Path,
) -> Result<(String, usize)> {
    let v = version(reg, id).await?;
    let store = Store::existing(&crate::project::Paths::resolve(dir).cache);
    let missing = |what: &str, digest: &str| {
        format!(
            "{what} `{}` of version {} is not in this store",
            crate::store::short_digest(digest),
            v.id
        )
    };
    let card = store
        .read_verified(&v.card)
        .with_context(|| missing("the card", &v.card))?;
    crate::store::write_atomic(&out.join("card.md"), &card)?;
    let mut written = 1;
    if let Some(plots) = v.provenance["plots"].as_object() {
        for (name, digest) in plots {
            // Names and digests come from the registry: only ours make file names.
            let Some(digest) = digest.as_str().filter(|d| crate::store::is_digest(d)) else {
                continue;
            };
            if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                continue;
            }
            let bytes = store
                .read_verified(digest)
                .with_context(|| missing(&format!("the {name} plot"), digest))?;
            let file = out.join(crate::report::card::plot_file(name, digest));
            crate::store::write_atomic(&file, &bytes)?;
            written += 1;
        }
    }
    Ok((v.id, written))
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

/// One side of a leaderboard comparison: the version's leaderboard as stored, or why it is not
/// shown (a version registered before leaderboards were recorded, one made by `deploy --mojo`,
/// or a store that lacks the blob).
pub enum Board {
    Found {
        digest: String,
        board: Leaderboard,
    },
    Missing {
        digest: Option<String>,
        why: &'static str,
    },
}

impl Board {
    /// Loads the leaderboard a version's provenance names, verified, from `store`.
    pub fn load(store: Option<&Store>, v: &Version) -> Board {
        let Some(digest) = v.provenance["leaderboard"].as_str().map(str::to_string) else {
            return Board::Missing {
                digest: None,
                why: "not recorded for this version",
            };
        };
        let missing = |why| Board::Missing {
            digest: Some(digest.clone()),
            why,
        };
        let bytes = match store.map(|s| s.read_verified(&digest)) {
            Some(Ok(bytes)) => bytes,
            Some(Err(crate::store::StoreError::Corrupt { .. })) => return missing(
                "corrupt here: moved to the quarantine (mlbuild cache pull fetches a good copy)",
            ),
            // Found corrupt by an earlier read.
            _ if store.is_some_and(|s| s.quarantined(&digest)) => {
                return missing(
                    "corrupt here: in the quarantine (mlbuild cache pull fetches a good copy)",
                )
            }
            Some(Err(crate::store::StoreError::Missing { .. })) | None => {
                return missing("not in this store (mlbuild cache pull fetches it)")
            }
            Some(Err(_)) => return missing("unreadable in this store"),
        };
        match serde_json::from_slice::<Leaderboard>(&bytes) {
            Ok(board) => Board::Found { digest, board },
            Err(_) => missing("not a leaderboard this mlbuild reads"),
        }
    }

    fn to_json(&self) -> Value {
        match self {
            Board::Found { digest, board } => json!({
                "digest": digest,
                "sort_metric": board.sort_metric,
                "rows": board.rows.iter().map(|r| json!({
                    "model_id": r.model_id,
                    "algo": r.algo,
                    "metrics": r.metrics,
                })).collect::<Vec<_>>(),
            }),
            Board::Missing { digest, why } => json!({ "digest": digest, "missing": why }),
        }
    }
}

/// Every param of two versions' recorded config, changed or not: `(key, old, new)` in key order
/// (the compare page's "everything"). Empty when either recorded none (`deploy --mojo`).
pub fn all_params(a: &Version, b: &Version) -> Vec<(String, Value, Value)> {
    if ![a, b].iter().all(|v| v.provenance.get("config").is_some()) {
        return Vec::new();
    }
    let (mut pa, mut pb) = (Vec::new(), Vec::new());
    flatten("", &a.provenance["config"], &mut pa);
    flatten("", &b.provenance["config"], &mut pb);
    let keys: BTreeSet<String> = pa.iter().chain(&pb).map(|(k, _)| k.clone()).collect();
    let get = |l: &Vec<(String, Value)>, k: &str| {
        l.iter()
            .find(|(x, _)| x == k)
            .map(|(_, v)| v.clone())
            .unwrap_or(Value::Null)
    };
    keys.into_iter()
        .map(|k| {
            let (x, y) = (get(&pa, &k), get(&pb, &k));
            (k, x, y)
        })
        .collect()
}

/// The `diff --json` document: metrics (with `change` for numbers), params (the config slices
/// recorded in provenance) and leaderboards, side by side; only what differs for params.
pub fn diff_doc(a: &Version, b: &Version, boards: [&Board; 2]) -> Value {
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
    // A version added with `deploy --mojo` records no config: nothing to compare it with.
    let compared = [a, b].iter().all(|v| v.provenance.get("config").is_some());
    let mut params = serde_json::Map::new();
    for k in keys.into_iter().filter(|_| compared) {
        let (x, y) = (get(&pa, k), get(&pb, k));
        if x != y {
            params.insert(k.clone(), json!({ "old": x, "new": y }));
        }
    }
    json!({
        "old": a.id, "new": b.id,
        "metrics": metrics,
        "params": params,
        "params_compared": compared,
        "algo": { "old": a.algo, "new": b.algo },
        "data_snapshot": { "old": a.provenance["data_snapshot"], "new": b.provenance["data_snapshot"] },
        "leaderboard": { "old": boards[0].to_json(), "new": boards[1].to_json() },
    })
}

/// `diff A B`: its JSON document and its text (metrics, params, leaderboards side by side).
pub async fn diff(reg: &Registry, dir: &Path, a: &str, b: &str) -> Result<(Value, String)> {
    let (va, vb) = (version(reg, a).await?, version(reg, b).await?);
    let paths = crate::project::Paths::resolve(dir);
    let store = Some(Store::existing(&paths.cache));
    let boards = [
        Board::load(store.as_ref(), &va),
        Board::load(store.as_ref(), &vb),
    ];
    let doc = diff_doc(&va, &vb, [&boards[0], &boards[1]]);
    let metric_rows: Vec<Vec<String>> = doc["metrics"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| vec![k.clone(), fmt(&v["old"]), fmt(&v["new"]), fmt(&v["change"])])
                .collect()
        })
        .unwrap_or_default();
    let mut s = table(&["metric", a, b, "change"], &metric_rows);
    if doc["params_compared"] == false {
        let unrecorded: Vec<&str> = [&va, &vb]
            .iter()
            .filter(|v| v.provenance.get("config").is_none())
            .map(|v| v.id.as_str())
            .collect();
        let _ = writeln!(
            s,
            "\nparams: not compared ({} recorded no config: added with `deploy --mojo`)",
            unrecorded.join(" and ")
        );
    } else if let Some(p) = doc["params"].as_object().filter(|p| !p.is_empty()) {
        let rows: Vec<Vec<String>> = p
            .iter()
            .map(|(k, v)| vec![k.clone(), v["old"].to_string(), v["new"].to_string()])
            .collect();
        s.push('\n');
        s.push_str(&table(&["param", "old", "new"], &rows));
    }
    s.push('\n');
    s.push_str(&leaderboards_side_by_side(a, b, &boards));
    let text = s.trim_end().to_string();
    Ok((doc, text))
}

/// Two leaderboards as one table, rank by rank: model (algo) and sort metric of each side.
fn leaderboards_side_by_side(a: &str, b: &str, boards: &[Board; 2]) -> String {
    let side = |board: &Board, rank: usize| -> String {
        match board {
            Board::Found { board, .. } => board
                .rows
                .get(rank)
                .map(|r| {
                    let v = r
                        .metrics
                        .get(&board.sort_metric)
                        .copied()
                        .unwrap_or(f64::NAN);
                    format!("{} ({}) {v:.5}", short_model(&r.model_id), r.algo)
                })
                .unwrap_or_default(),
            Board::Missing { .. } => String::new(),
        }
    };
    let metric = |board: &Board| match board {
        Board::Found { board, .. } => board.sort_metric.clone(),
        Board::Missing { why, .. } => format!("leaderboard {why}"),
    };
    let ranks = boards
        .iter()
        .map(|b| match b {
            Board::Found { board, .. } => board.rows.len(),
            Board::Missing { .. } => 0,
        })
        .max()
        .unwrap_or(0);
    let mut rows = vec![vec![String::new(), metric(&boards[0]), metric(&boards[1])]];
    rows.extend((0..ranks).map(|rank| {
        vec![
            (rank + 1).to_string(),
            side(&boards[0], rank),
            side(&boards[1], rank),
        ]
    }));
    table(&["rank", a, b], &rows)
}

/// H2O model ids carry the AutoML run's timestamp (`GBM_1_AutoML_3_20250301_120000`); the
/// part before `_AutoML` names the model within the run, which is what a comparison needs.
fn short_model(id: &str) -> &str {
    id.split("_AutoML").next().unwrap_or(id)
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

    /// A leaderboard found corrupt is said so (it was called "not in this store").
    #[test]
    fn a_corrupt_leaderboard_is_not_called_missing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let digest = store.put_bytes(b"{\"not\": \"a leaderboard\"}").unwrap();
        let mut version = v("a", 0.7, 2);
        version.provenance["leaderboard"] = json!(digest);
        let why = |board: Board| match board {
            Board::Missing { why, .. } => why,
            Board::Found { .. } => "found",
        };
        assert_eq!(
            why(Board::load(Some(&store), &version)),
            "not a leaderboard this mlbuild reads"
        );
        std::fs::write(store.blob_path(&digest), b"flipped").unwrap();
        assert!(why(Board::load(Some(&store), &version)).starts_with("corrupt here: moved"));
        // Quarantined by that read: still said to be corrupt, not missing.
        assert!(
            why(Board::load(Some(&store), &version)).starts_with("corrupt here: in the quarantine")
        );
        std::fs::remove_file(store.quarantine_path(&digest)).unwrap();
        assert!(why(Board::load(Some(&store), &version)).starts_with("not in this store"));
        assert!(why(Board::load(None, &version)).starts_with("not in this store"));
    }

    #[test]
    fn diff_shows_metric_changes_and_only_changed_params() {
        let none = Board::Missing {
            digest: None,
            why: "not recorded for this version",
        };
        let d = diff_doc(&v("a", 0.7, 2), &v("b", 0.75, 4), [&none, &none]);
        assert!((d["metrics"]["auc"]["change"].as_f64().unwrap() - 0.05).abs() < 1e-12);
        assert_eq!(d["metrics"]["rmse"]["change"], 0.0);
        assert_eq!(
            d["params"]["execute.max_models"],
            json!({ "old": 2, "new": 4 })
        );
        assert!(d["params"].get("execute.seed").is_none());
    }

    fn board(rows: &[(&str, &str, f64)]) -> Board {
        Board::Found {
            digest: "d".repeat(64),
            board: Leaderboard {
                sort_metric: "auc".into(),
                columns: vec!["model_id".into(), "auc".into()],
                rows: rows
                    .iter()
                    .map(|(id, algo, auc)| crate::h2o::LeaderboardRow {
                        model_id: id.to_string(),
                        algo: algo.to_string(),
                        metrics: [("auc".to_string(), *auc)].into(),
                    })
                    .collect(),
            },
        }
    }

    #[test]
    fn diff_with_a_deployed_version_compares_no_params() {
        let none = Board::Missing {
            digest: None,
            why: "not recorded for this version",
        };
        let mut deployed = v("b", 0.75, 4);
        deployed.provenance = json!({ "source": "deploy", "file": "m.zip" });
        let d = diff_doc(&v("a", 0.7, 2), &deployed, [&none, &none]);
        assert_eq!(d["params_compared"], false);
        assert_eq!(d["params"], json!({}));
        let d = diff_doc(&v("a", 0.7, 2), &v("b", 0.7, 4), [&none, &none]);
        assert_eq!(d["params_compared"], true);
    }

    #[test]
    fn diff_puts_leaderboards_side_by_side() {
        let old = board(&[("GLM_1_AutoML_1_20250301_120000", "GLM", 0.71)]);
        let new = board(&[
            ("GBM_2_AutoML_4_20250314_093012", "GBM", 0.8123456),
            ("GLM_1_AutoML_4_20250314_093012", "GLM", 0.7),
        ]);
        let d = diff_doc(&v("a", 0.71, 2), &v("b", 0.81, 4), [&old, &new]);
        assert_eq!(d["leaderboard"]["old"]["rows"].as_array().unwrap().len(), 1);
        assert_eq!(
            d["leaderboard"]["new"]["rows"][0]["model_id"],
            "GBM_2_AutoML_4_20250314_093012"
        );
        let text = leaderboards_side_by_side("a", "b", &[old, new]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(
            lines[2].contains("GLM_1 (GLM) 0.71000") && lines[2].contains("GBM_2 (GBM) 0.81235"),
            "{text}"
        );
        assert!(
            lines[3].trim_start().starts_with('2') && lines[3].contains("GLM_1 (GLM) 0.70000"),
            "{text}"
        );
        let missing = Board::Missing {
            digest: None,
            why: "not recorded for this version",
        };
        let text = leaderboards_side_by_side("a", "b", &[missing, board(&[])]);
        assert!(
            text.contains("leaderboard not recorded for this version"),
            "{text}"
        );
    }
}
