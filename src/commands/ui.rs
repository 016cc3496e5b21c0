//! `mlbuild ui`: the project in a browser ([`crate::ui`]) until Ctrl-C or SIGTERM.

use std::path::Path;

use anyhow::Result;

use crate::error::Exit;
use crate::ui::{Options, TOKEN_VAR};

pub(crate) async fn ui(dir: &Path, host: String, port: u16, open: bool) -> Result<Exit> {
    super::context::require_project_dir(dir)?;
    let token = std::env::var(TOKEN_VAR).ok().filter(|t| !t.is_empty());
    let options = Options {
        dir: dir.to_path_buf(),
        host,
        port,
        token,
        open,
    };
    crate::ui::serve(options, crate::signal::interrupted()).await?;
    Ok(Exit::Ok)
}
