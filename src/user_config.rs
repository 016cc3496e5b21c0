//! The user config: settings that belong to a person or a CI runner, not to a project — the
//! state database URL, the remote cache with its token, the team's H2O cluster — so that secrets stay out of
//! `ml.toml` (DESIGN.md §3.5). Format and precedence: `docs/config.md` ("User config").
//!
//! Where: `$MLBUILD_CONFIG` (an empty value means "no user config"), else
//! `$XDG_CONFIG_HOME/mlbuild/config.toml`, else `~/.config/mlbuild/config.toml`. A missing file is
//! no config. Precedence, most specific first: environment variables, then the project's
//! `ml.toml` (`[cache] remote`, `read_only`), then this file, then the defaults.
//!
//! The file is read once per process ([`get`]); `commands::dispatch` calls [`load`] first so a
//! malformed file is an error (file, line, column, key) before anything runs.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::Deserialize;

use crate::error::Diagnostic;

/// The environment variable naming the user config file.
pub const PATH_VAR: &str = "MLBUILD_CONFIG";

#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// `sqlite://…` or `postgres://…`; `MLBUILD_STATE_URL` wins.
    pub state_url: Option<String>,
    #[serde(default)]
    pub remote: Remote,
    #[serde(default)]
    pub h2o: H2o,
}

/// `[h2o]`: the team's cluster, for projects that declare none.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct H2o {
    /// The cluster's URL; `MLBUILD_H2O_URL` and `ml.toml`'s `[h2o] url` win.
    pub url: Option<String>,
    /// The directory this machine and every node share; `MLBUILD_H2O_EXCHANGE_DIR` and
    /// `ml.toml`'s `[h2o] exchange_dir` win.
    pub exchange_dir: Option<PathBuf>,
}

#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Remote {
    /// The remote cache's base URL; `MLBUILD_REMOTE_CACHE` and `[cache] remote` win.
    pub url: Option<String>,
    /// The bearer token; `MLBUILD_REMOTE_TOKEN` wins.
    pub token: Option<String>,
    /// Never upload; `MLBUILD_REMOTE_READ_ONLY` and `[cache] read_only` also turn it on.
    #[serde(default)]
    pub read_only: bool,
    /// A PEM file of extra CA certificates; `MLBUILD_REMOTE_CA` wins.
    pub ca: Option<PathBuf>,
}

/// Where the user config is looked for, or `None` when disabled (`MLBUILD_CONFIG=""`) or no
/// home directory is known.
pub fn path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(PATH_VAR) {
        return (!p.is_empty()).then(|| PathBuf::from(p));
    }
    let base = match std::env::var_os("XDG_CONFIG_HOME") {
        Some(x) if !x.is_empty() => PathBuf::from(x),
        _ => PathBuf::from(std::env::var_os("HOME").filter(|h| !h.is_empty())?).join(".config"),
    };
    Some(base.join("mlbuild").join("config.toml"))
}

/// Reads and checks the user config at `path`; a missing file is the empty config.
pub fn read(path: &Path) -> Result<UserConfig, Diagnostic> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(UserConfig::default()),
        Err(e) => {
            return Err(Diagnostic::new(format!(
                "reading the user config `{}`: {e}",
                path.display()
            )))
        }
    };
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let valid = e.utf8_error().valid_up_to();
            // The position of the first byte that is not UTF-8, in the text before it.
            let before = String::from_utf8_lossy(&e.as_bytes()[..valid]);
            let (line, col) = line_col(&before, valid);
            return Err(Diagnostic::new(format!(
                "{}:{line}:{col}: the file is not UTF-8 text",
                path.display()
            ))
            .hint("save it as UTF-8; TOML files are UTF-8"));
        }
    };
    let config: UserConfig = toml::from_str(&text).map_err(|e| {
        let at = e
            .span()
            .map(|s| {
                let (line, col) = line_col(&text, s.start);
                format!(":{line}:{col}")
            })
            .unwrap_or_default();
        Diagnostic::new(format!(
            "{}{at}: {}",
            path.display(),
            e.message().trim_end()
        ))
        .hint(
            "the user config may hold `state_url` and a `[remote]` table with `url`, `token`, \
             `read_only`, `ca`, and an `[h2o]` table with `url`, `exchange_dir` (docs/config.md, \"User config\"); `MLBUILD_CONFIG=\"\"` ignores it",
        )
    })?;
    if let Some(url) = &config.remote.url {
        let lower = url.to_ascii_lowercase();
        if !lower.starts_with("http://") && !lower.starts_with("https://") {
            return Err(Diagnostic::new(format!(
                "{}: `remote.url` must be an `http://` or `https://` URL, found `{}`",
                path.display(),
                crate::redact::safe_url(url)
            )));
        }
    }
    Ok(config)
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// A token in a file others can read is worth a warning (as ssh does for keys).
fn readable_by_others(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o077 != 0)
        .unwrap_or(false)
}

static LOADED: OnceLock<Result<UserConfig, Diagnostic>> = OnceLock::new();

#[allow(
    clippy::print_stderr,
    reason = "read before any printer exists (it may name the state database); one warning line"
)]
fn loaded() -> &'static Result<UserConfig, Diagnostic> {
    LOADED.get_or_init(|| match path() {
        None => Ok(UserConfig::default()),
        Some(p) => read(&p).inspect(|c| {
            if c.remote.token.is_some() && readable_by_others(&p) {
                eprintln!(
                    "warning: `{}` holds a token and is readable by other users; run `chmod 600 {}`",
                    p.display(),
                    p.display()
                );
            }
        }),
    })
}

/// The user config, or an error naming the file, line and column.
pub fn load() -> anyhow::Result<&'static UserConfig> {
    loaded().as_ref().map_err(|e| e.clone().into())
}

/// The user config for code that cannot fail: the empty config when the file is malformed
/// (`dispatch` has already reported that by then).
pub fn get() -> &'static UserConfig {
    static EMPTY: UserConfig = UserConfig {
        state_url: None,
        remote: Remote {
            url: None,
            token: None,
            read_only: false,
            ca: None,
        },
        h2o: H2o {
            url: None,
            exchange_dir: None,
        },
    };
    loaded().as_ref().unwrap_or(&EMPTY)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<UserConfig, Diagnostic> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.toml");
        std::fs::write(&p, text).unwrap();
        read(&p)
    }

    #[test]
    fn reads_state_url_and_remote() {
        let c = parse(
            "state_url = \"postgres://ml@db/ml\"\n[remote]\nurl = \"https://cache.example/ml\"\ntoken = \"t0k\"\nread_only = true\nca = \"/etc/ca.pem\"\n",
        )
        .unwrap();
        assert_eq!(c.state_url.as_deref(), Some("postgres://ml@db/ml"));
        assert_eq!(c.remote.url.as_deref(), Some("https://cache.example/ml"));
        assert_eq!(c.remote.token.as_deref(), Some("t0k"));
        assert!(c.remote.read_only);
        assert_eq!(c.remote.ca.as_deref(), Some(Path::new("/etc/ca.pem")));
    }

    #[test]
    fn reads_the_teams_cluster() {
        let c = parse("[h2o]\nurl = \"http://h2o:54321\"\nexchange_dir = \"/srv/x\"\n").unwrap();
        assert_eq!(c.h2o.url.as_deref(), Some("http://h2o:54321"));
        assert_eq!(c.h2o.exchange_dir.as_deref(), Some(Path::new("/srv/x")));
        let e = parse("[h2o]\nnodes = 2\n").unwrap_err();
        assert!(
            format!("{e:#}").contains("config.toml:2:1: unknown field `nodes`"),
            "{e:#}"
        );
    }

    #[test]
    fn missing_file_is_empty_and_errors_name_the_place() {
        assert_eq!(
            read(Path::new("/nonexistent/mlbuild/config.toml")).unwrap(),
            UserConfig::default()
        );
        let e = parse("[remote]\nurl = \"https://c\"\ntokn = \"x\"\n").unwrap_err();
        let text = format!("{e:#}");
        assert!(
            text.contains("config.toml:3:1: unknown field `tokn`"),
            "{text}"
        );
        let e = parse("state_url = 5\n").unwrap_err();
        assert!(format!("{e:#}").contains("config.toml:1:13"), "{e:#}");
        let e = parse("[remote]\nurl = \"s3://bucket\"\n").unwrap_err();
        assert!(
            format!("{e:#}").contains("`http://` or `https://`"),
            "{e:#}"
        );
    }

    /// A file that is not UTF-8 is located at its first bad byte (found by the property test,
    /// which saw "stream did not contain valid UTF-8" without a place).
    #[test]
    fn a_file_that_is_not_utf8_is_located() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.toml");
        std::fs::write(&p, b"[remote]\nurl = \"https://\xff\"\n").unwrap();
        let e = read(&p).unwrap_err();
        assert_eq!(
            e.message,
            format!("{}:2:16: the file is not UTF-8 text", p.display())
        );
    }

    /// Property and mutation test (harness: `crate::hostile`, docs/testing.md): whatever the
    /// file holds, [`read`] returns a config or an error naming the file and, for what TOML
    /// rejects, `LINE:COL`; never a panic.
    #[test]
    fn user_configs_never_panic_and_name_the_place() {
        use crate::hostile::{self, mutate, Input, Property, Rng};
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.toml");
        let generate = |rng: &mut Rng| {
            let mut text = String::new();
            if rng.percent(70) {
                let url = rng.pick(&["postgres://u:p@db/ml", "sqlite://x.db", "", "\\u0000"]);
                text.push_str(&format!("state_url = \"{url}\"\n"));
            }
            if rng.percent(80) {
                text.push_str("[remote]\n");
                let url = rng.pick(&[
                    "https://c.example/ml",
                    "http://127.0.0.1:9",
                    "s3://b",
                    "HTTP://X",
                    "",
                ]);
                text.push_str(&format!("url = \"{url}\"\n"));
                if rng.percent(50) {
                    text.push_str(&format!(
                        "token = \"{}\"\n",
                        rng.junk(8).replace(['"', '\\'], "")
                    ));
                }
                if rng.percent(50) {
                    text.push_str(&format!(
                        "read_only = {}\n",
                        rng.pick(&["true", "false", "1", "\"yes\""])
                    ));
                }
                if rng.percent(30) {
                    text.push_str("ca = \"/etc/ca.pem\"\n");
                }
            }
            let mut bytes = text.into_bytes();
            if rng.percent(60) {
                let how = mutate(rng, &mut bytes);
                Input::new(bytes, format!("a user config, mutated: {how}"))
            } else {
                Input::new(bytes, "a user config")
            }
        };
        let property = Property {
            parser: "user config",
            deadline: std::time::Duration::from_secs(5),
            memory: 64 << 20,
            reserved: 0,
            test_filter: "user_config::tests::user_configs",
        };
        let shown = p.display().to_string();
        hostile::check(&property, generate, |input| {
            std::fs::write(&p, &input.bytes).map_err(|e| e.to_string())?;
            match read(&p) {
                Ok(_) => Ok("read".into()),
                Err(e) => {
                    let m = e.message;
                    let after = m.strip_prefix(&shown).unwrap_or_default();
                    let placed = after
                        .strip_prefix(':')
                        .and_then(|rest| rest.split_once(": "))
                        .is_some_and(|(at, _)| {
                            at.split(':').count() == 2
                                && at
                                    .split(':')
                                    .all(|n| n.parse::<usize>().is_ok_and(|n| n > 0))
                        });
                    if placed {
                        Ok("refused at LINE:COL".into())
                    } else if m.starts_with(&format!("{shown}: `remote.url`")) {
                        Ok("refused url".into())
                    } else if m.starts_with("reading the user config") && m.contains(&shown) {
                        Ok("unreadable".into())
                    } else {
                        Err(format!("an error without its place: {m}"))
                    }
                }
            }
        });
    }
}
