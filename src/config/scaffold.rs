//! `mlbuild init`: the `ml.toml` a project starts from, written from a survey of its data so
//! that the first `mlbuild run` passes its own gate.
//!
//! The survey reads the header and at most [`SURVEY_ROWS`] rows (CSV only: `init` describes a
//! file). Per column it counts missing values, distinct values (exactly, as hashes), values with
//! a space and their mean length, and whether every value is an integer. From that:
//! - **identifiers** — every value distinct, and a name like `id`, `*_id`, `uuid`, `key`, or an
//!   integer column counting rows — go to `define.ignore` (a model that learns row numbers
//!   learns nothing);
//! - **free text** — mostly distinct strings, long or made of words — go to `define.ignore` too,
//!   with a comment showing the `[prepare.text]` line that turns the column into Word2Vec
//!   features instead;
//! - `confirm.max_null_fraction` is raised above the most-missing remaining column (with a
//!   margin, and a comment naming it) when that is above the default 0.5.
//!
//! Each choice is a comment in the file and a line printed by `init`.

use std::collections::HashSet;
use std::path::Path;

use crate::table::{is_missing, TableError};

/// How many rows the survey reads.
pub const SURVEY_ROWS: usize = 100_000;

/// What the survey found about one column.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnSurvey {
    pub name: String,
    pub present: usize,
    pub missing: usize,
    pub distinct: usize,
    pub integers: bool,
    pub numeric: bool,
    pub with_space: usize,
    pub mean_len: f64,
}

/// The survey of a data file's first rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Survey {
    pub rows: usize,
    pub columns: Vec<ColumnSurvey>,
}

/// Surveys the first [`SURVEY_ROWS`] rows of the CSV at `path`.
pub fn survey(path: &Path) -> Result<Survey, TableError> {
    let header = crate::table::read_header(path)?;
    let mut seen: Vec<HashSet<u64>> = vec![HashSet::new(); header.len()];
    let mut cols: Vec<ColumnSurvey> = header
        .iter()
        .map(|name| ColumnSurvey {
            name: name.clone(),
            present: 0,
            missing: 0,
            distinct: 0,
            integers: true,
            numeric: true,
            with_space: 0,
            mean_len: 0.0,
        })
        .collect();
    let mut lengths = vec![0usize; header.len()];
    let mut rows = 0;
    crate::table::for_each_record(path, SURVEY_ROWS, |record| {
        rows += 1;
        for (i, field) in record.iter().enumerate().take(cols.len()) {
            let c = &mut cols[i];
            if is_missing(field) {
                c.missing += 1;
                continue;
            }
            c.present += 1;
            let f = field.trim();
            lengths[i] += f.chars().count();
            if f.contains(' ') {
                c.with_space += 1;
            }
            if c.numeric && f.parse::<f64>().is_err() {
                c.numeric = false;
            }
            if c.integers && f.parse::<i64>().is_err() {
                c.integers = false;
            }
            seen[i].insert(hash(f));
        }
    })?;
    for (i, c) in cols.iter_mut().enumerate() {
        c.distinct = seen[i].len();
        c.mean_len = if c.present == 0 {
            0.0
        } else {
            lengths[i] as f64 / c.present as f64
        };
    }
    Ok(Survey {
        rows,
        columns: cols,
    })
}

fn hash(s: &str) -> u64 {
    let h = blake3::hash(s.as_bytes());
    u64::from_le_bytes(h.as_bytes()[..8].try_into().expect("8 bytes"))
}

/// Why a column is left out of the features.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Identifier,
    Text,
}

/// A column `init` puts in `define.ignore`, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Ignored {
    pub name: String,
    pub kind: Kind,
    pub why: String,
}

fn looks_like_id_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    lower == "id"
        || words
            .last()
            .is_some_and(|w| matches!(*w, "id" | "uuid" | "guid" | "key"))
        || (name.len() > 2 && name.ends_with("Id"))
        || name.ends_with("ID")
}

/// The columns to leave out: identifiers and free text (the target never).
pub fn ignored(survey: &Survey, target: &str) -> Vec<Ignored> {
    let mut out = Vec::new();
    for c in &survey.columns {
        if c.name == target || c.present < 20 {
            continue;
        }
        let unique = c.distinct == c.present;
        let named_or_counting =
            looks_like_id_name(&c.name) || (c.integers && c.present == survey.rows);
        let text = !c.numeric
            && c.distinct * 2 > c.present
            && (c.mean_len >= 30.0 || c.with_space * 2 > c.present);
        let (kind, why) = if unique && named_or_counting {
            (Kind::Identifier, None)
        } else if text {
            (
                Kind::Text,
                Some(format!(
                    "free text: {} distinct values in {} rows, {:.0} characters on average",
                    c.distinct, c.present, c.mean_len
                )),
            )
        } else if unique && !c.numeric && c.present > 50 {
            (Kind::Identifier, None)
        } else {
            continue;
        };
        out.push(Ignored {
            name: c.name.clone(),
            kind,
            why: why.unwrap_or_else(|| {
                format!(
                    "a different value in each of the {} rows read: an identifier",
                    c.present
                )
            }),
        });
    }
    out
}

/// The default `confirm.max_null_fraction`.
const DEFAULT_MAX_NULL: f64 = 0.5;

/// `confirm.max_null_fraction` for the data when the default would fail it: the largest missing
/// fraction among the kept columns plus a margin of 0.05 (the survey may not have read every
/// row), rounded up to a hundredth; with the column it comes from.
pub fn null_limit(survey: &Survey, ignored: &[Ignored]) -> Option<(f64, String, f64)> {
    let rows = survey.rows.max(1) as f64;
    let worst = survey
        .columns
        .iter()
        .filter(|c| !ignored.iter().any(|i| i.name == c.name))
        .map(|c| (c.missing as f64 / rows, &c.name))
        .max_by(|a, b| a.0.total_cmp(&b.0))?;
    if worst.0 + 0.05 <= DEFAULT_MAX_NULL {
        return None;
    }
    let limit = (((worst.0 + 0.05) * 100.0).ceil() / 100.0).min(1.0);
    Some((limit, worst.1.clone(), worst.0))
}

/// A TOML string: quoted, with `"`, `\` and control characters escaped.
fn quote(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// The `ml.toml` for project `name` on `data` with `target`, and the notes `init` prints.
pub fn render(name: &str, data: &str, target: &str, survey: &Survey) -> (String, Vec<String>) {
    let ignored = ignored(survey, target);
    let mut notes = Vec::new();
    let mut text = format!(
        "[project]\nname = {}\n\n[define]\ntarget = {}   # problem and metric are inferred from it\n# threshold = 0.7\n",
        quote(name),
        quote(target)
    );
    if !ignored.is_empty() {
        text.push_str("ignore = [\n");
        for i in &ignored {
            text.push_str(&format!("    {},   # {}\n", quote(&i.name), i.why));
            if i.kind == Kind::Text {
                text.push_str(&format!(
                    "    # to learn from it instead: remove it here and add, under [prepare.text], {} = {{ vec_size = 16 }}\n",
                    quote(&i.name)
                ));
            }
            notes.push(match i.kind {
                Kind::Identifier => format!(
                    "ignoring `{}`: {} (remove it from `define.ignore` if it is a feature)",
                    i.name, i.why
                ),
                Kind::Text => format!(
                    "ignoring `{}`: {}; to use it as features, move it to `[prepare.text]` (Word2Vec, see docs/config.md)",
                    i.name, i.why
                ),
            });
        }
        text.push_str("]\n");
    }
    text.push_str(&format!(
        "\n[locate]\npath = {}\n\n[prepare]\nholdout = 0.2\nseed = 42\n",
        quote(data)
    ));
    let mut confirm = String::new();
    // A file smaller than the gate's row limit gets its own row count as the limit.
    let min_rows = super::schema::default_min_rows();
    let rows = survey.rows as u64;
    if rows < min_rows {
        confirm.push_str(&format!(
            "# the data has {rows} rows; the default limit is {min_rows}\nmin_rows = {rows}\n"
        ));
        notes.push(format!(
            "the data has only {rows} rows: `confirm.min_rows` set to {rows} (the default {min_rows} would stop the run); a model trained on so few rows says little"
        ));
    }
    if let Some((limit, column, fraction)) = null_limit(survey, &ignored) {
        confirm.push_str(&format!(
            "# column `{}` is {:.0}% missing in the rows read; the default limit is 0.5\nmax_null_fraction = {limit}\n",
            column.replace('\n', " "),
            fraction * 100.0
        ));
        notes.push(format!(
            "column `{column}` is {:.0}% missing: `confirm.max_null_fraction` set to {limit} (the default 0.5 would stop the run); consider `define.ignore` for it",
            fraction * 100.0
        ));
    }
    if !confirm.is_empty() {
        text.push_str(&format!("\n[confirm]\n{confirm}"));
    }
    text.push_str("\n[execute]\nmax_models = 4\nseed = 42\n");
    (text, notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn survey_of(csv: &str) -> Survey {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.csv");
        std::fs::write(&path, csv).unwrap();
        survey(&path).unwrap()
    }

    #[test]
    fn identifiers_text_and_missing_columns_are_found() {
        let mut csv = String::from("Id,age,notes,review,price\n");
        for i in 0..200 {
            let notes = if i % 4 == 0 { "x" } else { "" };
            csv.push_str(&format!(
                "{},{},{notes},\"the product number {i} was fine, said reviewer {}\",{}\n",
                i + 1,
                20 + i % 50,
                i * 7,
                100 + i % 13
            ));
        }
        let s = survey_of(&csv);
        assert_eq!(s.rows, 200);
        let ignored = ignored(&s, "price");
        let names: Vec<(&str, &Kind)> =
            ignored.iter().map(|i| (i.name.as_str(), &i.kind)).collect();
        assert_eq!(names, [("Id", &Kind::Identifier), ("review", &Kind::Text)]);
        let (limit, column, fraction) = null_limit(&s, &ignored).unwrap();
        assert_eq!(column, "notes");
        assert!((fraction - 0.75).abs() < 1e-9);
        assert_eq!(limit, 0.8);
        let (text, notes) = render("p", "data/d.csv", "price", &s);
        let parsed = crate::config::parse(Path::new("ml.toml"), &text, &[]).unwrap();
        assert_eq!(parsed.define.ignore, ["Id", "review"]);
        assert_eq!(parsed.confirm.max_null_fraction, 0.8);
        assert!(
            text.contains("[prepare.text], \"review\" = { vec_size = 16 }"),
            "{text}"
        );
        assert_eq!(notes.len(), 3, "{notes:?}");
    }

    #[test]
    fn a_plain_file_gets_the_plain_template() {
        let mut csv = String::from("a,b,y\n");
        for i in 0..100 {
            csv.push_str(&format!("{},{},{}\n", i % 7, i % 3, i % 2));
        }
        let s = survey_of(&csv);
        let (text, notes) = render("p", "d.csv", "y", &s);
        assert!(notes.is_empty(), "{notes:?}");
        assert!(!text.contains("ignore"), "{text}");
        assert!(!text.contains("[confirm]"), "{text}");
        crate::config::parse(Path::new("ml.toml"), &text, &[]).unwrap();
    }

    /// A file with fewer rows than the gate's limit gets its row count as the limit (the
    /// written project failed its own gate), with a note; with missing values too, both go in
    /// one `[confirm]` table.
    #[test]
    fn a_file_smaller_than_the_gate_gets_its_row_count_as_the_limit() {
        let s = survey_of("a,b,y\n1,,0\n2,,1\n3,,0\n4,5,1\n5,,0\n6,,1\n7,,0\n");
        assert_eq!(s.rows, 7);
        let (text, notes) = render("p", "d.csv", "y", &s);
        let parsed = crate::config::parse(Path::new("ml.toml"), &text, &[]).unwrap();
        assert_eq!(parsed.confirm.min_rows, 7);
        assert!(parsed.confirm.max_null_fraction > 0.85, "{text}");
        assert_eq!(text.matches("[confirm]").count(), 1, "{text}");
        assert!(
            notes
                .iter()
                .any(|n| n.starts_with("the data has only 7 rows")),
            "{notes:?}"
        );
    }

    #[test]
    fn names_that_need_quoting_are_quoted() {
        let csv = "we\"ird id,y\n".to_string()
            + &(0..30)
                .map(|i| format!("{i},{}\n", i % 2))
                .collect::<String>();
        let s = survey_of(&csv);
        let (text, _) = render("my \"p\"", "d\\x.csv", "y", &s);
        let parsed = crate::config::parse(Path::new("ml.toml"), &text, &[]).unwrap();
        assert_eq!(parsed.define.ignore, ["we\"ird id"]);
    }
}
