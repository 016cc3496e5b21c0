//! The registry's commands: `versions`, `show`, `diff`, `tags`, `history` (read-only, DESIGN.md
//! §8) and `promote`, `rollback` (a tag moves, `models/TAG.zip` follows under the tag lock).

use std::path::Path;

use anyhow::Result;

use super::context::{open_for_tags, open_registry_read, print_doc};
use crate::error::Exit;
use crate::project::Paths;
use crate::registry::links::Move;
use crate::registry::{self, views, Registry, TagMove};
use crate::report::Printer;

/// A read-only registry command, on the registry opened read-only.
pub(crate) enum Read {
    Versions,
    Show {
        version: String,
        export: Option<std::path::PathBuf>,
    },
    Diff {
        old: String,
        new: String,
    },
    Tags,
    History {
        tag: String,
    },
    Runs {
        page: u32,
    },
}

pub(crate) async fn read(dir: &Path, printer: &Printer, cmd: Read, json: bool) -> Result<Exit> {
    let reg = open_registry_read(dir).await?;
    let result = read_on(&reg, dir, printer, cmd, json).await;
    // Closing lets SQLite remove the `-wal`/`-shm` files its readers open.
    reg.close().await;
    result
}

async fn read_on(
    reg: &Registry,
    dir: &Path,
    printer: &Printer,
    cmd: Read,
    json: bool,
) -> Result<Exit> {
    match cmd {
        Read::Versions => {
            let versions = reg.versions().await?;
            print_doc(
                printer,
                json,
                versions.as_slice(),
                registry::render_versions,
            )
        }
        Read::Show { version, export } => {
            if let Some(out) = &export {
                let (id, written) = views::export_card(reg, dir, &version, out).await?;
                printer.status(
                    "Exported",
                    &format!("the card of {id} ({written} files) to `{}`", out.display()),
                );
            }
            let doc = views::show_doc(reg, dir, &version).await?;
            let id = doc["id"].as_str().unwrap_or(&version).to_string();
            let paths = Paths::resolve(dir);
            registry::links::warn_stale(printer, reg, &paths, |l| l.version == id).await?;
            print_doc(printer, json, &doc, views::show_text)
        }
        Read::Diff { old, new } => {
            let (doc, text) = views::diff(reg, dir, &old, &new).await?;
            print_doc(printer, json, &doc, |_| text.clone())
        }
        Read::Tags => {
            let tags = reg.tags().await?;
            print_doc(printer, json, &tags, registry::render_tags)?;
            let paths = Paths::resolve(dir);
            registry::links::warn_stale(printer, reg, &paths, |_| true).await?;
            Ok(Exit::Ok)
        }
        Read::Runs { page } => {
            let per = crate::ui::RUNS_PER_PAGE;
            let runs = reg.run_summaries(page.saturating_sub(1) * per, per).await?;
            print_doc(printer, json, runs.as_slice(), registry::render_runs)
        }
        Read::History { tag } => {
            let events = reg.history(&tag).await?;
            print_doc(printer, json, events.as_slice(), registry::render_history)
        }
    }
}

/// `promote` and `rollback`: [`registry::links::move_tag`], then what moved is reported.
pub(crate) async fn move_tag(
    dir: &Path,
    printer: &Printer,
    tag: &str,
    how: Move,
    json: bool,
) -> Result<Exit> {
    let (reg, store, models) = open_for_tags(dir).await?;
    let by = registry::current_user();
    let moved = registry::links::move_tag(&reg, &store, &models, printer, tag, how, &by).await;
    // Closing checkpoints SQLite's WAL: no `-wal` outlives the command, whatever happened.
    reg.close().await;
    let (moved, synced) = moved?;
    registry::links::report(printer, &synced, &[tag]);
    report_move(printer, json, &moved)
}

fn report_move(printer: &Printer, json: bool, moved: &TagMove) -> Result<Exit> {
    if json {
        printer.data(&serde_json::to_string_pretty(moved)?);
    } else if !moved.changed() {
        printer.status(
            "Unchanged",
            &format!("tag `{}` already names {}", moved.tag, moved.to),
        );
    } else {
        printer.status(
            "Tagged",
            &format!(
                "{} → {} (was {})",
                moved.tag,
                moved.to,
                moved.from.as_deref().unwrap_or("unset")
            ),
        );
    }
    Ok(Exit::Ok)
}
