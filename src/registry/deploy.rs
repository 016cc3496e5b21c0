//! `mlbuild deploy --mojo FILE.zip --tag TAG`: registers a MOJO made elsewhere (another team's
//! H2O, a notebook, H2O-3 Secure) as a version and points TAG at it.
//!
//! The flow, in this order, so that a refused file changes nothing:
//! 1. read and validate the file ([`crate::mojo::validate`]); an invalid MOJO is refused with
//!    its report, before the store or the registry is touched; a malformed tag name too;
//! 2. read the project's `ml.toml` if there is one (its `[conclude.deploy]` hooks; a broken file
//!    stops here) — without one, deploy works in the bare directory (cache and registry in
//!    `cache/` or `MLBUILD_CACHE_DIR`, as for every command);
//! 3. store the bytes and a generated model card in the CAS;
//! 4. register the version by its canonical digest — the same MOJO deployed twice (or already
//!    concluded) keeps its version, `created` false — with `run` null, `metrics` `{}` (mlbuild
//!    has no holdout for it) and a provenance naming the file (its name only), the H2O and MOJO
//!    versions, mlbuild's version and who deployed it;
//! 5. move TAG (reason: `--reason`, else `deploy --mojo <file name>`), recorded in its history
//!    and undone by `rollback` like any move;
//! 6. write `models/<TAG>.zip` atomically (the registered version's bytes), under the lock of
//!    `models/` taken before the tag moved, repairing any other tag's stale file
//!    ([`super::links`]); a version registered earlier whose MOJO left the store gets this
//!    file's bytes (recorded in its history);
//! 7. when TAG moved, run the `[conclude.deploy]` hooks with conclude's payload (event
//!    `deployed`, `run` null, plus `source` and `file`); a failing hook is a warning.
//!
//! Formats: `docs/registry.md` ("deploy --mojo").

use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::{json, Value};

use super::{current_user, NewVersion, Registry};
use crate::error::{Diagnostic, Exit};
use crate::mojo::validate::{self, Report};
use crate::project::Paths;
use crate::report::Printer;
use crate::store::Store;

/// What `deploy --json` prints.
#[derive(Debug, Serialize)]
pub struct Deployed {
    pub version: String,
    /// Whether this deploy registered the version (false: the canonical digest was known).
    pub created: bool,
    pub tag: String,
    /// The version TAG pointed at before (null: the tag is new).
    pub from: Option<String>,
    /// blake3 of the version's MOJO bytes (what `models/<TAG>.zip` holds).
    pub model: String,
    pub canonical: String,
}

/// A MOJO file that passed validation (flow step 1, done by the command, which prints the
/// report of a refused file).
pub struct Checked {
    pub bytes: Vec<u8>,
    /// The file's name without its directories.
    pub name: String,
    pub report: Report,
}

/// Reads and validates FILE (flow step 1): a valid file is [`Checked`]; an invalid one gives
/// its report (`Err`), nothing being touched. A malformed tag name is refused first.
pub fn check(file: &Path, tag: &str) -> Result<std::result::Result<Checked, Report>> {
    check_tag(tag)?;
    let bytes = validate::read(file)?;
    let name = file_name(file);
    let mut report = validate::validate(&bytes);
    report.file = Some(name.clone());
    if !report.valid {
        return Ok(Err(report));
    }
    Ok(Ok(Checked {
        bytes,
        name,
        report,
    }))
}

/// The error of a refused file, after its report was shown.
pub fn refused(report: &Report) -> anyhow::Error {
    Diagnostic::new(format!("refusing to deploy: {}", report.refusal()))
        .hint("nothing was registered; `mlbuild mojo validate FILE --json` lists the problems with their codes (docs/mojo.md)")
        .into()
}

/// Flow steps 2–7 for a checked file: registers it, moves TAG, writes `models/TAG.zip`, runs
/// the deploy hooks; returns what `deploy --json` prints.
#[allow(
    clippy::too_many_lines,
    reason = "the flow's steps 2-7 of the module doc, in order"
)]
pub async fn deploy(
    dir: &Path,
    printer: &Printer,
    checked: Checked,
    tag: &str,
    reason: Option<&str>,
) -> Result<Deployed> {
    let Checked {
        bytes,
        name,
        report,
    } = checked;
    for warning in &report.warnings {
        printer.warn(&warning.to_string());
    }
    let canonical = report
        .canonical
        .clone()
        .context("a valid MOJO has a canonical digest")?;

    let paths = Paths::resolve(dir);
    // Read before anything changes: a broken ml.toml stops the deploy with nothing done.
    let hooks = if paths.project.join("ml.toml").is_file() {
        Some(
            crate::config::load(&paths.project, &[])?
                .config
                .conclude
                .deploy,
        )
    } else {
        None
    };

    std::fs::create_dir_all(&paths.cache)
        .with_context(|| format!("creating `{}`", paths.cache.display()))?;
    let store = Store::open(&paths.cache)?;
    // Bytes stored under this digest but damaged are moved aside, so these replace them.
    let digest = blake3::hash(&bytes).to_hex().to_string();
    if store.contains(&digest) {
        let _ = store.read_verified(&digest);
    }
    let had_bytes = store.contains(&digest);
    let model = store.put_bytes(&bytes)?;
    let card = store.put_bytes(card(&report, &model).as_bytes())?;
    let registry = Registry::open(&paths.state_url).await?;
    let by = current_user();
    let (version, created) = registry
        .register(NewVersion {
            model: model.clone(),
            canonical: canonical.clone(),
            algo: display_algo(report.algorithm.as_deref().unwrap_or("?")),
            metrics: json!({}),
            card,
            provenance: json!({
                "source": "deploy",
                "file": name,
                "h2o_version": report.h2o_version,
                "mojo_version": report.mojo_version,
                "mlbuild_version": env!("CARGO_PKG_VERSION"),
                "deployed_by": by,
            }),
            run: None,
        })
        .await?;
    if created {
        printer.status(
            "Registered",
            &format!("version {} ({})", version.id, &model[..12]),
        );
    } else {
        printer.status(
            "Found",
            &format!(
                "version {} (its canonical digest is already registered)",
                version.id
            ),
        );
        repair(
            &registry, &store, printer, &version, &model, had_bytes, &name, &by,
        )
        .await?;
    }

    // The tag moves and `models/<TAG>.zip` follows it under the lock of `models/`.
    let lock = super::links::lock_for(&paths.models, printer)?;
    let default_reason = format!("deploy --mojo {name}");
    let moved = registry
        .move_tag(tag, &version.id, &by, reason.unwrap_or(&default_reason))
        .await?;
    printer.status(
        "Tagged",
        &format!(
            "{} → {} (was {})",
            moved.tag,
            moved.to,
            moved.from.as_deref().unwrap_or("unset")
        ),
    );
    let synced = super::links::sync(&registry, &store, &paths.models, &lock).await?;
    drop(lock);
    super::links::report(printer, &synced, &[tag]);
    let version = registry.get(&version.id).await?.unwrap_or(version);
    let link = paths.models.join(format!("{tag}.zip"));
    let written =
        std::fs::read(&link).is_ok_and(|b| blake3::hash(&b).to_hex().to_string() == version.model);
    if written {
        printer.status("Wrote", &format!("models/{tag}.zip"));
    }

    if let Some(hooks) = hooks.filter(|h| !h.is_empty() && moved.changed()) {
        let payload = json!({
            "event": "deployed",
            "version": version.id,
            "tag": tag,
            "model": version.model,
            "canonical": version.canonical,
            "card": version.card,
            "run": Value::Null,
            "source": "deploy",
            "file": name,
        });
        crate::report::hooks::notify(printer, "deploy", &hooks, &payload, &paths.project).await;
    }

    registry.close().await;
    Ok(Deployed {
        version: version.id,
        created,
        tag: moved.tag,
        from: moved.from,
        model: version.model,
        canonical: version.canonical,
    })
}

/// A version registered earlier (same canonical digest) whose MOJO bytes have left the store
/// gets this file's bytes: the same bytes are recorded as restored, other bytes (another
/// download of the same model) replace them. Recorded in the version's history.
#[allow(clippy::too_many_arguments)]
async fn repair(
    registry: &Registry,
    store: &Store,
    printer: &Printer,
    version: &super::Version,
    model: &str,
    had_bytes: bool,
    file: &str,
    by: &str,
) -> Result<()> {
    let restored = version.model == model && !had_bytes;
    let replaced = version.model != model && !store.contains(&version.model);
    if !restored && !replaced {
        return Ok(());
    }
    let reason =
        format!("its MOJO was not in the store; deploy --mojo {file} (same canonical digest)");
    if registry
        .repair_blob(
            &version.id,
            &super::Blob::Mojo,
            &version.model,
            model,
            by,
            &reason,
        )
        .await?
    {
        printer.status(
            "Repaired",
            &format!(
                "version {}: its MOJO {} from `{file}`",
                version.id,
                if restored { "restored" } else { "replaced" }
            ),
        );
    }
    Ok(())
}

/// The file's name without its directories: provenance and messages never hold a local path.
fn file_name(file: &Path) -> String {
    file.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| file.display().to_string())
}

fn check_tag(tag: &str) -> Result<()> {
    if super::is_valid_tag(tag) {
        return Ok(());
    }
    Err(Diagnostic::new(format!("invalid tag name `{tag}`"))
        .hint(super::TAG_RULE)
        .exit(Exit::Usage)
        .into())
}

/// H2O's own algorithm names, as AutoML's leaderboard (and so conclude) writes them, so that
/// `versions` and `diff` read the same for concluded and deployed versions.
fn display_algo(algo: &str) -> String {
    match algo {
        "gbm" => "GBM",
        "drf" => "DRF",
        "glm" => "GLM",
        "xgboost" => "XGBoost",
        "deeplearning" => "DeepLearning",
        "stackedensemble" => "StackedEnsemble",
        other => other,
    }
    .to_string()
}

/// The model card of an external MOJO: what the MOJO itself says. No timestamps or user
/// names, so the same MOJO gets the same card.
fn card(report: &Report, model: &str) -> String {
    let q = |v: &Option<String>| v.clone().unwrap_or_else(|| "?".into());
    let rows = [
        ("file", format!("`{}`", q(&report.file))),
        (
            "algorithm",
            format!(
                "{} (`{}`)",
                display_algo(report.algorithm.as_deref().unwrap_or("?")),
                q(&report.algorithm)
            ),
        ),
        (
            "problem",
            match (&report.category, report.n_classes) {
                (Some(c), Some(n)) if c != "Regression" => format!("{c}, {n} classes"),
                (c, _) => q(c),
            },
        ),
        ("response", format!("`{}`", q(&report.response))),
        ("inputs", report.columns.len().to_string()),
        (
            "trained with",
            format!(
                "H2O {} (MOJO {})",
                q(&report.h2o_version),
                q(&report.mojo_version)
            ),
        ),
        (
            "canonical MOJO digest",
            format!("`{}`", q(&report.canonical)),
        ),
        ("MOJO bytes (blake3)", format!("`{model}`")),
        (
            "native scoring",
            match (&report.scorable, &report.scorable_reason) {
                (true, _) => "yes".to_string(),
                (false, why) => format!("no: {}", q(why)),
            },
        ),
    ];
    let mut s = format!(
        "# Model card: external MOJO `{}`\n\n\
Registered with `mlbuild deploy --mojo`: the model was trained outside this project, so mlbuild \
has no training data, leaderboard or holdout metrics for it. What follows is what the MOJO \
itself declares.\n\n| | |\n|---|---|\n",
        q(&report.file)
    );
    for (name, value) in &rows {
        s.push_str(&format!("| {name} | {value} |\n"));
    }
    s.push_str("\n## Inputs\n\n| column | type |\n|---|---|\n");
    for c in &report.columns {
        let kind = match c.levels {
            Some(n) => format!("categorical ({n} levels)"),
            None => "numeric".into(),
        };
        s.push_str(&format!("| `{}` | {kind} |\n", c.name));
    }
    if !report.warnings.is_empty() {
        s.push_str("\n## Validation warnings\n\n");
        for w in &report.warnings {
            s.push_str(&format!("- {w}\n"));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_names_are_file_names() {
        for ok in ["production", "staging-2", "v1.2_rc"] {
            assert!(check_tag(ok).is_ok(), "{ok}");
        }
        for bad in ["", "../x", "a/b", ".hidden", "-x", "a b", "x\0"] {
            assert!(check_tag(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn card_is_deterministic_and_names_the_inputs() {
        let bytes = std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mojo/gbm_bin.zip"),
        )
        .unwrap();
        let mut report = validate::validate(&bytes);
        report.file = Some("gbm_bin.zip".into());
        let a = card(&report, "abc");
        assert_eq!(a, card(&report, "abc"));
        assert!(a.contains("| `RACE` | categorical (3 levels) |"), "{a}");
        assert!(a.contains("GBM (`gbm`)"), "{a}");
    }
}
