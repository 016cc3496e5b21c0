//! A project: its directory, its `ml.toml`, where its cache and state live, and the eight steps.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The eight steps, in pipeline order.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Step {
    Define,
    Locate,
    Prepare,
    Confirm,
    Execute,
    Monitor,
    Modify,
    Conclude,
}

impl Step {
    pub const ALL: [Step; 8] = [
        Step::Define,
        Step::Locate,
        Step::Prepare,
        Step::Confirm,
        Step::Execute,
        Step::Monitor,
        Step::Modify,
        Step::Conclude,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Step::Define => "define",
            Step::Locate => "locate",
            Step::Prepare => "prepare",
            Step::Confirm => "confirm",
            Step::Execute => "execute",
            Step::Monitor => "monitor",
            Step::Modify => "modify",
            Step::Conclude => "conclude",
        }
    }

    /// The outputs the step records (in the action cache and `ml.lock`), which a user step's
    /// `uses` may name.
    pub fn output_names(self) -> &'static [&'static str] {
        match self {
            Step::Define | Step::Modify => &[],
            Step::Locate => &["snapshot"],
            Step::Prepare => &["holdout", "schema", "train", "transform"],
            Step::Confirm => &["report", "report_md"],
            Step::Execute => &["mojo", "predictions"],
            Step::Monitor => &["report"],
            Step::Conclude => &["mojo"],
        }
    }
}

/// A step named on the command line (`run STEP`, `--force STEP`, `explain STEP`): one of the
/// eight, or a `[[steps]]` name, which the walk checks against the project's `ml.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepName(pub String);

impl std::str::FromStr for StepName {
    type Err = String;

    fn from_str(s: &str) -> Result<StepName, String> {
        if crate::config::user_step::is_name(s) {
            Ok(StepName(s.to_string()))
        } else {
            Err(format!(
                "`{s}` is not a step name: one of {}, or a `[[steps]]` name from ml.toml",
                Step::ALL.map(Step::as_str).join(", ")
            ))
        }
    }
}

impl From<Step> for StepName {
    fn from(step: Step) -> StepName {
        StepName(step.as_str().to_string())
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a project keeps things. Computed once per command from the environment.
#[derive(Debug, Clone)]
pub struct Paths {
    pub project: PathBuf,
    pub cache: PathBuf,
    pub state_url: String,
    pub tool_cache: PathBuf,
    pub models: PathBuf,
    pub lockfile: PathBuf,
}

impl Paths {
    /// The project's display name: `[project] name`, else the directory's name. Runs are
    /// recorded and model cards titled under it.
    pub fn project_name(&self, config: &crate::config::Config) -> String {
        config.project.name.clone().unwrap_or_else(|| {
            self.project
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "project".into())
        })
    }

    pub fn resolve(project: &Path) -> Paths {
        let project = project
            .canonicalize()
            .unwrap_or_else(|_| project.to_path_buf());
        let cache = match std::env::var_os("MLBUILD_CACHE_DIR") {
            Some(dir) if !dir.is_empty() => {
                let dir = PathBuf::from(dir);
                if dir.is_absolute() {
                    dir
                } else {
                    std::env::current_dir().map(|c| c.join(&dir)).unwrap_or(dir)
                }
            }
            _ => project.join("cache"),
        };
        let state_url = match std::env::var("MLBUILD_STATE_URL") {
            Ok(url) if !url.is_empty() => url,
            _ => match &crate::user_config::get().state_url {
                Some(url) => url.clone(),
                None => crate::registry::sqlite_url(&crate::store::layout::state_db(&cache)),
            },
        };
        Paths {
            models: project.join("models"),
            lockfile: project.join("ml.lock"),
            tool_cache: crate::h2o::default_tool_cache(),
            project,
            cache,
            state_url,
        }
    }
}

/// The commit checked out in the git work tree holding `dir`, read from `.git` without running
/// git (a run records it at its start, where a process costs more than the files): `HEAD`, the
/// branch's ref or `packed-refs`; a worktree's `.git` file and `commondir` are followed. `None`
/// outside a work tree or when `HEAD` names no commit yet.
pub fn git_head(dir: &Path) -> Option<String> {
    let dir = dir.canonicalize().ok()?;
    let dot_git = dir
        .ancestors()
        .map(|d| d.join(".git"))
        .find(|g| g.exists())?;
    let git_dir = if dot_git.is_file() {
        let text = std::fs::read_to_string(&dot_git).ok()?;
        let target = PathBuf::from(text.strip_prefix("gitdir:")?.trim());
        dot_git.parent()?.join(target)
    } else {
        dot_git
    };
    let common = std::fs::read_to_string(git_dir.join("commondir"))
        .map(|c| git_dir.join(c.trim()))
        .unwrap_or_else(|_| git_dir.clone());
    let head = std::fs::read_to_string(git_dir.join("HEAD")).ok()?;
    let head = head.trim();
    let is_commit = |s: &str| s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit());
    let Some(name) = head.strip_prefix("ref:").map(str::trim) else {
        return is_commit(head).then(|| head.to_string());
    };
    for base in [&git_dir, &common] {
        if let Ok(id) = std::fs::read_to_string(base.join(name)) {
            let id = id.trim();
            if is_commit(id) {
                return Some(id.to_string());
            }
        }
    }
    let packed = std::fs::read_to_string(common.join("packed-refs")).ok()?;
    packed
        .lines()
        .filter_map(|l| l.split_once(' '))
        .find(|(_, r)| *r == name)
        .map(|(id, _)| id.to_string())
        .filter(|id| is_commit(id))
}

#[cfg(test)]
mod git_tests {
    use super::git_head;

    #[test]
    fn reads_head_like_git_rev_parse() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(git_head(dir.path()), None, "not a work tree");
        let git = |args: &[&str]| {
            std::process::Command::new("git")
                .arg("-C")
                .arg(dir.path())
                .args(args)
                .env("GIT_AUTHOR_NAME", "t")
                .env("GIT_AUTHOR_EMAIL", "t@t")
                .env("GIT_COMMITTER_NAME", "t")
                .env("GIT_COMMITTER_EMAIL", "t@t")
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        };
        if git(&["init", "-q"]).is_none() {
            return; // no git here: nothing to compare against
        }
        assert_eq!(git_head(dir.path()), None, "no commit yet");
        std::fs::write(dir.path().join("a"), "a").unwrap();
        git(&["add", "a"]).unwrap();
        git(&["commit", "-qm", "a"]).unwrap();
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        assert_eq!(git_head(&sub), git(&["rev-parse", "HEAD"]));
        git(&["pack-refs", "--all"]).unwrap();
        assert_eq!(git_head(&sub), git(&["rev-parse", "HEAD"]), "packed refs");
    }
}
