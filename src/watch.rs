//! What `mlbuild watch` watches, and when it reruns without an edit: the files whose edits
//! start an iteration (`ml.toml` and the data file, or every file a glob matches, re-expanded
//! at each poll) compared by (size, mtime, inode), and the interval after which a query source
//! (which no file reveals) is read again. The loop itself is the command's
//! (`commands/watch.rs`).

use std::path::PathBuf;
use std::time::Duration;

use crate::config;
use crate::project::Paths;

/// The stamp of each watched file (size, modification and change times, inode), `None` when
/// it is absent.
pub type Stamp = Vec<Option<crate::store::FileStamp>>;

/// Each file's size, times and inode (the stat cache's [`crate::store::FileStamp`]: the
/// change time catches a rewrite that put the old mtime back).
pub fn stamp(files: &[PathBuf]) -> Stamp {
    files
        .iter()
        .map(|f| crate::store::FileStamp::of_path(f))
        .collect()
}

/// The files whose edits trigger a new iteration: `ml.toml` and the data file, or every file a
/// glob matches now (re-expanded at each poll, so a new or removed part is a change too), the
/// inputs `[[steps]]` declare (globs re-expanded the same way), and
/// whether the source is a query (which no file reveals; see `--interval`).
pub fn watched(paths: &Paths) -> (Vec<PathBuf>, bool) {
    let toml = paths.project.join("ml.toml");
    let mut files = vec![toml];
    let mut query = false;
    if let Ok(loaded) = config::load(&paths.project, &[]) {
        query = loaded.config.locate.sql.is_some();
        if let Some(path) = loaded.config.locate.path.as_deref() {
            match crate::source::files::expand(&paths.project, path) {
                Ok(found) => files.extend(found.into_iter().map(|(file, _)| file)),
                // A missing file or an empty glob: watch the named path for its appearance.
                Err(_) => files.push(paths.project.join(path)),
            }
        }
        // The files `[[steps]]` declare as inputs (docs/steps.md).
        for step in &loaded.config.steps {
            for pattern in &step.inputs {
                let mut found =
                    crate::source::files::glob_files(&paths.project, pattern).unwrap_or_default();
                if found.is_empty() {
                    found.push(paths.project.join(pattern));
                }
                for f in found {
                    if !files.contains(&f) {
                        files.push(f);
                    }
                }
            }
        }
    }
    (files, query)
}

/// How long to wait without an edit before an iteration anyway: `--interval`, else one minute
/// for a query source (its rows change with no file to see), else forever.
pub fn requery_after(interval: Option<u64>, query: bool) -> Option<Duration> {
    match (interval, query) {
        (Some(0), _) => None,
        (Some(s), _) => Some(Duration::from_secs(s)),
        (None, true) => Some(Duration::from_secs(DEFAULT_QUERY_INTERVAL)),
        (None, false) => None,
    }
}

/// Seconds between iterations of a watch over a query source when `--interval` is not given.
pub const DEFAULT_QUERY_INTERVAL: u64 = 60;

/// `` `ml.toml` and `data/a.csv` ``, `` `ml.toml`, `a.csv` and `b.csv` ``, or, for many files,
/// `` `ml.toml` and 40 data files ``.
pub fn names(paths: &Paths, files: &[PathBuf]) -> String {
    let shown: Vec<String> = files
        .iter()
        .map(|f| {
            format!(
                "`{}`",
                f.strip_prefix(&paths.project).unwrap_or(f).display()
            )
        })
        .collect();
    match shown.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [first, data @ ..] if data.len() > 3 => format!("{first} and {} data files", data.len()),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn interval_defaults_to_a_minute_for_queries_only() {
        assert_eq!(requery_after(None, false), None);
        assert_eq!(
            requery_after(None, true),
            Some(Duration::from_secs(DEFAULT_QUERY_INTERVAL))
        );
        assert_eq!(requery_after(Some(5), false), Some(Duration::from_secs(5)));
        assert_eq!(requery_after(Some(0), true), None, "0 turns it off");
    }

    /// A user step's declared inputs are watched: an edit of its script starts an iteration.
    #[test]
    fn user_steps_inputs_are_watched() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        std::fs::create_dir_all(p.join("data")).unwrap();
        std::fs::create_dir_all(p.join("sql")).unwrap();
        std::fs::write(p.join("data/a.csv"), "x,y\n1,2\n").unwrap();
        std::fs::write(p.join("f.py"), "").unwrap();
        std::fs::write(p.join("sql/a.sql"), "").unwrap();
        std::fs::write(
            p.join("ml.toml"),
            "[define]\ntarget = \"y\"\n[locate]\npath = \"data/a.csv\"\n\n[[steps]]\nname = \"f\"\nafter = \"prepare\"\nrun = [\"true\"]\ninputs = [\"f.py\", \"sql/*.sql\", \"later.txt\"]\n",
        )
        .unwrap();
        let (files, query) = watched(&Paths::resolve(p));
        assert!(!query);
        let rel: Vec<String> = files
            .iter()
            .map(|f| f.strip_prefix(p).unwrap().display().to_string())
            .collect();
        assert_eq!(
            rel,
            ["ml.toml", "data/a.csv", "f.py", "sql/a.sql", "later.txt"]
        );
    }

    #[test]
    fn watched_names_read_as_a_list() {
        let paths = Paths::resolve(Path::new("/nonexistent/p"));
        let files = |n: usize| -> Vec<PathBuf> {
            std::iter::once(paths.project.join("ml.toml"))
                .chain((0..n).map(|i| paths.project.join(format!("data/{i}.csv"))))
                .collect()
        };
        assert_eq!(names(&paths, &files(1)), "`ml.toml` and `data/0.csv`");
        assert_eq!(
            names(&paths, &files(2)),
            "`ml.toml`, `data/0.csv` and `data/1.csv`"
        );
        assert_eq!(names(&paths, &files(40)), "`ml.toml` and 40 data files");
    }
}
