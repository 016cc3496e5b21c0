//! `ml.toml`: loading, `--set` overrides, validation with positions, and metric helpers.
//!
//! Loading goes through four stages, each with its own kind of error:
//!
//! | stage | what | error |
//! |---|---|---|
//! | parse | TOML text → a tree where every key and value keeps its span ([`document`]) | [`ConfigError::Syntax`] |
//! | override | each `--set KEY=VALUE` replaces a node of that tree | [`ConfigError::BadOverride`] |
//! | shape | unknown keys, wrong types, missing required keys ([`keys`]) | `UnknownKey`, `WrongType`, `MissingKey` |
//! | type + rules | serde fills defaults into [`Config`]; ranges, names, consistency ([`validate`]) | `InvalidValue` |
//!
//! Overrides are applied to the tree, so a `--set` value is checked exactly like one written in
//! the file, and an error in it names the `--set` argument instead of a file position.
//! Only the first error is reported. Positions are 1-based, columns count characters.

mod document;
mod error;
mod keys;
mod metric;
pub mod scaffold;
pub mod schema;
pub mod user_step;
mod validate;

#[cfg(test)]
mod properties;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use error::{ConfigError, Place};
pub use metric::{
    default_metric, h2o_metric_name, metric_is_higher_better, metrics_for, ALGORITHMS, ALL_METRICS,
    BINARY_METRICS, MULTICLASS_METRICS, REGRESSION_METRICS,
};
pub use schema::*;

use document::OverrideProblem;
use keys::Locator;

/// The name of the project file.
pub const FILE_NAME: &str = "ml.toml";

/// A loaded project configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    pub config: Config,
    /// `project_dir/ml.toml`.
    pub path: PathBuf,
    /// The file's text as read (without overrides).
    pub source: String,
}

/// Reads `project_dir/ml.toml`, applies `overrides` (`KEY=VALUE`, as given to `--set`) and
/// validates the result.
pub fn load(project_dir: &Path, overrides: &[String]) -> Result<Loaded, ConfigError> {
    let path = project_dir.join(FILE_NAME);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ConfigError::NotFound {
                dir: project_dir.to_path_buf(),
            })
        }
        Err(source) => return Err(ConfigError::Read { path, source }),
    };
    // Messages say `ml.toml:3:1` for the current directory, `DIR/ml.toml:3:1` otherwise.
    let shown = if project_dir.as_os_str().is_empty() || project_dir == Path::new(".") {
        PathBuf::from(FILE_NAME)
    } else {
        path.clone()
    };
    let source = String::from_utf8(bytes).map_err(|e| not_utf8(&shown, &e))?;
    let config = parse(&shown, &source, overrides)?;
    Ok(Loaded {
        config,
        path,
        source,
    })
}

/// Parses and validates `source` as an `ml.toml` with `overrides` applied; `path_for_messages`
/// is the path errors show.
pub fn parse(
    path_for_messages: &Path,
    source: &str,
    overrides: &[String],
) -> Result<Config, ConfigError> {
    let at = Locator {
        path: path_for_messages,
        source,
        overrides,
    };
    let mut doc = document::parse_document(source).map_err(|e| syntax_error(&at, &e))?;
    for (index, arg) in overrides.iter().enumerate() {
        document::apply_override(&mut doc, index, arg).map_err(|problem| {
            let message = match problem {
                OverrideProblem::NoEquals => "expected KEY=VALUE".to_string(),
                OverrideProblem::BadKey => "KEY is not a valid dotted TOML key".to_string(),
                OverrideProblem::NotATable { prefix } => {
                    format!("`{prefix}` is not a table, so it has no keys to set")
                }
            };
            ConfigError::BadOverride {
                arg: arg.clone(),
                message,
            }
        })?;
    }
    keys::check(&doc, &at)?;
    // The shape is checked, so serde can only fail on something `keys::ROOT` does not know
    // about: a disagreement between it and `schema.rs`, reported as it comes.
    let mut config = Config::deserialize(doc.to_toml()).map_err(|e| ConfigError::InvalidValue {
        at: Box::new(Place::WholeFile {
            path: path_for_messages.into(),
        }),
        key: String::new(),
        message: e.to_string().trim().to_string(),
        hint: None,
    })?;
    validate::validate(&mut config, &doc, &at)?;
    Ok(config)
}

/// Where the value at `key_path` (`["locate", "sql"]`) was written: its file position, or the
/// `--set` argument that set it. `None` when the text does not parse or has no such key. For
/// errors found after loading (a SQL error points at the query).
pub fn value_place(
    path_for_messages: &Path,
    source: &str,
    overrides: &[String],
    key_path: &[&str],
) -> Option<Place> {
    let at = Locator {
        path: path_for_messages,
        source,
        overrides,
    };
    let mut doc = document::parse_document(source).ok()?;
    for (index, arg) in overrides.iter().enumerate() {
        document::apply_override(&mut doc, index, arg).ok()?;
    }
    doc.lookup(key_path).map(|entry| at.value_place(entry))
}

/// A file that is not UTF-8, located at its first bad byte (in the text before it).
fn not_utf8(path: &Path, e: &std::string::FromUtf8Error) -> ConfigError {
    let valid = e.utf8_error().valid_up_to();
    let before = String::from_utf8_lossy(&e.as_bytes()[..valid]);
    ConfigError::Syntax {
        at: Box::new(Place::in_file(path, &before, valid..valid)),
        message: "the file is not UTF-8 text".into(),
        hint: Some("save it as UTF-8: TOML files are UTF-8".into()),
    }
}

fn syntax_error(at: &Locator, e: &toml::de::Error) -> ConfigError {
    let place = match e.span() {
        Some(span) => Place::in_file(at.path, at.source, span),
        None => Place::WholeFile {
            path: at.path.into(),
        },
    };
    let message = e.message().trim().replace('\n', ": ");
    let hint = syntax_hint(&message, &place);
    ConfigError::Syntax {
        at: Box::new(place),
        message,
        hint,
    }
}

/// Hints for the syntax errors people make most: bare strings and repeated keys or tables.
fn syntax_hint(message: &str, place: &Place) -> Option<String> {
    if message.starts_with("invalid string") {
        let word = match place {
            Place::File {
                source_line,
                column,
                ..
            } => source_line
                .chars()
                .skip(column - 1)
                .take_while(|c| !c.is_whitespace() && *c != '#' && *c != ',' && *c != ']')
                .collect::<String>(),
            _ => String::new(),
        };
        return Some(if word.is_empty() {
            "strings need quotes, e.g. `target = \"CAPSULE\"`".to_string()
        } else {
            format!("strings need quotes: `\"{word}\"`")
        });
    }
    if message.starts_with("invalid table header: duplicate key") {
        return Some("a table may appear only once: merge the two sections".to_string());
    }
    if message.starts_with("duplicate key") {
        return Some("a key may appear only once in a table: remove one of them".to_string());
    }
    if message.contains("expected `.`, `=`") {
        return Some("write one `key = value` per line".to_string());
    }
    None
}
