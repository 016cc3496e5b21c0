//! What can go wrong reading or writing a table, each with the file and line, and a hint.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("cannot read `{path}`")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{path}` line {line}: {message}")]
    Csv {
        path: PathBuf,
        line: u64,
        message: String,
    },
    #[error("`{path}` line {line}: field {field} is not UTF-8 text")]
    NotUtf8 {
        path: PathBuf,
        line: u64,
        field: usize,
    },
    #[error("`{path}` has no header row")]
    Empty { path: PathBuf },
    #[error(
        "`{path}` line 1: column `{name}` appears twice in the header (columns {first} and {second})"
    )]
    DuplicateColumn {
        path: PathBuf,
        name: String,
        first: usize,
        second: usize,
    },
    #[error("cannot write `{path}`")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl TableError {
    /// The same error naming its file relative to `base` (the project) when the file is in it:
    /// the path as `ml.toml` writes it, not the machine's absolute one.
    pub fn relative_to(mut self, base: &std::path::Path) -> TableError {
        let (TableError::Open { path, .. }
        | TableError::Csv { path, .. }
        | TableError::NotUtf8 { path, .. }
        | TableError::Empty { path }
        | TableError::Write { path, .. }
        | TableError::DuplicateColumn { path, .. }) = &mut self;
        if let Ok(inside) = path.strip_prefix(base) {
            *path = inside.to_path_buf();
        }
        self
    }

    pub fn hint(&self) -> Option<String> {
        match self {
            TableError::Csv { .. } => Some("every row must have as many fields as the header; quote fields that contain commas".into()),
            TableError::NotUtf8 { path, .. } => Some(format!(
                "mlbuild reads CSV as UTF-8; re-encode the file, e.g. `iconv -f latin1 -t utf-8 {0} > {0}.utf8` (if it is Latin-1), and point `[locate] path` at the result",
                path.display()
            )),
            TableError::DuplicateColumn { .. } => Some(
                "mlbuild reads columns by name, so each needs its own: rename one in the data (for a SQL source, an alias: `SELECT a.id, b.id AS b_id …`)"
                    .into(),
            ),
            _ => None,
        }
    }
}
