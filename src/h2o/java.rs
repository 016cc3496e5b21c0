//! Finding a Java that H2O 3.46 accepts (8 to 17).
//!
//! `$JAVA_HOME/bin/java` wins when `JAVA_HOME` is set (and must then exist); otherwise `java` is
//! searched on `PATH` by hand, so that the error can say exactly where we looked. The major
//! version comes from `java -version`'s stderr (`openjdk version "17.0.15"`, `"1.8.0_392"` → 8).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::H2oError;

/// A java executable and its major version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Java {
    pub path: PathBuf,
    pub major: u32,
}

/// Oldest and newest Java major versions H2O 3.46 starts on.
pub const JAVA_MIN: u32 = 8;
pub const JAVA_MAX: u32 = 17;

/// Finds java and checks its version.
pub fn find_java() -> Result<Java, H2oError> {
    let path = locate_java(
        std::env::var_os("JAVA_HOME").map(PathBuf::from),
        std::env::var_os("PATH"),
    )?;
    let out = Command::new(&path)
        .arg("-version")
        .output()
        .map_err(|e| H2oError::io("could not run", &path, e))?;
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    let major = parse_java_major(&text).ok_or_else(|| H2oError::JavaVersionUnknown {
        java: path.clone(),
        output: text.lines().next().unwrap_or("").trim().to_string(),
    })?;
    check_major(path, major)
}

pub(crate) fn check_major(path: PathBuf, major: u32) -> Result<Java, H2oError> {
    if major > JAVA_MAX {
        Err(H2oError::JavaTooNew { java: path, major })
    } else if major < JAVA_MIN {
        Err(H2oError::JavaTooOld { java: path, major })
    } else {
        Ok(Java { path, major })
    }
}

fn locate_java(
    java_home: Option<PathBuf>,
    path_var: Option<std::ffi::OsString>,
) -> Result<PathBuf, H2oError> {
    if let Some(home) = java_home.filter(|h| !h.as_os_str().is_empty()) {
        let java = home.join("bin").join("java");
        return if is_executable(&java) {
            Ok(java)
        } else {
            Err(H2oError::JavaMissing {
                searched: format!(
                    "`JAVA_HOME` is set, but `{}` is not an executable",
                    java.display()
                ),
            })
        };
    }
    if let Some(p) = &path_var {
        for dir in std::env::split_paths(p) {
            let java = dir.join("java");
            if is_executable(&java) {
                return Ok(java);
            }
        }
    }
    Err(H2oError::JavaMissing {
        searched: "`JAVA_HOME` is not set and there is no `java` on `PATH`".into(),
    })
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// The major version in `java -version` output: `"17.0.15"` → 17, `"1.8.0_392"` → 8,
/// `"21-ea"` → 21.
pub fn parse_java_major(output: &str) -> Option<u32> {
    let re = regex::Regex::new(r#"version "([^"]+)""#).unwrap();
    let v = re.captures(output)?.get(1)?.as_str();
    let mut parts = v.split(|c: char| !c.is_ascii_digit());
    let first: u32 = parts.next()?.parse().ok()?;
    if first == 1 {
        parts.next()?.parse().ok()
    } else {
        Some(first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_versions() {
        let j17 = "openjdk version \"17.0.15\" 2025-04-15\nOpenJDK Runtime Environment (build 17.0.15+6-Debian-1deb12u1)";
        assert_eq!(parse_java_major(j17), Some(17));
        assert_eq!(
            parse_java_major("java version \"1.8.0_392\"\nJava(TM) SE"),
            Some(8)
        );
        assert_eq!(
            parse_java_major("openjdk version \"21\" 2023-09-19"),
            Some(21)
        );
        assert_eq!(
            parse_java_major("openjdk version \"11.0.2\" 2019-01-15"),
            Some(11)
        );
        assert_eq!(
            parse_java_major("openjdk version \"22-ea\" 2024-03-19"),
            Some(22)
        );
        assert_eq!(parse_java_major("java version \"1.7.0_80\""), Some(7));
        assert_eq!(parse_java_major("bash: java: command not found"), None);
    }

    #[test]
    fn checks_range() {
        assert!(check_major("j".into(), 17).is_ok());
        assert!(check_major("j".into(), 8).is_ok());
        let e = check_major("/usr/bin/java".into(), 21).unwrap_err();
        assert!(matches!(e, H2oError::JavaTooNew { major: 21, .. }));
        assert!(e.hint().unwrap().contains("allowJavaVersions=21"));
        assert!(matches!(
            check_major("j".into(), 7),
            Err(H2oError::JavaTooOld { .. })
        ));
    }

    #[test]
    fn locates_on_path_and_java_home() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let java = bin.join("java");
        std::fs::write(&java, "#!/bin/sh\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&java, std::fs::Permissions::from_mode(0o755)).unwrap();

        let path_var = std::env::join_paths([dir.path().join("nope"), bin.clone()]).unwrap();
        assert_eq!(locate_java(None, Some(path_var)).unwrap(), java);
        assert_eq!(locate_java(Some(dir.path().into()), None).unwrap(), java);
        let e = locate_java(Some(bin.clone()), None).unwrap_err();
        assert!(e.to_string().contains("JAVA_HOME"), "{e}");
        let e = locate_java(None, Some("/nonexistent".into())).unwrap_err();
        assert!(matches!(e, H2oError::JavaMissing { .. }));
        assert!(e.hint().unwrap().contains("openjdk-17-jre-headless"));
    }
}
