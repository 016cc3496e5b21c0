//! Property and mutation tests of what `serve` and `predict` read from clients (harness:
//! `crate::hostile`, docs/testing.md): whatever the JSON body of `POST /predict`, or the CSV
//! given to `predict`, parsing, binding and scoring return predictions or an error message
//! (a 400), never panic, within time and memory.

use std::time::Duration;

use serde_json::{json, Map, Value};

use super::rows;
use crate::hostile::{self, mutate, repo_file, Input, Property, Rng};
use crate::mojo::Mojo;
use crate::predict::{self, Scorer, Scratch};

/// Fixture models and the input CSV whose columns they read.
const MODELS: &[(&str, &str)] = &[
    ("gbm_bin", "prostate"),
    ("glm_multi", "iris"),
    ("xgb_reg", "prostate"),
    ("se_bin", "prostate"),
    ("dl_multi", "iris"),
    ("drf_syn", "syn"),
];

fn scorers() -> Vec<(Scorer, Vec<u8>)> {
    MODELS
        .iter()
        .map(|(model, data)| {
            let bytes = repo_file(&format!("tests/fixtures/mojo/{model}.zip"));
            let mojo = Mojo::load(&bytes).expect("a fixture model");
            let csv = repo_file(&format!("tests/fixtures/mojo/{data}.in.csv"));
            (Scorer::new(mojo, None, None).expect("a scorer"), csv)
        })
        .collect()
}

fn awkward_json(rng: &mut Rng, depth: usize) -> Value {
    match rng.below(if depth > 3 { 6 } else { 9 }) {
        0 => Value::Null,
        1 => json!(rng.percent(50)),
        2 => json!(rng.next_u64() as i64),
        3 => json!(f64::from_bits(rng.next_u64())),
        4 => json!(rng.junk(8)),
        5 => json!(rng.awkward_number()),
        6 => Value::Array(
            (0..rng.below(3))
                .map(|_| awkward_json(rng, depth + 1))
                .collect(),
        ),
        7 => {
            let mut m = Map::new();
            for _ in 0..rng.below(3) {
                m.insert(rng.junk(4), awkward_json(rng, depth + 1));
            }
            Value::Object(m)
        }
        _ => json!(format!("{}", rng.below(10))),
    }
}

/// A body built from the model's own CSV rows: mostly right, some values replaced.
fn body(rng: &mut Rng, csv: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(csv);
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let data: Vec<&str> = lines.collect();
    let mut rows = Vec::new();
    for _ in 0..rng.between(0, 5) {
        let line = if data.is_empty() {
            ""
        } else {
            *rng.pick(&data)
        };
        let mut row = Map::new();
        for (name, cell) in header.iter().zip(line.split(',')) {
            if rng.percent(5) {
                continue;
            }
            let value = match rng.below(10) {
                0 => awkward_json(rng, 0),
                1 => Value::Null,
                2 => json!(cell),
                _ => cell.parse::<f64>().map_or(json!(cell), |x| json!(x)),
            };
            row.insert(name.trim_matches('"').to_string(), value);
        }
        rows.push(Value::Object(row));
    }
    let doc = match rng.below(6) {
        0 => rows.pop().unwrap_or(Value::Null),
        1 => json!({ "rows": awkward_json(rng, 0) }),
        _ => json!({ "rows": rows }),
    };
    serde_json::to_vec(&doc).expect("JSON serialises")
}

fn generate_body(rng: &mut Rng, models: usize, csvs: &[Vec<u8>]) -> Input {
    let m = rng.below(models);
    let mut bytes = body(rng, &csvs[m]);
    let how = if rng.percent(40) {
        format!("a body for model {m}, mutated: {}", mutate(rng, &mut bytes))
    } else {
        format!("a body for model {m}")
    };
    let mut input = Input::new(bytes, how);
    input.args = vec![m.to_string()];
    input
}

#[test]
fn predict_bodies_never_panic() {
    let scorers = scorers();
    let csvs: Vec<Vec<u8>> = scorers.iter().map(|(_, csv)| csv.clone()).collect();
    let property = Property {
        parser: "serve body",
        deadline: Duration::from_secs(5),
        memory: 64 << 20,
        reserved: 0,
        test_filter: "serve::properties::predict_bodies",
    };
    hostile::check(
        &property,
        |rng| generate_body(rng, scorers.len(), &csvs),
        |input| {
            let (scorer, _) = &scorers[input.args[0].parse::<usize>().expect("a model index")];
            let rows = match rows::parse(&input.bytes) {
                Ok(rows) => rows,
                Err(e) if !e.is_empty() => return Ok("400 body".into()),
                Err(_) => return Err("an empty error message".into()),
            };
            let mut scratch = Scratch::default();
            for row in &rows {
                let cells = match rows::cells(row, scorer) {
                    Ok(cells) => cells,
                    Err(_) => return Ok("400 row".into()),
                };
                if scorer.score(&cells, &mut scratch).is_err() {
                    return Ok("400 value".into());
                }
            }
            Ok(format!("scored {} rows", rows.len().min(1)))
        },
    );
}

#[test]
fn predict_csv_inputs_never_panic() {
    let scorers = scorers();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("input.csv");
    let property = Property {
        parser: "predict csv",
        deadline: Duration::from_secs(5),
        memory: 64 << 20,
        reserved: 0,
        test_filter: "serve::properties::predict_csv",
    };
    hostile::check(
        &property,
        |rng| {
            let m = rng.below(scorers.len());
            let mut bytes = scorers[m].1.clone();
            let how = mutate(rng, &mut bytes);
            let mut input = Input::new(bytes, format!("input CSV of model {m}, mutated: {how}"));
            input.args = vec![m.to_string()];
            input
        },
        |input| {
            let (scorer, _) = &scorers[input.args[0].parse::<usize>().expect("a model index")];
            std::fs::write(&file, &input.bytes).map_err(|e| e.to_string())?;
            match predict::predict_csv(scorer, &file, Vec::new()) {
                Ok(_) => Ok("scored".into()),
                Err(e) => {
                    let message = format!("{e:#}");
                    if message.contains(&file.display().to_string()) {
                        Ok("refused".into())
                    } else {
                        Err(format!("the error does not name the input: {message}"))
                    }
                }
            }
        },
    );
}
