//! The import rule of docs/architecture.md, checked on the source: each layer imports only the
//! layers below it. A rule is a scope (files under a directory of `src/`, minus exceptions) and
//! the paths its code may not name; comments are not code.

use std::path::{Path, PathBuf};

/// (what the rule says, files it applies to, files exempt, forbidden paths).
struct Rule {
    says: &'static str,
    under: &'static str,
    except: &'static [&'static str],
    forbidden: &'static [&'static str],
}

const RULES: &[Rule] = &[
    Rule {
        says: "nothing below the command layer imports `commands` or its `cli`",
        under: "",
        except: &["commands/", "main.rs"],
        forbidden: &[
            "crate::commands",
            "crate::cli",
            "mlbuild::commands",
            "mlbuild::cli",
        ],
    },
    Rule {
        says: "the pipeline orchestrates the steps; the steps and what they use never import it",
        under: "",
        except: &["commands/", "main.rs", "pipeline.rs", "ui/"],
        forbidden: &["crate::pipeline", "super::pipeline"],
    },
    Rule {
        says: "paths in the cache dir come from `store::layout` (through `Store`)",
        under: "",
        except: &["store/"],
        forbidden: &[
            "\"v1/",
            "join(\"cas\")",
            "join(\"ac\")",
            "join(\"tmp\")",
            "join(\"sources\")",
            "join(\"profiles\")",
            "join(\"quarantine\")",
            "\"stat.json\"",
            "\"run.lock\"",
            ".root()",
        ],
    },
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Each `file:line: path` where `text` names a forbidden path in code (not in a comment).
fn violations(file: &str, text: &str, forbidden: &[&str]) -> Vec<String> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim_start().starts_with("//"))
        .flat_map(|(n, line)| {
            let code = line.split("//").next().unwrap_or("");
            forbidden
                .iter()
                .filter(move |f| code.contains(**f))
                .map(move |f| format!("{file}:{}: {f}", n + 1))
        })
        .collect()
}

#[test]
fn each_layer_imports_only_the_layers_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 50, "the source tree was found");
    let mut broken = Vec::new();
    for rule in RULES {
        for path in &files {
            let rel = path
                .strip_prefix(&src)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if !rel.starts_with(rule.under) || rule.except.iter().any(|e| rel.starts_with(e)) {
                continue;
            }
            let text = std::fs::read_to_string(path).unwrap();
            for v in violations(&rel, &text, rule.forbidden) {
                broken.push(format!("{v} ({})", rule.says));
            }
        }
    }
    assert!(broken.is_empty(), "layering broken:\n{}", broken.join("\n"));
}

#[test]
fn the_check_sees_code_and_skips_comments() {
    let text = "//! see crate::commands\nuse crate::commands::cli::Cli; // here\nlet x = 1; // crate::cli\n";
    assert_eq!(
        violations("x.rs", text, &["crate::commands", "crate::cli"]),
        ["x.rs:2: crate::commands"]
    );
}
