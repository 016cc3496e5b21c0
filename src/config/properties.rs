//! Property and mutation tests of `ml.toml` parsing (harness: `crate::hostile`,
//! docs/testing.md): whatever the text and the `--set` arguments, [`super::parse`] returns a
//! config or an error, never panics, stays within time and memory, and every error made from
//! the file names a position inside it (`ml.toml:LINE:COL`, with that line shown).

use std::path::Path;
use std::time::Duration;

use super::keys::{Field, Kind, ROOT};
use super::{parse, value_place, ConfigError, Place};
use crate::hostile::{self, mutate, repo_file, Input, Property, Rng};

const SEEDS: &[&str] = &[
    "ml.toml",
    "examples/feature-store/ml.toml",
    "examples/iris/ml.toml",
    "examples/regression/ml.toml",
    "examples/text/ml.toml",
    "tests/fixtures/prostate/ml.toml",
    "tests/fixtures/text/ml.toml",
];

/// The generator's state: the random source, and how often it spoils a value (a wrong type,
/// a number TOML cannot hold, a repeated key); 0 for clean documents.
struct Gen {
    rng: Rng,
    spoil: u64,
}

impl Gen {
    fn spoils(&mut self) -> bool {
        let spoil = self.spoil;
        self.rng.percent(spoil)
    }
}

impl std::ops::Deref for Gen {
    type Target = Rng;
    fn deref(&self) -> &Rng {
        &self.rng
    }
}

impl std::ops::DerefMut for Gen {
    fn deref_mut(&mut self) -> &mut Rng {
        &mut self.rng
    }
}

const COLUMNS: &[&str] = &[
    "CAPSULE", "AGE", "RACE", "PSA", "VOL", "GLEASON", "ID", "my col", "é", "", "a.b", "\"q\"",
];

fn string_literal(rng: &mut Gen) -> String {
    let raw = match rng.below(8) {
        0 => rng.pick(COLUMNS).to_string(),
        1 => rng
            .pick(&[
                "binary", "auc", "rmse", "enum", "mean", "GBM", "xgboost", "staging",
            ])
            .to_string(),
        2 => "x".repeat(rng.between(0, 3000)),
        3 => expression(rng, 0),
        4 => rng.junk(12),
        5 => rng
            .pick(&[
                "http://h:54321",
                "https://u:p@h/x",
                "data/prostate.csv",
                "data/*.csv",
                "../../etc/passwd",
                "\u{1b}[31mred",
            ])
            .to_string(),
        6 => rng.awkward_number(),
        _ => rng
            .pick(&["a\nb", "tab\there", "\u{0}", "\u{feff}", "'", "\\"])
            .to_string(),
    };
    let mut escaped = String::with_capacity(raw.len());
    for c in raw.chars() {
        match c {
            '"' => escaped.push_str("\\\""),
            '\\' => escaped.push_str("\\\\"),
            c if c.is_control() => escaped.push_str(&format!("\\u{:04X}", c as u32)),
            c => escaped.push(c),
        }
    }
    match rng.below(10) {
        0 if !raw.contains('\'') && !raw.contains('\n') && !raw.chars().any(char::is_control) => {
            format!("'{raw}'")
        }
        1 => format!("\"\"\"\n{escaped}\"\"\""),
        _ => quoted(&raw),
    }
}

/// A derive expression: mostly well-formed, sometimes deep or broken.
fn expression(rng: &mut Gen, depth: usize) -> String {
    if depth > 6 || rng.percent(30) {
        return match rng.below(4) {
            0 => rng.awkward_number(),
            1 => rng
                .pick(&["PSA", "VOL", "AGE", "`my col`", "`a``b`", "unknown"])
                .to_string(),
            2 if depth == 0 || rng.percent(5) => {
                let n = rng.between(100, 50_000);
                let deep = rng.pick(&["(", "-", "abs(", "- ("]);
                format!(
                    "{}1{}",
                    deep.repeat(n),
                    if deep.contains('(') {
                        ")".repeat(n)
                    } else {
                        String::new()
                    }
                )
            }
            _ => rng
                .pick(&[
                    "", "(", ")", "1 +", "min(1)", "lg(2)", "\"PSA\"", "`", "1e", "PSA VOL",
                ])
                .to_string(),
        };
    }
    let a = expression(rng, depth + 1);
    let b = expression(rng, depth + 1);
    match rng.below(5) {
        0 => format!("{a} {} {b}", rng.pick(&["+", "-", "*", "/"])),
        1 => format!("({a})"),
        2 => format!("-{a}"),
        3 => format!("{}({a})", rng.pick(&["log", "exp", "sqrt", "abs"])),
        _ => format!("{}({a}, {b})", rng.pick(&["min", "max"])),
    }
}

/// A value of `kind` as TOML text (right kind four times in five, else anything).
fn value(rng: &mut Gen, kind: &Kind, depth: usize) -> String {
    if rng.spoils() || depth > 4 {
        return match rng.below(7) {
            0 => rng.awkward_number(),
            1 => string_literal(rng),
            2 => rng.pick(&["true", "false"]).to_string(),
            3 => "1979-05-27T07:32:00Z".into(),
            4 => "[]".into(),
            5 => "{}".into(),
            _ => format!("[{}, {}]", rng.awkward_number(), string_literal(rng)),
        };
    }
    match kind {
        Kind::String => string_literal(rng),
        Kind::Unsigned(_) if rng.spoils() => match rng.below(3) {
            0 => (rng.next_u64() >> rng.below(64)).to_string(),
            1 => format!("-{}", rng.below(1000)),
            _ => rng.awkward_number(),
        },
        Kind::Unsigned(_) => rng.between(0, 10).to_string(),
        Kind::Number if rng.spoils() => match rng.below(3) {
            0 => rng
                .pick(&[
                    "0.0", "1", "-0.5", "2.0", "nan", "inf", "-inf", "1e-300", "1e308",
                ])
                .to_string(),
            1 => format!("{:?}", f64::from_bits(rng.next_u64())),
            _ => rng.awkward_number(),
        },
        Kind::Number => format!("{:?}", rng.below(1000) as f64 / 997.0),
        Kind::Boolean => rng.pick(&["true", "false"]).to_string(),
        Kind::StringArray | Kind::ScalarArray => {
            let n = rng.between(0, 4);
            let items: Vec<String> = (0..n)
                .map(|_| match rng.spoils() {
                    true => rng.awkward_number(),
                    false => string_literal(rng),
                })
                .collect();
            format!("[{}]", items.join(", "))
        }
        Kind::Choice(choices) => match rng.spoils() {
            true => string_literal(rng),
            false => format!("\"{}\"", rng.pick(choices)),
        },
        Kind::ChoiceMap(choices) => {
            let items: Vec<String> = keys(rng, 3)
                .into_iter()
                .map(|k| format!("{k} = \"{}\"", rng.pick(choices)))
                .collect();
            format!("{{ {} }}", items.join(", "))
        }
        Kind::Scalar => match rng.below(2) {
            0 if rng.spoils() => rng.awkward_number(),
            0 => rng.below(100).to_string(),
            _ => string_literal(rng),
        },
        Kind::Table(fields) => inline_table(rng, fields, depth),
        Kind::Map(inner) => {
            let items: Vec<String> = keys(rng, 3)
                .into_iter()
                .map(|k| format!("{k} = {}", value(rng, inner, depth + 1)))
                .collect();
            format!("{{ {} }}", items.join(", "))
        }
        Kind::Either(a, b) => {
            let kind = if rng.percent(50) { a } else { b };
            value(rng, kind, depth)
        }
        Kind::TableArray(fields) => {
            let n = rng.between(0, 2);
            let items: Vec<String> = (0..n).map(|_| inline_table(rng, fields, depth)).collect();
            format!("[{}]", items.join(", "))
        }
        Kind::FreeTable => value(rng, &Kind::Map(&Kind::Scalar), depth),
    }
}

/// A key: a column name, quoted when it must be.
fn key(rng: &mut Gen) -> String {
    let name = rng.pick(COLUMNS);
    if !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// Up to `most` keys, distinct unless this value is spoilt.
fn keys(rng: &mut Gen, most: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for _ in 0..rng.between(0, most) {
        let k = key(rng);
        if out.contains(&k) && !rng.spoils() {
            continue;
        }
        out.push(k);
    }
    out
}

fn field_name(rng: &mut Gen, fields: &[Field]) -> String {
    match rng.below(30) {
        0 => "treshold".into(),
        1 => key(rng),
        _ => rng.pick(fields).name.to_string(),
    }
}

fn inline_table(rng: &mut Gen, fields: &'static [Field], depth: usize) -> String {
    let items: Vec<String> = some_fields(rng, fields, 3)
        .into_iter()
        .map(|(name, kind)| format!("{name} = {}", value(rng, &kind, depth + 1)))
        .collect();
    format!("{{ {} }}", items.join(", "))
}

/// Distinct fields of `fields`, in random order, sometimes with a typo or a repeat.
fn some_fields(rng: &mut Gen, fields: &'static [Field], most: usize) -> Vec<(String, Kind)> {
    let mut chosen: Vec<(String, Kind)> = Vec::new();
    for _ in 0..rng.between(0, most) {
        let f = rng.pick(fields);
        if !rng.spoils() && chosen.iter().any(|(n, _)| n == f.name) {
            continue;
        }
        chosen.push((f.name.to_string(), f.kind));
    }
    if rng.spoils() {
        let typo = if rng.percent(50) {
            "treshold".to_string()
        } else {
            key(rng)
        };
        chosen.push((typo, Kind::String));
    }
    chosen
}

/// A string literal holding `text` as it is.
fn quoted(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A whole document shaped like `ml.toml`: mostly known tables and keys, each once, values
/// mostly of the right kind, so that many cases reach typing and validation.
fn document(rng: &mut Gen) -> String {
    // Dotted keys (`execute.seed = 1`) go first: after a header they would belong to it.
    let mut dotted = String::new();
    let mut out = String::new();
    let mut tables: Vec<&Field> = Vec::new();
    for _ in 0..rng.between(2, 10) {
        let t = rng.pick(ROOT);
        if !rng.spoils() && tables.iter().any(|u| u.name == t.name) {
            continue;
        }
        tables.push(t);
    }
    for name in ["define", "locate"] {
        if rng.percent(90) && !tables.iter().any(|t| t.name == name) {
            tables.push(ROOT.iter().find(|t| t.name == name).expect("known table"));
        }
    }
    for table in tables {
        let Kind::Table(fields) = &table.kind else {
            continue;
        };
        let mut chosen = some_fields(rng, fields, 6);
        if table.name == "define" && rng.percent(90) {
            chosen.retain(|(n, _)| n != "target");
            let target = COLUMNS[rng.below(COLUMNS.len())];
            out.push_str(&format!("[define]\ntarget = {}\n", quoted(target)));
        } else if table.name == "locate" && rng.percent(90) {
            chosen.retain(|(n, _)| n != "path" && n != "sql");
            out.push_str("[locate]\npath = \"data/prostate.csv\"\n");
        } else if rng.percent(15) {
            // Dotted keys at the top level, or an inline table.
            for (name, kind) in &chosen {
                dotted.push_str(&format!(
                    "{}.{name} = {}\n",
                    table.name,
                    value(rng, kind, 0)
                ));
            }
            continue;
        } else {
            out.push_str(&format!("\n[{}]\n", table.name));
        }
        let mut subtables = String::new();
        for (name, kind) in chosen {
            match kind {
                Kind::Map(inner) if rng.percent(60) => {
                    subtables.push_str(&format!("\n[{}.{name}]\n", table.name));
                    let mut keys: Vec<String> = Vec::new();
                    for _ in 0..rng.between(0, 3) {
                        let k = if table.name == "prepare" && name == "derive" {
                            rng.pick(&["ratio", "r2", "AGE", "CAPSULE", "x"])
                                .to_string()
                        } else {
                            key(rng)
                        };
                        if keys.contains(&k) && !rng.spoils() {
                            continue;
                        }
                        keys.push(k.clone());
                        let v = if name == "derive" && rng.percent(90) {
                            quoted(&expression(rng, 0))
                        } else {
                            value(rng, inner, 1)
                        };
                        subtables.push_str(&format!("{k} = {v}\n"));
                    }
                }
                Kind::Table(inner) if rng.percent(40) => {
                    subtables.push_str(&format!("\n[{}.{name}]\n", table.name));
                    for (k, kind) in some_fields(rng, inner, 3) {
                        subtables.push_str(&format!("{k} = {}\n", value(rng, &kind, 1)));
                    }
                }
                _ => out.push_str(&format!("{name} = {}\n", value(rng, &kind, 0))),
            }
        }
        out.push_str(&subtables);
    }
    dotted + &out
}

/// A `--set KEY=VALUE` argument: a real key or junk, any value.
fn override_arg(rng: &mut Gen) -> String {
    let table = rng.pick(ROOT);
    let key = match &table.kind {
        Kind::Table(fields) if rng.percent(85) => {
            format!("{}.{}", table.name, field_name(rng, fields))
        }
        _ => rng
            .pick(&[
                "",
                "=",
                "a..b",
                "define",
                "x y",
                "\"q\".r",
                "define.target.x",
                "[define]",
            ])
            .to_string(),
    };
    let kind = match &table.kind {
        Kind::Table(fields) => fields
            .iter()
            .find(|f| key.ends_with(f.name))
            .map_or(Kind::String, |f| f.kind),
        _ => Kind::String,
    };
    let value = match rng.below(3) {
        0 => rng.awkward_number(),
        1 => value(rng, &kind, 0),
        _ => rng.junk(8),
    };
    if rng.percent(5) {
        key
    } else {
        format!("{key}={value}")
    }
}

fn generate(rng: &mut Rng) -> Input {
    let spoil = match rng.below(3) {
        0 => 0,
        _ => rng.between(1, 25) as u64,
    };
    let mut g = Gen {
        rng: rng.clone(),
        spoil,
    };
    let mut input = if g.percent(40) {
        let seed = g.pick(SEEDS);
        let mut bytes = repo_file(seed);
        let how = mutate(&mut g, &mut bytes);
        Input::new(bytes, format!("{seed} mutated: {how}"))
    } else {
        let mut bytes = document(&mut g).into_bytes();
        let how = if g.percent(25) {
            format!(
                "generated document, mutated: {}",
                mutate(&mut g, &mut bytes)
            )
        } else {
            format!("generated document (spoil {spoil}%)")
        };
        Input::new(bytes, how)
    };
    if g.percent(20) {
        input.args = (0..g.between(1, 3)).map(|_| override_arg(&mut g)).collect();
    }
    input
}

/// The error names a real position of `source` (or, where there is none, says why).
fn located(e: &ConfigError, source: &str, overrides: &[String]) -> Result<(), String> {
    let shown = format!("{e}");
    let _ = e.hint();
    let place = match e {
        ConfigError::BadOverride { arg, .. } => {
            return if overrides.contains(arg) {
                Ok(())
            } else {
                Err(format!("names `--set {arg}`, which was not given: {shown}"))
            }
        }
        ConfigError::NotFound { .. } | ConfigError::Read { .. } => {
            return Err(format!("a file error from text: {shown}"))
        }
        _ => e.place().expect("every other error has a place"),
    };
    match place {
        Place::File {
            path,
            line,
            column,
            source_line,
            ..
        } => {
            let lines: Vec<&str> = source.split('\n').collect();
            let Some(actual) = lines.get(line.wrapping_sub(1)) else {
                return Err(format!(
                    "line {line} is past the {} lines: {shown}",
                    lines.len()
                ));
            };
            if actual.trim_end_matches('\r') != source_line {
                return Err(format!(
                    "line {line} is shown as {source_line:?}, it is {actual:?}"
                ));
            }
            if *column == 0 || *column > source_line.chars().count() + 1 {
                return Err(format!(
                    "column {column} is outside line {line} {source_line:?}"
                ));
            }
            if path != Path::new("ml.toml")
                || !shown.starts_with(&format!("ml.toml:{line}:{column}: "))
            {
                return Err(format!(
                    "the message does not start with its place: {shown}"
                ));
            }
            Ok(())
        }
        Place::Override { arg } if overrides.contains(arg) => Ok(()),
        Place::Override { arg } => Err(format!("names `--set {arg}`, which was not given")),
        // A required top-level table or key that is absent has no position of its own.
        Place::WholeFile { .. } if matches!(e, ConfigError::MissingKey { key, .. } if !key.contains('.')) => {
            Ok(())
        }
        Place::WholeFile { .. } => Err(format!("no line:column for an error in the text: {shown}")),
    }
}

fn kind(e: &ConfigError) -> String {
    match e {
        ConfigError::NotFound { .. } => "not found",
        ConfigError::Read { .. } => "read",
        ConfigError::Syntax { .. } => "syntax",
        ConfigError::UnknownKey { .. } => "unknown key",
        ConfigError::WrongType { .. } => "wrong type",
        ConfigError::MissingKey { .. } => "missing key",
        ConfigError::InvalidValue { .. } => "invalid value",
        ConfigError::BadOverride { .. } => "bad --set",
    }
    .to_string()
}

#[test]
fn ml_toml_never_panics_and_locates_its_errors() {
    let property = Property {
        parser: "ml.toml",
        deadline: Duration::from_secs(5),
        memory: 64 << 20,
        reserved: 0,
        test_filter: "config::properties",
    };
    hostile::check(&property, generate, |input| {
        let source = input.text();
        let at = Path::new("ml.toml");
        let outcome = match parse(at, &source, &input.args) {
            Ok(_) => "ok".to_string(),
            Err(e) => {
                located(&e, &source, &input.args)?;
                kind(&e)
            }
        };
        let outcome = if input.how.starts_with("generated document (") {
            format!("gen {outcome}")
        } else {
            outcome
        };
        // The position lookup used for errors found later (a SQL error) is as robust.
        let _ = value_place(at, &source, &input.args, &["locate", "sql"]);
        let _ = value_place(at, &source, &input.args, &["prepare", "derive", "x"]);
        Ok(outcome)
    });
}

/// The case the property test found: a derive expression nested 100,000 deep overflowed the
/// stack (an abort, not an error) while `ml.toml` was checked.
#[test]
fn a_deeply_nested_derive_expression_is_a_located_error() {
    let deep = format!("{}1{}", "(".repeat(100_000), ")".repeat(100_000));
    let source = format!(
        "[define]\ntarget = \"CAPSULE\"\n[locate]\npath = \"data/prostate.csv\"\n[prepare.derive]\nx = \"{deep}\"\n"
    );
    let e = parse(Path::new("ml.toml"), &source, &[]).unwrap_err();
    assert!(e.to_string().starts_with("ml.toml:6:"), "{e}");
    assert!(e.to_string().contains("nested too deeply"), "{e}");
}

/// `ml.toml` as bytes, through [`super::load`]: a file that is not UTF-8 is a syntax error at
/// its first bad byte, not "cannot read" without a place (found with the property test's
/// invalid-UTF-8 mutations).
#[test]
fn a_file_that_is_not_utf8_is_located() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("ml.toml"),
        b"[define]\ntarget = \"CAP\xffSULE\"\n",
    )
    .unwrap();
    let e = super::load(dir.path(), &[]).unwrap_err();
    let place = e.place().and_then(Place::line_column);
    assert_eq!(place, Some((2, 14)), "{e}");
    assert!(e.to_string().contains("not UTF-8"), "{e}");
}
