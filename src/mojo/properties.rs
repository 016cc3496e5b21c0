//! Property and mutation tests of MOJO reading (harness: `crate::hostile`, docs/testing.md):
//! whatever the zip bytes, [`Mojo::load`], [`super::validate::validate`] and
//! [`super::canonical_digest`] return a value or an error and never panic (validate's own
//! `internal_error`, a panic it caught, counts as one), within time and memory; a MOJO that
//! loads scores any row without panicking and gives one probability per class; when validate
//! finds no error, it says scorable exactly when the loader loads it.

use std::io::{Cursor, Read, Write};
use std::time::Duration;

use super::validate::validate;
use super::{canonical_digest, ColumnKind, Mojo, Prediction, Value};
use crate::hostile::{self, mutate, repo_file, Input, Property, Rng};

const FIXTURES: &[&str] = &[
    "dl_bin",
    "dl_multi",
    "dl_reg",
    "drf_bin",
    "drf_bin_double",
    "drf_multi",
    "drf_reg",
    "drf_syn",
    "gbm_bin",
    "gbm_bin_balanced",
    "gbm_multi",
    "gbm_poisson",
    "gbm_reg",
    "gbm_syn",
    "glm_bin",
    "glm_multi",
    "glm_poisson",
    "glm_reg",
    "glm_syn",
    "se_bin",
    "se_multi",
    "se_reg",
    "xgb_bin",
    "xgb_multi",
    "xgb_reg",
    "xgb_syn",
    "xrt_bin",
    "xrt_multi",
    "xrt_reg",
];

fn entries(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).expect("a fixture zip");
    (0..zip.len())
        .map(|i| {
            let mut f = zip.by_index(i).expect("a fixture entry");
            let mut data = Vec::new();
            f.read_to_end(&mut data).expect("a fixture entry's bytes");
            (f.name().to_string(), data)
        })
        .collect()
}

fn zip_of(rng: &mut Rng, files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let method = if rng.percent(50) {
        zip::CompressionMethod::Stored
    } else {
        zip::CompressionMethod::Deflated
    };
    let opts = zip::write::SimpleFileOptions::default().compression_method(method);
    // The zip crate refuses to write a name twice: a repeat is written under an alias of the
    // same length and renamed in the bytes afterwards.
    let mut seen = std::collections::HashSet::new();
    let mut aliases = Vec::new();
    for (name, body) in files {
        let mut written = name.clone();
        if !seen.insert(name.clone()) && !name.is_empty() {
            let rest = &name[name.chars().next().map_or(0, char::len_utf8)..];
            let mut k = 1u8;
            loop {
                written = format!("{}{rest}", char::from(k));
                while written.len() < name.len() {
                    written.push(char::from(k));
                }
                if seen.insert(written.clone()) {
                    break;
                }
                k += 1;
            }
            aliases.push((written.clone(), name.clone()));
        }
        zip.start_file(written.as_str(), opts).expect("an entry");
        zip.write_all(body).expect("an entry's bytes");
    }
    let mut bytes = zip.finish().expect("a zip").into_inner();
    for (alias, name) in aliases {
        let (alias, name) = (alias.as_bytes(), name.as_bytes());
        if alias.len() != name.len() {
            continue;
        }
        let mut i = 0;
        while i + alias.len() <= bytes.len() {
            if &bytes[i..i + alias.len()] == alias {
                bytes[i..i + alias.len()].copy_from_slice(name);
                i += alias.len();
            } else {
                i += 1;
            }
        }
    }
    bytes
}

/// `model.ini` edits that keep it an ini file but change what it says.
#[allow(
    clippy::too_many_lines,
    reason = "a flat match over the ways the property test damages model.ini"
)]
fn edit_ini(rng: &mut Rng, text: &str) -> (String, String) {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    if lines.is_empty() {
        return (text.to_string(), "empty ini".into());
    }
    let i = rng.below(lines.len());
    let how;
    match rng.below(7) {
        0 | 1 => {
            // A value replaced by an awkward one (numbers, arrays, null).
            if let Some((k, _)) = lines[i].split_once('=') {
                let v = match rng.below(5) {
                    0 => rng.awkward_number(),
                    1 => "null".into(),
                    2 => format!(
                        "[{}]",
                        (0..rng.below(6))
                            .map(|_| rng.awkward_number())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    3 => String::new(),
                    _ => rng.junk(8),
                };
                how = format!("`{}` = {v:?}", k.trim());
                lines[i] = format!("{k}= {v}");
            } else {
                how = format!("line {i} replaced");
                lines[i] = rng.awkward_number();
            }
        }
        2 => {
            how = format!("line {i} removed");
            lines.remove(i);
        }
        3 => {
            how = format!("line {i} repeated");
            let l = lines[i].clone();
            let n = rng.between(1, 3);
            for _ in 0..n {
                lines.insert(i, l.clone());
            }
        }
        4 => {
            // A `[domains]` line pointing anywhere with any count.
            how = "domain line added".into();
            lines.push(format!(
                "{}: {} {}",
                rng.pick(&["0", "1", "7", "99", "-1", "18446744073709551616"]),
                rng.awkward_number(),
                rng.pick(&["d000.txt", "d001.txt", "../x", "missing.txt", ""])
            ));
        }
        5 => {
            // One of the keys every reader looks at, set to something strange.
            let key = *rng.pick(&[
                "n_features",
                "n_classes",
                "n_columns",
                "n_domains",
                "nums",
                "cats",
                "cat_offsets",
                "n_trees",
                "n_trees_per_class",
                "neurons",
                "mojo_version",
                "category",
                "supervised",
                "n_base_models",
                "base_model0",
                "submodel_dir_0",
                "metalearner",
                "beta",
                "family",
                "link",
                "booster",
                "n_features",
                "use_all_factor_levels",
                "escape_domain_values",
            ]);
            let v = match rng.below(4) {
                0 => rng.awkward_number(),
                1 => format!("[{}]", rng.awkward_number()),
                2 => "-1".into(),
                _ => rng
                    .pick(&[
                        "Binomial",
                        "Regression",
                        "Multinomial",
                        "true",
                        "models/",
                        "0",
                    ])
                    .to_string(),
            };
            how = format!("`{key}` = {v:?}");
            match lines
                .iter()
                .position(|l| l.split('=').next().map(str::trim) == Some(key))
            {
                Some(at) => lines[at] = format!("{key} = {v}"),
                None => lines.insert(1, format!("{key} = {v}")),
            }
        }
        _ => {
            how = format!("[columns]/[domains] lines shuffled at {i}");
            let j = rng.below(lines.len());
            lines.swap(i, j);
        }
    }
    let mut out = lines.join("\n");
    out.push('\n');
    (out, how)
}

/// A fixture with one entry edited (text-aware for `model.ini` and domains, bytes otherwise),
/// sometimes an entry dropped or added, then zipped again.
fn structural(rng: &mut Rng, name: &str, bytes: &[u8]) -> Input {
    let mut files = entries(bytes);
    let mut done = Vec::new();
    for _ in 0..rng.between(1, 2) {
        let i = rng.below(files.len());
        let entry = files[i].0.clone();
        match rng.below(10) {
            0..=4 if entry.ends_with("model.ini") => {
                let (text, how) = edit_ini(rng, &String::from_utf8_lossy(&files[i].1));
                files[i].1 = text.into_bytes();
                done.push(format!("{entry}: {how}"));
            }
            5 => {
                files.remove(i);
                done.push(format!("{entry} removed"));
            }
            6 => {
                let dup = files[i].clone();
                files.push(dup);
                done.push(format!("{entry} twice"));
            }
            _ => {
                // Tree, booster, domain or ini bytes damaged inside a sound zip.
                let how = mutate(rng, &mut files[i].1);
                done.push(format!("{entry}: {how}"));
            }
        }
    }
    if rng.percent(10) {
        let extra = rng.pick(&[
            "../escape.txt",
            "/abs",
            "experimental/x",
            "domains/",
            "a\\b",
            "models/../model.ini",
        ]);
        files.push((extra.to_string(), b"x".to_vec()));
        done.push(format!("entry `{extra}` added"));
    }
    Input::new(
        zip_of(rng, &files),
        format!("{name} rezipped, {}", done.join("; ")),
    )
}

/// The zip's own structure damaged: declared sizes, counts and offsets set to huge values in
/// the local headers, the central directory and its end record.
fn zip_fields(rng: &mut Rng, name: &str, mut bytes: Vec<u8>) -> Input {
    // Signatures: local header, central directory entry, end of central directory.
    let places: Vec<(usize, &str)> = (0..bytes.len().saturating_sub(4))
        .filter_map(|i| match &bytes[i..i + 4] {
            [0x50, 0x4b, 0x03, 0x04] => Some((i, "local")),
            [0x50, 0x4b, 0x01, 0x02] => Some((i, "central")),
            [0x50, 0x4b, 0x05, 0x06] => Some((i, "end")),
            _ => None,
        })
        .collect();
    let mut done = Vec::new();
    for _ in 0..rng.between(1, 3) {
        let Some(&(at, kind)) = (!places.is_empty()).then(|| rng.pick(&places)) else {
            break;
        };
        // (offset in the record, width) of the fields worth lying about.
        let fields: &[(usize, usize)] = match kind {
            "local" => &[(18, 4), (22, 4), (26, 2), (28, 2), (8, 2)],
            "central" => &[
                (20, 4),
                (24, 4),
                (28, 2),
                (30, 2),
                (32, 2),
                (42, 4),
                (10, 2),
            ],
            _ => &[(8, 2), (10, 2), (12, 4), (16, 4), (20, 2)],
        };
        let &(off, width) = rng.pick(fields);
        let value: u64 = match rng.below(4) {
            0 => u64::MAX,
            1 => 0,
            2 => rng.next_u64(),
            _ => 0x7fff_fff0,
        };
        let bytes_of = value.to_le_bytes();
        if at + off + width <= bytes.len() {
            bytes[at + off..at + off + width].copy_from_slice(&bytes_of[..width]);
            done.push(format!("{kind} header at {at} field +{off} = {value:#x}"));
        }
    }
    Input::new(
        bytes,
        format!("{name} with zip fields set: {}", done.join("; ")),
    )
}

fn generate(rng: &mut Rng) -> Input {
    let name = *rng.pick(FIXTURES);
    let bytes = repo_file(&format!("tests/fixtures/mojo/{name}.zip"));
    match rng.below(10) {
        0..=5 => structural(rng, name, &bytes),
        6 | 7 => zip_fields(rng, name, bytes),
        _ => {
            let mut bytes = bytes;
            let how = mutate(rng, &mut bytes);
            Input::new(bytes, format!("{name}.zip mutated: {how}"))
        }
    }
}

/// A few rows for `mojo`'s signature: real-looking values, missing ones, unseen levels, text
/// in numeric columns, extremes.
fn rows(rng: &mut Rng, mojo: &Mojo) -> Vec<Vec<String>> {
    (0..3)
        .map(|_| {
            mojo.signature()
                .iter()
                .map(|c| match (&c.kind, rng.below(6)) {
                    (_, 0) => String::new(),
                    (ColumnKind::Categorical(levels), 1..=3) if !levels.is_empty() => {
                        rng.pick(levels).clone()
                    }
                    (_, 4) => rng.awkward_number(),
                    (_, 5) => rng.junk(4),
                    _ => format!("{}", rng.below(100)),
                })
                .collect()
        })
        .collect()
}

fn scores(mojo: &Mojo, rng: &mut Rng) -> Result<(), String> {
    for row in rows(rng, mojo) {
        let values: Vec<Value> = row
            .iter()
            .map(|s| {
                if s.is_empty() {
                    Value::Missing
                } else {
                    Value::Text(s)
                }
            })
            .collect();
        let Ok(p) = mojo.score(&values) else {
            continue;
        };
        if let (
            Prediction::Class {
                label,
                probabilities,
            },
            Some(classes),
        ) = (&p, mojo.classes())
        {
            if probabilities.len() != classes.len() || *label >= classes.len().max(1) {
                return Err(format!(
                    "a prediction of {} probabilities and label {label} for {} classes",
                    probabilities.len(),
                    classes.len()
                ));
            }
        }
    }
    Ok(())
}

#[test]
fn mojos_never_panic_and_loading_agrees_with_validate() {
    let property = Property {
        parser: "mojo",
        deadline: Duration::from_secs(10),
        memory: 128 << 20,
        reserved: 0,
        test_filter: "mojo::properties",
    };
    hostile::check(&property, generate, |input| {
        let loaded = Mojo::load(&input.bytes);
        if let Ok(mojo) = &loaded {
            let _ = mojo.output_names();
            scores(mojo, &mut Rng::new(input.bytes.len() as u64))?;
        }
        let report = validate(&input.bytes);
        if let Some(p) = report.errors.iter().find(|p| p.code == "internal_error") {
            return Err(format!("validate caught a panic: {}", p.message));
        }
        let _ = report.render();
        if report.errors.is_empty() && report.scorable != loaded.is_ok() {
            return Err(format!(
                "validate says scorable = {} without errors, the loader says {:?}",
                report.scorable,
                loaded.as_ref().err()
            ));
        }
        let _ = canonical_digest(&input.bytes);
        Ok(match (&loaded, report.valid) {
            (Ok(_), true) => "loads, valid",
            (Ok(_), false) => "loads, invalid",
            (Err(_), true) => "refused, valid (unsupported)",
            (Err(_), false) => "refused, invalid",
        }
        .to_string())
    });
}

// ---------------------------------------------------------------------------------------------
// Regression tests: the cases the property test found, each reduced to one edit of a fixture.

/// A fixture with `edit` applied to the text of entry `name`.
fn edited(fixture: &str, name: &str, edit: impl Fn(&str) -> String) -> Vec<u8> {
    let files: Vec<(String, Vec<u8>)> =
        entries(&repo_file(&format!("tests/fixtures/mojo/{fixture}.zip")))
            .into_iter()
            .map(|(n, d)| {
                if n == name {
                    let text = edit(&String::from_utf8(d).unwrap());
                    (n, text.into_bytes())
                } else {
                    (n, d)
                }
            })
            .collect();
    zip_of(&mut Rng::new(0), &files)
}

fn load_error(bytes: &[u8]) -> String {
    let e = Mojo::load(bytes).expect_err("a damaged MOJO is refused");
    let report = validate(bytes);
    assert!(
        report.errors.iter().all(|p| p.code != "internal_error"),
        "{:?}",
        report.errors
    );
    e.to_string()
}

/// Case 70: `[columns]` emptied (a line replaced) in a supervised model: `0 - 1` underflowed.
#[test]
fn empty_columns_are_an_error() {
    let bytes = edited("glm_bin", "model.ini", |t| {
        let (head, rest) = t.split_once("[columns]").unwrap();
        let domains = &rest[rest.find("[domains]").unwrap()..];
        format!(
            "{}[columns]\n\n{domains}",
            head.replace("n_features = 7\n", "")
        )
    });
    assert!(load_error(&bytes).contains("`[columns]` is empty"));
}

/// Case 1574: a GLM whose categorical value is huge (a numeric column declared categorical)
/// overflowed `level + offset`; `cat_offsets` that decrease or overflow are refused.
#[test]
fn glm_one_hot_arithmetic_is_checked() {
    let bytes = edited("glm_bin", "model.ini", |t| {
        t.replace(
            "cat_offsets = [0, 4, 7, 9]",
            "cat_offsets = [0, 18446744073709551615, 7, 9]",
        )
    });
    assert!(load_error(&bytes).contains("`cat_offsets`, `cats` and `nums` disagree"));
    let mojo = Mojo::load(&repo_file("tests/fixtures/mojo/glm_bin.zip")).unwrap();
    let huge = vec![Value::Number(9.3e18); mojo.signature().len()];
    let _ = mojo.score(&huge);
    let raw = vec![9.3e18; mojo.signature().len()];
    let _ = mojo.score_encoded(&raw);
}

/// Case 2954: `base_models_num = 9223372036854775807` asked for a vector that large
/// (capacity overflow).
#[test]
fn a_huge_base_model_count_is_an_error() {
    let bytes = edited("se_reg", "model.ini", |t| {
        let n = t
            .lines()
            .find(|l| l.starts_with("base_models_num"))
            .unwrap();
        t.replace(n, "base_models_num = 9223372036854775807")
    });
    assert!(load_error(&bytes).contains("base models"));
}

/// A StackedEnsemble whose member is itself (`submodel_dir_0` = its own directory) recursed
/// until the stack overflowed.
#[test]
fn a_self_nested_ensemble_is_an_error() {
    let bytes = edited("se_bin", "model.ini", |t| {
        let dir = t.lines().find(|l| l.starts_with("submodel_dir_0")).unwrap();
        t.replace(dir, "submodel_dir_0 = ")
    });
    assert!(load_error(&bytes).contains("nested deeper than"));
}

/// A zip whose central directory declares a 2 GB entry: the loader reserved that much before
/// reading (the property test's memory budget stopped it); now it reads what is there.
#[test]
fn a_declared_entry_size_is_not_an_allocation() {
    let mut bytes = repo_file("tests/fixtures/mojo/glm_bin.zip");
    let cd = (0..bytes.len() - 4)
        .find(|&i| bytes[i..i + 4] == [0x50, 0x4b, 0x01, 0x02])
        .unwrap();
    bytes[cd + 24..cd + 28].copy_from_slice(&0x7fff_fff0u32.to_le_bytes());
    hostile::within_memory(
        64 << 20,
        "a_declared_entry_size_is_not_an_allocation",
        || {
            assert!(Mojo::load(&bytes).is_err());
            assert!(canonical_digest(&bytes).is_err());
        },
    );
}

/// A tree file whose node says its left subtree is -1 bytes long (`usize` overflow), or zero
/// bytes (the right subtree re-reads the left one: exponential decoding).
#[test]
fn tree_subtree_sizes_must_move_forward() {
    let tree = entries(&repo_file("tests/fixtures/mojo/gbm_bin.zip"))
        .into_iter()
        .find(|(n, _)| n == "trees/t00_000.bin")
        .unwrap()
        .1;
    // The root: type, column (2), NA direction, split (4), then the left size.
    let lmask = tree[0] & 51;
    assert!(lmask < 4, "the root's left child is not a leaf");
    let width = [1, 2, 3, 4][lmask as usize];
    let at = 8;
    for size in [0u32, u32::MAX] {
        let mut damaged = tree.clone();
        damaged[at..at + width].copy_from_slice(&size.to_le_bytes()[..width]);
        let bytes = {
            let files: Vec<(String, Vec<u8>)> =
                entries(&repo_file("tests/fixtures/mojo/gbm_bin.zip"))
                    .into_iter()
                    .map(|(n, d)| {
                        if n == "trees/t00_000.bin" {
                            (n, damaged.clone())
                        } else {
                            (n, d)
                        }
                    })
                    .collect();
            zip_of(&mut Rng::new(0), &files)
        };
        let e = load_error(&bytes);
        assert!(e.contains("t00_000.bin"), "{e}");
    }
}

/// One-hot slots of any double (a damaged model may call a numeric column categorical), and
/// of an empty slot range: no overflow, no slot outside the range.
#[test]
fn one_hot_index_takes_any_double() {
    use super::row::one_hot_index;
    assert_eq!(one_hot_index(9.3e18, 5, 8, true), Some(7));
    assert_eq!(one_hot_index(-9.3e18, 5, 8, false), None);
    assert_eq!(one_hot_index(f64::NAN, 0, 0, true), None);
    assert_eq!(one_hot_index(f64::NAN, 3, 3, true), None);
    assert_eq!(one_hot_index(1.0, 3, 6, true), Some(4));
}
