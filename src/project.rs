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
