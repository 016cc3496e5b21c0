//! The shape of `ml.toml` as a table of keys, checked on the spanned tree before serde sees it.
//!
//! serde's own errors know neither where a value was nor how to say "did you mean": so unknown
//! keys, wrong types and missing required keys are found here, with positions, and typed
//! deserialisation afterwards cannot fail on shape. This table must list exactly the fields of
//! `schema.rs`; a test serialises a fully populated `Config` and compares the key sets.

use std::path::Path;

use super::document::{Entry, Node, Origin, Value};
use super::error::{ConfigError, Place};

/// What a key holds.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    String,
    /// A non-negative integer no larger than the given bound.
    Unsigned(u64),
    /// A float; integers are accepted too (`threshold = 1`).
    Number,
    StringArray,
    /// An array of strings, integers, floats or booleans (`locate.params`).
    ScalarArray,
    /// A string from a fixed, lowercase set.
    Choice(&'static [&'static str]),
    /// A table with free keys whose values come from a fixed set (`prepare.types`).
    ChoiceMap(&'static [&'static str]),
    Table(&'static [Field]),
    Boolean,
    /// A string or a number (a value written into the data, e.g. an imputation constant).
    Scalar,
    /// A table with free keys (column names), each value of the given kind.
    Map(&'static Kind),
    /// One of two kinds, told apart by the value's TOML type (`"mean"` or `{ constant = 0 }`).
    Either(&'static Kind, &'static Kind),
    /// An array of tables (`[[steps]]`), each checked against the fields.
    TableArray(&'static [Field]),
    /// A table whose keys and values are the user's own (`[[steps]] params`).
    FreeTable,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Field {
    pub name: &'static str,
    pub kind: Kind,
    /// `Some(example line)` for a required key.
    pub required: Option<&'static str>,
}

const fn optional(name: &'static str, kind: Kind) -> Field {
    Field {
        name,
        kind,
        required: None,
    }
}

const fn required(name: &'static str, kind: Kind, example: &'static str) -> Field {
    Field {
        name,
        kind,
        required: Some(example),
    }
}

pub(crate) const PROBLEMS: &[&str] = &["binary", "multiclass", "regression"];
pub(crate) const COLUMN_TYPES: &[&str] = &super::ColumnType::NAMES;
const U32: Kind = Kind::Unsigned(u32::MAX as u64);
const U64: Kind = Kind::Unsigned(i64::MAX as u64);
pub(crate) const IMPUTE_STRATEGIES: &[&str] = &["mean", "median", "mode"];
/// `prepare.impute.COLUMN`: a strategy name or `{ constant = VALUE }`.
const IMPUTE: Kind = Kind::Either(
    &Kind::Choice(IMPUTE_STRATEGIES),
    &Kind::Table(&[required("constant", Kind::Scalar, "constant = 0")]),
);
/// `prepare.text.COLUMN`: Word2Vec parameters.
const TEXT: Kind = Kind::Table(&[
    optional("vec_size", U32),
    optional("epochs", U32),
    optional("min_word_freq", U32),
    optional("window_size", U32),
]);
/// `[modify.escalate]`, `[conclude.deploy]`: notification hooks.
const HOOKS: Kind = Kind::Table(&[
    optional("webhook", Kind::String),
    optional("command", Kind::String),
]);

/// `[[steps]]`: a user step.
const USER_STEP: &[Field] = &[
    required("name", Kind::String, "name = \"featurize\""),
    required("after", Kind::String, "after = \"prepare\""),
    required(
        "run",
        Kind::StringArray,
        "run = [\"python3\", \"featurize.py\", \"{out.features}\"]",
    ),
    optional("inputs", Kind::StringArray),
    optional("uses", Kind::StringArray),
    optional("params", Kind::FreeTable),
    optional("env", Kind::StringArray),
    optional("tools", Kind::StringArray),
    optional("outputs", Kind::Map(&Kind::String)),
    optional("cache", Kind::Boolean),
    optional("provides", Kind::StringArray),
];

pub(crate) const ROOT: &[Field] = &[
    optional("project", Kind::Table(&[optional("name", Kind::String)])),
    required(
        "define",
        Kind::Table(&[
            required("target", Kind::String, "target = \"CAPSULE\""),
            optional("problem", Kind::Choice(PROBLEMS)),
            optional("metric", Kind::String),
            optional("threshold", Kind::Number),
            optional("ignore", Kind::StringArray),
        ]),
        "[define] target = \"CAPSULE\"",
    ),
    required(
        "locate",
        Kind::Table(&[
            optional("path", Kind::String),
            optional("delimiter", Kind::String),
            optional("header", Kind::Boolean),
            optional("na_strings", Kind::StringArray),
            optional("sql", Kind::String),
            optional("url_env", Kind::String),
            optional("params", Kind::ScalarArray),
            optional(
                "incremental",
                Kind::Table(&[
                    required("column", Kind::String, "column = \"updated_at\""),
                    optional("key", Kind::String),
                ]),
            ),
        ]),
        "[locate] path = \"data/train.csv\"",
    ),
    optional(
        "prepare",
        Kind::Table(&[
            optional("types", Kind::ChoiceMap(COLUMN_TYPES)),
            optional("drop", Kind::StringArray),
            optional("holdout", Kind::Number),
            optional("seed", U64),
            optional("sample", Kind::Number),
            optional("stratify", Kind::Boolean),
            optional("rename", Kind::Map(&Kind::String)),
            optional("impute", Kind::Map(&IMPUTE)),
            optional("derive", Kind::Map(&Kind::String)),
            optional("text", Kind::Map(&TEXT)),
        ]),
    ),
    optional(
        "confirm",
        Kind::Table(&[
            optional("min_rows", U64),
            optional("max_null_fraction", Kind::Number),
            optional("max_null_fraction_overall", Kind::Number),
            optional("required", Kind::ChoiceMap(COLUMN_TYPES)),
            optional("min_class_fraction", Kind::Number),
            optional("unique", Kind::StringArray),
            optional(
                "drift",
                Kind::Table(&[
                    optional("enabled", Kind::Boolean),
                    optional("psi", Kind::Number),
                ]),
            ),
        ]),
    ),
    optional(
        "execute",
        Kind::Table(&[
            optional("max_models", U32),
            optional("seed", U64),
            optional("nfolds", U32),
            optional("include_algos", Kind::StringArray),
            optional("exclude_algos", Kind::StringArray),
            optional("sort_metric", Kind::String),
        ]),
    ),
    optional(
        "monitor",
        Kind::Table(&[
            optional("baseline", Kind::String),
            optional("min_improvement", Kind::Number),
            optional("shap_rows", U32),
        ]),
    ),
    optional(
        "modify",
        Kind::Table(&[optional("max_attempts", U32), optional("escalate", HOOKS)]),
    ),
    optional(
        "conclude",
        Kind::Table(&[
            optional("promote", Kind::StringArray),
            optional("deploy", HOOKS),
        ]),
    ),
    optional(
        "h2o",
        Kind::Table(&[
            optional("url", Kind::String),
            optional("jar", Kind::String),
            optional("version", Kind::String),
            optional("nodes", U32),
            optional("threads", U32),
            optional("memory", Kind::String),
            optional("exchange_dir", Kind::String),
        ]),
    ),
    optional(
        "cache",
        Kind::Table(&[
            optional("remote", Kind::String),
            optional("read_only", Kind::Boolean),
            optional("keep_runs", U32),
        ]),
    ),
    optional("steps", Kind::TableArray(USER_STEP)),
];

/// Turns origins into places; shared by the structural and the semantic checks.
pub(crate) struct Locator<'a> {
    pub path: &'a Path,
    pub source: &'a str,
    pub overrides: &'a [String],
}

impl Locator<'_> {
    /// The place of `origin`, or of `fallback` when `origin` has no span of its own.
    pub fn place(&self, origin: &Origin, fallback: &Origin) -> Place {
        match (origin, fallback) {
            (Origin::File(span), _) => Place::in_file(self.path, self.source, span.clone()),
            (Origin::Override(i), _) => Place::Override {
                arg: self.overrides[*i].clone(),
            },
            (Origin::Implicit, Origin::Implicit) => Place::WholeFile {
                path: self.path.into(),
            },
            (Origin::Implicit, fallback) => self.place(fallback, &Origin::Implicit),
        }
    }

    pub fn key_place(&self, entry: &Entry) -> Place {
        self.place(&entry.key_origin, &entry.node.origin)
    }

    pub fn value_place(&self, entry: &Entry) -> Place {
        self.place(&entry.node.origin, &entry.key_origin)
    }
}

/// Checks the whole document against [`ROOT`].
pub(crate) fn check(doc: &Node, at: &Locator) -> Result<(), ConfigError> {
    let whole = Entry {
        key: String::new(),
        key_origin: Origin::Implicit,
        node: doc.clone(),
    };
    check_table(&whole, "", ROOT, at)
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

fn check_table(
    table: &Entry,
    prefix: &str,
    fields: &'static [Field],
    at: &Locator,
) -> Result<(), ConfigError> {
    let entries = table.node.entries().unwrap_or_default();
    for entry in entries {
        let key = join(prefix, &entry.key);
        let Some(field) = fields.iter().find(|f| f.name == entry.key) else {
            let names: Vec<&str> = fields.iter().map(|f| f.name).collect();
            // A header (`[defne]`) spans from its `[`, before the key; `key = {..}` does not.
            let is_table = matches!(&entry.node.value, Value::Table(_))
                && match (&entry.node.origin, &entry.key_origin) {
                    (Origin::File(value), Origin::File(key)) => value.start < key.start,
                    _ => false,
                };
            return Err(ConfigError::UnknownKey {
                at: Box::new(at.key_place(entry)),
                suggestion: crate::suggest::closest(&entry.key, names.iter().copied())
                    .map(str::to_string),
                valid: names.iter().map(|n| n.to_string()).collect(),
                is_table,
                key,
            });
        };
        check_value(entry, &key, field.kind, at)?;
    }
    for field in fields {
        let Some(example) = field.required else {
            continue;
        };
        if entries.iter().any(|e| e.key == field.name) {
            continue;
        }
        let is_table = matches!(field.kind, Kind::Table(_));
        let place = if prefix.is_empty() {
            Place::WholeFile {
                path: at.path.into(),
            }
        } else {
            at.value_place(table)
        };
        return Err(ConfigError::MissingKey {
            at: Box::new(place),
            key: join(prefix, field.name),
            is_table,
            example: example.to_string(),
        });
    }
    Ok(())
}

#[allow(
    clippy::too_many_lines,
    reason = "one flat match: each kind against each TOML value"
)]
fn check_value(entry: &Entry, key: &str, kind: Kind, at: &Locator) -> Result<(), ConfigError> {
    let wrong = |expected: &str| ConfigError::WrongType {
        at: Box::new(at.value_place(entry)),
        key: key.to_string(),
        expected: expected.to_string(),
        found: describe(&entry.node.value),
    };
    match (kind, &entry.node.value) {
        (Kind::String, Value::String(_)) => Ok(()),
        (Kind::String, _) => Err(wrong("a string")),
        (Kind::Number, Value::Float(_) | Value::Integer(_)) => Ok(()),
        (Kind::Number, _) => Err(wrong("a number")),
        (Kind::Unsigned(max), Value::Integer(i)) if *i >= 0 && *i as u64 <= max => Ok(()),
        (Kind::Unsigned(max), Value::Integer(i)) if *i >= 0 => Err(ConfigError::InvalidValue {
            at: Box::new(at.value_place(entry)),
            key: key.to_string(),
            message: format!("`{key}` must be at most {max}, found {i}"),
            hint: None,
        }),
        (Kind::Unsigned(_), _) => Err(wrong("a non-negative integer")),
        (Kind::StringArray, Value::Array(items)) => {
            check_elements(entry, key, at, items, "a string", |v| {
                matches!(v, Value::String(_))
            })
        }
        (Kind::StringArray, _) => Err(wrong("an array of strings")),
        (Kind::ScalarArray, Value::Array(items)) => {
            check_elements(entry, key, at, items, "a string, number or boolean", |v| {
                !matches!(v, Value::Array(_) | Value::Table(_) | Value::Datetime(_))
            })
        }
        (Kind::ScalarArray, _) => Err(wrong("an array of values")),
        (Kind::Choice(choices), Value::String(s)) => check_choice(entry, key, s, choices, at),
        (Kind::Choice(choices), _) => Err(wrong(&format!("one of {}", list(choices)))),
        (Kind::ChoiceMap(choices), Value::Table(entries)) => {
            for column in entries {
                let column_key = join(key, &quote_key(&column.key));
                match &column.node.value {
                    Value::String(s) => check_choice(column, &column_key, s, choices, at)?,
                    _ => check_value(column, &column_key, Kind::Choice(choices), at)?,
                }
            }
            Ok(())
        }
        (Kind::ChoiceMap(_), _) => Err(wrong("a table")),
        (Kind::Table(fields), Value::Table(_)) => check_table(entry, key, fields, at),
        (Kind::Table(_), _) => Err(wrong("a table")),
        (Kind::Boolean, Value::Boolean(_)) => Ok(()),
        (Kind::Boolean, _) => Err(wrong("a boolean (`true` or `false`)")),
        (Kind::Scalar, Value::String(_) | Value::Integer(_) | Value::Float(_)) => Ok(()),
        (Kind::Scalar, _) => Err(wrong("a string or a number")),
        (Kind::Map(inner), Value::Table(entries)) => {
            for column in entries {
                check_value(column, &join(key, &quote_key(&column.key)), *inner, at)?;
            }
            Ok(())
        }
        (Kind::Map(_), _) => Err(wrong("a table")),
        (Kind::TableArray(fields), Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let element = Entry {
                    key: String::new(),
                    key_origin: entry.node.origin.clone(),
                    node: item.clone(),
                };
                let element_key = format!("{key}[{i}]");
                match &item.value {
                    Value::Table(_) => check_table(&element, &element_key, fields, at)?,
                    other => {
                        return Err(ConfigError::WrongType {
                            at: Box::new(at.value_place(&element)),
                            key: element_key,
                            expected: "a table (`[[steps]]`)".into(),
                            found: describe(other),
                        })
                    }
                }
            }
            Ok(())
        }
        (Kind::TableArray(_), _) => Err(wrong("an array of tables (`[[steps]]`)")),
        (Kind::FreeTable, Value::Table(_)) => Ok(()),
        (Kind::FreeTable, _) => Err(wrong("a table")),
        (Kind::Either(a, b), value) => {
            let fits = |k: &Kind| match k {
                Kind::Table(_) | Kind::Map(_) | Kind::ChoiceMap(_) => {
                    matches!(value, Value::Table(_))
                }
                Kind::String | Kind::Choice(_) => matches!(value, Value::String(_)),
                _ => true,
            };
            match (fits(a), fits(b)) {
                (true, _) => check_value(entry, key, *a, at),
                (false, true) => check_value(entry, key, *b, at),
                (false, false) => Err(wrong(&format!("{} or {}", expects(a), expects(b)))),
            }
        }
    }
}

/// What a kind is called in "expects …" messages.
fn expects(kind: &Kind) -> String {
    match kind {
        Kind::Choice(choices) => format!("one of {}", list(choices)),
        Kind::Table(fields) if fields.len() == 1 => {
            format!("a table `{{ {} = … }}`", fields[0].name)
        }
        Kind::String => "a string".into(),
        _ => "a table".into(),
    }
}

/// Checks every element of an array value, naming the first wrong one by index and position.
fn check_elements(
    entry: &Entry,
    key: &str,
    at: &Locator,
    items: &[Node],
    expected: &str,
    ok: impl Fn(&Value) -> bool,
) -> Result<(), ConfigError> {
    for (i, item) in items.iter().enumerate() {
        if !ok(&item.value) {
            let element = Entry {
                key: String::new(),
                key_origin: entry.node.origin.clone(),
                node: item.clone(),
            };
            return Err(ConfigError::WrongType {
                at: Box::new(at.value_place(&element)),
                key: format!("{key}[{i}]"),
                expected: expected.to_string(),
                found: describe(&item.value),
            });
        }
    }
    Ok(())
}

fn check_choice(
    entry: &Entry,
    key: &str,
    value: &str,
    choices: &'static [&'static str],
    at: &Locator,
) -> Result<(), ConfigError> {
    if choices.contains(&value) {
        return Ok(());
    }
    Err(ConfigError::InvalidValue {
        at: Box::new(at.value_place(entry)),
        key: key.to_string(),
        message: format!("`{key}` must be one of {}, found {value:?}", list(choices)),
        hint: crate::suggest::closest(value, choices.iter().copied())
            .map(|s| format!("did you mean `{s}`?")),
    })
}

/// `a`, `b`, `c` for messages.
pub(crate) fn list(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A column name as it would be written in a dotted key.
fn quote_key(key: &str) -> String {
    if !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        key.to_string()
    } else {
        format!("{key:?}")
    }
}

/// A value's type and, for scalars, the value itself: `a string ("four")`.
fn describe(value: &Value) -> String {
    match value {
        Value::String(s) => format!("a string ({s:?})"),
        Value::Integer(i) => format!("an integer ({i})"),
        Value::Float(f) => format!("a float ({f:?})"),
        Value::Boolean(b) => format!("a boolean ({b})"),
        Value::Datetime(d) => format!("a datetime ({d})"),
        Value::Array(_) => "an array".to_string(),
        Value::Table(_) => "a table".to_string(),
    }
}
