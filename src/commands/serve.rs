//! `mlbuild serve MODEL`: the HTTP scoring server ([`crate::serve`]) until Ctrl-C or SIGTERM.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;

use crate::error::Exit;
use crate::serve::{Options, TOKEN_VAR};

pub(crate) async fn serve(
    dir: &Path,
    model: String,
    host: String,
    port: u16,
    max_body: usize,
    max_rows: usize,
) -> Result<Exit> {
    let token = std::env::var(TOKEN_VAR).ok().filter(|t| !t.is_empty());
    let options = Options {
        dir: dir.to_path_buf(),
        token,
        model,
        host,
        port,
        max_body,
        max_rows,
        poll: Duration::from_secs(1),
    };
    crate::serve::serve(options, crate::signal::interrupted()).await?;
    Ok(Exit::Ok)
}
