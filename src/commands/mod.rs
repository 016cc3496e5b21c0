//! The command layer: parses nothing itself (clap types in [`cli`]), maps each subcommand's
//! arguments to library calls, prints through one [`Printer`], and renders the final error once
//! ([`diagnostics`]). One file per command family, in the manner of cargo's
//! `src/bin/cargo/commands/`; what several of them open lives in [`context`] once.
//!
//! | file | commands |
//! |---|---|
//! | `run.rs` | `run`, `status`, `explain` |
//! | `init.rs` | `init` |
//! | `watch.rs` | `watch` |
//! | `registry.rs` | `versions`, `show`, `diff`, `tags`, `history`, `runs`, `promote`, `rollback` |
//! | `deploy.rs` | `deploy --mojo` |
//! | `cache.rs` | `cache push \| pull \| verify \| gc` |
//! | `h2o.rs` | `h2o start \| stop \| status` |
//! | `mojo.rs` | `mojo validate` |
//! | `predict.rs` | `predict` |
//! | `serve.rs` | `serve` |
//! | `ui.rs` | `ui` |
//!
//! Layering (docs/architecture.md): nothing outside this directory (and `main.rs`) imports
//! `commands` or `commands::cli`; `tests/integration/layers.rs` checks it.

mod cache;
pub mod cli;
mod context;
mod deploy;
pub mod diagnostics;
mod exp;
mod h2o;
mod init;
mod mojo;
mod predict;
mod registry;
mod run;
mod serve;
mod ui;
mod watch;

use std::path::PathBuf;

use anyhow::Result;

use crate::error::Exit;
use crate::registry::links::Move;
use crate::report::Printer;
use cli::{Cli, Command, ExpCommand, H2oCommand, MojoCommand, RunArgs};
use registry::Read;

/// Runs one invocation: dispatches it and renders its error, if any; returns the exit code.
pub async fn main(cli: Cli) -> Exit {
    let printer = Printer::new(
        wants_json(&cli.command),
        cli.global.quiet,
        cli.global.verbose,
        cli.global.color,
    );
    match dispatch(cli, &printer).await {
        Ok(exit) => exit,
        Err(err) => diagnostics::render(&printer, &err),
    }
}

/// Whether the command was given `--json` (its stdout is then one JSON document or event
/// stream, and no progress bar is drawn).
fn wants_json(command: &Command) -> bool {
    matches!(
        command,
        Command::Run(RunArgs { json: true, .. })
            | Command::Status { json: true, .. }
            | Command::Explain { json: true, .. }
            | Command::Versions { json: true }
            | Command::Tags { json: true }
            | Command::History { json: true, .. }
            | Command::Runs { json: true, .. }
            | Command::Show { json: true, .. }
            | Command::Diff { json: true, .. }
            | Command::Deploy { json: true, .. }
            | Command::Mojo(MojoCommand::Validate { json: true, .. })
            | Command::Exp(
                ExpCommand::Run { json: true, .. } | ExpCommand::Show { json: true, .. }
            )
            | Command::H2o(
                H2oCommand::Start { json: true }
                    | H2oCommand::Stop { json: true }
                    | H2oCommand::Status { json: true }
            )
    )
}

#[allow(
    clippy::too_many_lines,
    reason = "one flat match: each command to its library call"
)]
async fn dispatch(cli: Cli, printer: &Printer) -> Result<Exit> {
    let dir = cli.global.dir.clone().unwrap_or_else(|| PathBuf::from("."));
    // A malformed user config is reported before anything runs (it may name the state DB).
    crate::user_config::load()?;
    match cli.command {
        Command::Run(args) => run::run(&dir, printer, args).await,
        Command::Status {
            json,
            overrides,
            full_refresh,
        } => run::status(&dir, printer, json, overrides, full_refresh).await,
        Command::Explain {
            step,
            json,
            overrides,
            force,
            full_refresh,
        } => {
            let opts = crate::pipeline::RunOptions {
                overrides,
                force,
                full_refresh,
                ..Default::default()
            };
            run::explain(&dir, printer, step, json, opts).await
        }
        Command::Versions { json } => registry::read(&dir, printer, Read::Versions, json).await,
        Command::Show {
            version,
            json,
            export,
        } => registry::read(&dir, printer, Read::Show { version, export }, json).await,
        Command::Diff { old, new, json } => {
            registry::read(&dir, printer, Read::Diff { old, new }, json).await
        }
        Command::Tags { json } => registry::read(&dir, printer, Read::Tags, json).await,
        Command::History { tag, json } => {
            registry::read(&dir, printer, Read::History { tag }, json).await
        }
        Command::Runs { json, page } => {
            registry::read(&dir, printer, Read::Runs { page }, json).await
        }
        Command::Ui { host, port, open } => ui::ui(&dir, host, port, open).await,
        Command::Promote {
            tag,
            version,
            reason,
            json,
        } => registry::move_tag(&dir, printer, &tag, Move::Promote { version, reason }, json).await,
        Command::Rollback { tag, to, json } => {
            registry::move_tag(&dir, printer, &tag, Move::Rollback { to }, json).await
        }
        Command::Deploy {
            mojo,
            tag,
            reason,
            json,
        } => deploy::deploy(&dir, printer, &mojo, &tag, reason.as_deref(), json).await,
        Command::Mojo(MojoCommand::Validate { file, json }) => mojo::validate(printer, &file, json),
        Command::Cache(cmd) => cache::run(&dir, printer, cmd).await,
        Command::H2o(cmd) => h2o::run(&dir, printer, cmd).await,
        Command::Exp(ExpCommand::Run { sets, json }) => exp::run(&dir, printer, &sets, json).await,
        Command::Exp(ExpCommand::Show { json, all }) => exp::show(&dir, printer, json, all).await,
        Command::Exp(ExpCommand::Promote { point, tag }) => {
            exp::promote(&dir, printer, point, &tag).await
        }
        Command::Init { data, target } => init::init(&dir, printer, data, target),
        Command::Predict {
            model,
            input,
            output,
            explain,
        } => predict::predict(&dir, printer, &model, &input, output.as_deref(), explain).await,
        Command::Serve {
            model,
            host,
            port,
            max_body,
            max_rows,
        } => serve::serve(&dir, model, host, port, max_body, max_rows).await,
        Command::Watch {
            overrides,
            interval,
        } => watch::watch(&dir, printer, overrides, interval).await,
    }
}
