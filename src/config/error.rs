//! Errors in `ml.toml` and `--set`, each naming where it happened.
//!
//! A [`Place`] is a file position (path, 1-based line and column in characters, plus the source
//! line for the caret snippet) or a `--set` argument. The `Display` of an error is its headline
//! (`ml.toml:5:1: unknown key `define.treshold``) followed, for file positions, by the source line
//! and a caret, the way rustc and cargo show them; the hint is separate ([`ConfigError::hint`]) so
//! `main` prints it once, after the cause chain.

use std::fmt;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// Where a problem is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// A position in a file. `line` and `column` are 1-based; `column` counts characters.
    File {
        path: PathBuf,
        line: usize,
        column: usize,
        source_line: String,
        width: usize,
    },
    /// The file as a whole (a table that is missing altogether).
    WholeFile { path: PathBuf },
    /// A `--set KEY=VALUE` argument, as the user wrote it.
    Override { arg: String },
}

impl Place {
    /// The place of byte range `span` of `source`.
    pub fn in_file(path: &Path, source: &str, span: Range<usize>) -> Place {
        let start = floor_char_boundary(source, span.start.min(source.len()));
        let line_start = source[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = source[start..]
            .find('\n')
            .map_or(source.len(), |i| start + i);
        let source_line = source[line_start..line_end]
            .trim_end_matches('\r')
            .to_string();
        let line = source[..start].matches('\n').count() + 1;
        let column = source[line_start..start].chars().count() + 1;
        let end = floor_char_boundary(source, span.end.clamp(start, line_end));
        let width = source[start..end].chars().count().max(1);
        Place::File {
            path: path.to_path_buf(),
            line,
            column,
            source_line,
            width,
        }
    }

    /// `(line, column)` for a file position.
    pub fn line_column(&self) -> Option<(usize, usize)> {
        match self {
            Place::File { line, column, .. } => Some((*line, *column)),
            _ => None,
        }
    }

    /// The source line with a caret under the place, or nothing when there is no line to show.
    pub fn snippet(&self) -> String {
        let Place::File {
            line,
            column,
            source_line,
            width,
            ..
        } = self
        else {
            return String::new();
        };
        let number = line.to_string();
        let gutter = " ".repeat(number.len());
        let shown = source_line.replace('\t', " ");
        let width = (*width)
            .min(shown.chars().count().saturating_sub(column - 1))
            .max(1);
        format!(
            "\n{gutter} |\n{number} | {shown}\n{gutter} | {}{}",
            " ".repeat(column - 1),
            "^".repeat(width)
        )
    }
}

fn floor_char_boundary(source: &str, mut index: usize) -> usize {
    while !source.is_char_boundary(index) {
        index -= 1;
    }
    index
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::File {
                path, line, column, ..
            } => {
                write!(f, "{}:{line}:{column}", path.display())
            }
            Place::WholeFile { path } => write!(f, "{}", path.display()),
            Place::Override { arg } => write!(f, "`--set {arg}`"),
        }
    }
}

/// Everything that can be wrong with a project's configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// There is no `ml.toml` in the project directory.
    NotFound { dir: PathBuf },
    /// `ml.toml` exists but could not be read.
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Not valid TOML.
    Syntax {
        at: Box<Place>,
        message: String,
        hint: Option<String>,
    },
    /// A key or table the schema does not have.
    UnknownKey {
        at: Box<Place>,
        /// Dotted path of the key (`define.treshold`).
        key: String,
        /// Written as a table header (`[defne]`) rather than `key = value`.
        is_table: bool,
        /// The closest valid key, when one is close.
        suggestion: Option<String>,
        /// The valid keys of the enclosing table.
        valid: Vec<String>,
    },
    /// A value of the wrong TOML type.
    WrongType {
        at: Box<Place>,
        key: String,
        expected: String,
        found: String,
    },
    /// A required key or table is absent.
    MissingKey {
        at: Box<Place>,
        key: String,
        is_table: bool,
        example: String,
    },
    /// A well-typed value that breaks a rule (range, known names, consistency).
    InvalidValue {
        at: Box<Place>,
        key: String,
        message: String,
        hint: Option<String>,
    },
    /// A `--set` argument that is not `KEY=VALUE`.
    BadOverride { arg: String, message: String },
}

impl ConfigError {
    /// What the user can do about it, printed by `main` after the cause chain.
    pub fn hint(&self) -> Option<String> {
        match self {
            ConfigError::NotFound { .. } => {
                Some("run `mlbuild init [DATA]` to create one, or pass `-C DIR`".to_string())
            }
            ConfigError::Read { .. } => None,
            ConfigError::Syntax { hint, .. } => hint.clone(),
            ConfigError::UnknownKey {
                suggestion: Some(s),
                is_table: true,
                key,
                ..
            } => Some(match key.rsplit_once('.') {
                Some((table, _)) => format!("did you mean `[{table}.{s}]`?"),
                None => format!("did you mean `[{s}]`?"),
            }),
            ConfigError::UnknownKey {
                suggestion: Some(s),
                ..
            } => Some(format!("did you mean `{s}`?")),
            ConfigError::UnknownKey {
                key,
                valid,
                is_table,
                ..
            } => {
                let list = valid.join("`, `");
                Some(match key.rsplit_once('.') {
                    Some((table, _)) => format!("valid keys in `[{table}]`: `{list}`"),
                    None if *is_table => format!("valid tables: `[{}]`", valid.join("]`, `[")),
                    None => format!("valid top-level keys: `{list}`"),
                })
            }
            ConfigError::WrongType {
                at, key, expected, ..
            } => match at.as_ref() {
                Place::Override { arg } => {
                    let (set_key, value) = arg.split_once('=').unwrap_or((arg, ""));
                    let (set_key, value) = (set_key.trim(), value.trim());
                    Some(if key.ends_with(']') || expected == "an array of strings" {
                        format!(
                            "VALUE is read as TOML: quote the strings inside the array, e.g. \
                             `--set '{set_key}=[\"a\", \"b\"]'`"
                        )
                    } else if expected == "a string" {
                        format!("VALUE is read as TOML: quote it to pass a string, e.g. `--set '{set_key}=\"{value}\"'`")
                    } else {
                        format!(
                            "VALUE is read as TOML, or as a string when it is not valid TOML; \
                             `{key}` needs {expected}"
                        )
                    })
                }
                _ => None,
            },
            ConfigError::MissingKey { example, .. } => Some(format!("add it, e.g. `{example}`")),
            ConfigError::InvalidValue { hint, .. } => hint.clone(),
            ConfigError::BadOverride { .. } => {
                Some("write `--set KEY=VALUE`, e.g. `--set execute.max_models=8`".to_string())
            }
        }
    }

    /// Where the problem is, when it has a place.
    pub fn place(&self) -> Option<&Place> {
        match self {
            ConfigError::Syntax { at, .. }
            | ConfigError::UnknownKey { at, .. }
            | ConfigError::WrongType { at, .. }
            | ConfigError::MissingKey { at, .. }
            | ConfigError::InvalidValue { at, .. } => Some(at.as_ref()),
            _ => None,
        }
    }

    /// The first line of the message, without the source snippet.
    pub fn headline(&self) -> String {
        match self {
            ConfigError::NotFound { dir } => format!("no `ml.toml` in `{}`", dir.display()),
            ConfigError::Read { path, .. } => format!("cannot read `{}`", path.display()),
            ConfigError::Syntax { at, message, .. } => format!("{at}: {message}"),
            ConfigError::UnknownKey {
                at,
                key,
                is_table: true,
                ..
            } => {
                format!("{at}: unknown table `[{key}]`")
            }
            ConfigError::UnknownKey { at, key, .. } => format!("{at}: unknown key `{key}`"),
            ConfigError::WrongType {
                at,
                key,
                expected,
                found,
            } => {
                format!("{at}: `{key}` expects {expected}, found {found}")
            }
            ConfigError::MissingKey {
                at,
                key,
                is_table: true,
                ..
            } => {
                format!("{at}: missing table `[{key}]`")
            }
            ConfigError::MissingKey { at, key, .. } => format!("{at}: missing key `{key}`"),
            ConfigError::InvalidValue { at, message, .. } => format!("{at}: {message}"),
            ConfigError::BadOverride { arg, message } => format!("`--set {arg}`: {message}"),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.headline())?;
        if let Some(at) = self.place() {
            f.write_str(&at.snippet())?;
        }
        Ok(())
    }
}
