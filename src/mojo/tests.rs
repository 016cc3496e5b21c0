//! Native scoring against genmodel: every fixture MOJO in `tests/fixtures/mojo/` (made by
//! `scripts/mojo_fixtures.sh` with H2O 3.46.0.11) is scored on its input CSV and compared with
//! genmodel `PredictCsv`'s hex output. Labels must be identical, values within
//! 1e-12 × max(1, |value|); the number of bit-identical values is printed
//! (`cargo test --lib mojo -- --nocapture`) and recorded in docs/mojo.md.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::*;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mojo")
}

/// A fixture MOJO and its input rows, encoded as the model reads them.
pub(crate) fn encoded_fixture(name: &str) -> (Mojo, Vec<Vec<f64>>) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mojo");
    let bytes = std::fs::read(dir.join(format!("{name}.zip"))).unwrap();
    let mojo = Mojo::load(&bytes).unwrap();
    let data = if name.contains("multi") {
        "iris"
    } else if name.contains("syn") {
        "syn"
    } else {
        "prostate"
    };
    let text = std::fs::read_to_string(dir.join(format!("{data}.in.csv"))).unwrap();
    let mut lines = text.lines().filter(|l| !l.is_empty());
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let binding = mojo.bind(&header).unwrap();
    let rows = lines
        .map(|l| {
            let record: Vec<&str> = l.split(',').collect();
            let mut raw = Vec::new();
            binding.encode(&record, &mut raw).unwrap();
            raw
        })
        .collect();
    (mojo, rows)
}

/// Compares `ours(row)` (one set of contributions) with genmodel's `NAME.contrib.csv` for every
/// row: the same names, each value within 1e-6 absolute or 1e-5 relative. Returns the worst
/// absolute difference.
pub(crate) fn agree_with_genmodels_contributions(
    name: &str,
    mojo: &Mojo,
    rows: &[Vec<f64>],
    ours: impl Fn(&[f64]) -> Vec<f64>,
) -> f64 {
    let text = std::fs::read_to_string(fixtures().join(format!("{name}.contrib.csv"))).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(header, mojo.contribution_names().unwrap(), "{name}");
    let mut worst = 0f64;
    let mut compared = 0;
    for (row, line) in rows.iter().zip(lines) {
        let theirs: Vec<f64> = line.split(',').map(|v| v.parse().unwrap()).collect();
        let ours = ours(row);
        for (a, b) in ours.iter().zip(&theirs) {
            let abs = (a - b).abs();
            assert!(
                abs <= 1e-6 || abs <= 1e-5 * b.abs(),
                "{name}: {ours:?}\n vs genmodel {theirs:?}"
            );
            worst = worst.max(abs);
            compared += 1;
        }
    }
    assert_eq!(compared, rows.len() * header.len(), "{name}");
    eprintln!("{name}: {compared} values, worst |ours - genmodel| {worst:e}");
    worst
}

fn read_csv(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text.lines().filter(|l| !l.is_empty());
    let split = |l: &str| l.split(',').map(str::to_string).collect::<Vec<_>>();
    let header = split(lines.next().expect("header"));
    (header, lines.map(split).collect())
}

/// Parses Java's `Double.toHexString` output exactly.
fn parse_java_hex(s: &str) -> f64 {
    match s {
        "NaN" | "NA" => return f64::NAN,
        "Infinity" => return f64::INFINITY,
        "-Infinity" => return f64::NEG_INFINITY,
        _ => {}
    }
    let (negative, rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let rest = rest
        .strip_prefix("0x")
        .unwrap_or_else(|| panic!("not hex: {s}"));
    let (mantissa, exp) = rest.split_once('p').unwrap();
    let (int, frac) = mantissa.split_once('.').unwrap();
    let exp: i64 = exp.parse().unwrap();
    let frac_bits = u64::from_str_radix(frac, 16).unwrap() << (52 - 4 * frac.len() as u64);
    let bits = match int {
        "1" => ((exp + 1023) as u64) << 52 | frac_bits,
        "0" if frac_bits == 0 => 0,
        "0" => frac_bits, // subnormal, exponent -1022
        _ => panic!("not normalized: {s}"),
    };
    let x = f64::from_bits(bits);
    if negative {
        -x
    } else {
        x
    }
}

fn ulps(a: f64, b: f64) -> u64 {
    let key = |x: f64| {
        let i = x.to_bits() as i64;
        if i < 0 {
            i64::MIN - i
        } else {
            i
        }
    };
    key(a).abs_diff(key(b))
}

#[derive(Default)]
struct Tally {
    rows: usize,
    values: usize,
    identical: usize,
    max_abs: f64,
    max_ulps: u64,
}

fn check_fixture(name: &str, data: &str) -> Tally {
    let dir = fixtures();
    let bytes = std::fs::read(dir.join(format!("{name}.zip"))).unwrap();
    let mojo = Mojo::load(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    let (header, records) = read_csv(&dir.join(format!("{data}.in.csv")));
    let (out_header, expected) = read_csv(&dir.join(format!("{name}.out.csv")));
    assert_eq!(out_header, mojo.output_names(), "{name}: output columns");
    assert_eq!(records.len(), expected.len(), "{name}: row count");
    let binding = mojo.bind(&header).unwrap();
    let mut tally = Tally::default();
    for (i, (record, want)) in records.iter().zip(&expected).enumerate() {
        let prediction = binding
            .score(record)
            .unwrap_or_else(|e| panic!("{name} row {i}: {e}"));
        let values: Vec<f64> = match &prediction {
            Prediction::Value(v) => vec![*v],
            Prediction::Class { probabilities, .. } => {
                assert_eq!(
                    mojo.label(&prediction),
                    Some(want[0].as_str()),
                    "{name} row {i}: label (probabilities {probabilities:?}, genmodel {want:?})"
                );
                probabilities.clone()
            }
        };
        let want_values: Vec<f64> = match &prediction {
            Prediction::Value(_) => vec![parse_java_hex(&want[0])],
            Prediction::Class { .. } => want[1..].iter().map(|s| parse_java_hex(s)).collect(),
        };
        assert_eq!(values.len(), want_values.len(), "{name} row {i}: width");
        tally.rows += 1;
        for (got, want) in values.iter().zip(&want_values) {
            tally.values += 1;
            if got.to_bits() == want.to_bits() {
                tally.identical += 1;
                continue;
            }
            let err = (got - want).abs();
            assert!(
                err <= 1e-12 * want.abs().max(1.0),
                "{name} row {i}: {got:e} vs genmodel {want:e} ({})",
                java_hex(*want)
            );
            tally.max_abs = tally.max_abs.max(err);
            tally.max_ulps = tally.max_ulps.max(ulps(*got, *want));
        }
    }
    tally
}

#[test]
fn fixtures_match_genmodel() {
    let manifest = std::fs::read_to_string(fixtures().join("manifest.tsv")).unwrap();
    let mut total = Tally::default();
    let mut report = String::from(
        "\nfixture              algo  problem      rows  values  bit-identical  max |Δ|   max ulps\n",
    );
    for line in manifest.lines().filter(|l| !l.is_empty()) {
        let fields: Vec<&str> = line.split('\t').collect();
        let (name, data, algo, problem) = (fields[0], fields[1], fields[2], fields[3]);
        let t = check_fixture(name, data);
        report += &format!(
            "{name:<20} {algo:<5} {problem:<12} {:>4}  {:>6}  {:>13}  {:<9.2e} {}\n",
            t.rows, t.values, t.identical, t.max_abs, t.max_ulps
        );
        total.rows += t.rows;
        total.values += t.values;
        total.identical += t.identical;
        total.max_abs = total.max_abs.max(t.max_abs);
        total.max_ulps = total.max_ulps.max(t.max_ulps);
    }
    report += &format!(
        "{:<39} {:>4}  {:>6}  {:>13}  {:<9.2e} {}\n",
        "total", total.rows, total.values, total.identical, total.max_abs, total.max_ulps
    );
    // Shown with `--nocapture`; written to stderr so it also lands in failure output.
    eprintln!("{report}");
    assert!(total.rows > 0);
}

fn zip_of(files: &[(&str, &str)]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, body) in files {
        zip.start_file(*name, zip::write::SimpleFileOptions::default())
            .unwrap();
        zip.write_all(body.as_bytes()).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

fn ini(algo: &str, version: &str, category: &str) -> String {
    format!(
        "[info]\nalgo = {algo}\nmojo_version = {version}\ncategory = {category}\nsupervised = true\nn_features = 1\nn_classes = 1\n\n[columns]\nx\ny\n\n[domains]\n"
    )
}

#[test]
fn refuses_unknown_algorithms_naming_algo_and_version() {
    let err = Mojo::load(&zip_of(&[(
        "model.ini",
        &ini("kmeans", "1.00", "Clustering"),
    )]))
    .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, MojoError::Unsupported { .. }), "{msg}");
    assert!(msg.contains("`kmeans`") && msg.contains("1.00"), "{msg}");
}

#[test]
fn refuses_newer_mojo_versions() {
    let err = Mojo::load(&zip_of(&[("model.ini", &ini("gbm", "1.50", "Regression"))])).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("`gbm`") && msg.contains("1.50") && msg.contains("1.40"),
        "{msg}"
    );
}

#[test]
fn refuses_other_categories() {
    let err = Mojo::load(&zip_of(&[("model.ini", &ini("glm", "1.00", "Ordinal"))])).unwrap_err();
    assert!(err.to_string().contains("Ordinal"), "{err}");
}

#[test]
fn not_a_zip() {
    assert!(matches!(Mojo::load(b"nope"), Err(MojoError::NotZip(_))));
}

fn prostate_gbm() -> Mojo {
    Mojo::load(&std::fs::read(fixtures().join("gbm_bin.zip")).unwrap()).unwrap()
}

#[test]
fn signature_lists_inputs_with_types_and_levels() {
    let mojo = prostate_gbm();
    let names: Vec<&str> = mojo.signature().iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["AGE", "RACE", "DPROS", "DCAPS", "PSA", "VOL", "GLEASON"]
    );
    assert_eq!(mojo.signature()[0].kind, ColumnKind::Numeric);
    assert_eq!(
        mojo.signature()[1].kind,
        ColumnKind::Categorical(vec!["0".into(), "1".into(), "2".into()])
    );
    assert_eq!(mojo.response(), Some("CAPSULE"));
    assert_eq!(mojo.output_names(), ["predict", "p0", "p1"]);
    assert_eq!(mojo.category(), Category::Binomial);
}

#[test]
fn values_unseen_levels_and_missing() {
    let mojo = prostate_gbm();
    let row = [
        Value::Number(65.0),
        Value::Text("1"),
        Value::Number(2.0), // a number for a categorical column is looked up as its text
        Value::Text("1"),
        Value::Text(" 1.4 "),
        Value::Missing,
        Value::Number(6.0),
    ];
    let a = mojo.score(&row).unwrap();
    let mut same = row;
    same[2] = Value::Text("2");
    assert_eq!(mojo.score(&same).unwrap(), a);
    let mut unseen = row;
    unseen[1] = Value::Text("never seen");
    let mut missing = row;
    missing[1] = Value::Missing;
    assert_eq!(mojo.score(&unseen).unwrap(), mojo.score(&missing).unwrap());
    let mut bad = row;
    bad[0] = Value::Text("old");
    assert_eq!(
        mojo.score(&bad),
        Err(ScoreError::NotANumber {
            column: "AGE".into(),
            value: "old".into()
        })
    );
    assert!(matches!(
        mojo.score(&row[..3]),
        Err(ScoreError::Width {
            got: 3,
            expected: 7
        })
    ));
}

#[test]
fn binding_requires_every_input_column() {
    let mojo = prostate_gbm();
    let err = mojo.bind(&["AGE", "RACE"]).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("`DPROS`") && msg.contains("RACE (categorical: 0, 1, 2)"),
        "{msg}"
    );
}

#[test]
fn tree_fixtures_cover_every_split_kind() {
    let mut totals = tree::Census::default();
    for name in [
        "gbm_bin",
        "drf_bin",
        "gbm_syn",
        "drf_syn",
        "gbm_multi",
        "gbm_reg",
    ] {
        let mojo =
            Mojo::load(&std::fs::read(fixtures().join(format!("{name}.zip"))).unwrap()).unwrap();
        let model::Scorer::Tree(trees) = &mojo.model.scorer else {
            panic!("{name} is not a tree model")
        };
        let c = trees.census();
        eprintln!("{name}: {c:?}");
        totals.numeric += c.numeric;
        totals.bitset32 += c.bitset32;
        totals.bitset_large += c.bitset_large;
        totals.na_left += c.na_left;
        totals.na_right += c.na_right;
    }
    assert!(
        totals.numeric > 0 && totals.bitset32 > 0 && totals.bitset_large > 0,
        "{totals:?}"
    );
    assert!(totals.na_left > 0 && totals.na_right > 0, "{totals:?}");
}
