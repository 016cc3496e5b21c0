//! Command-line types (clap). Behaviour lives in `commands`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::project::StepName;
use crate::report::ColorChoice;

#[derive(Debug, Parser)]
#[command(
    name = "mlbuild",
    version,
    about = "A declarative, incremental build tool for ML pipelines on H2O-3",
    long_about = "mlbuild takes a project's data from its source to a trained, evaluated, tagged and \
deployable model through eight cached steps: define, locate, prepare, confirm, execute, monitor, \
modify, conclude. Only steps whose inputs changed rerun. A MOJO made elsewhere can be checked \
with `mlbuild mojo validate` and registered with `mlbuild deploy --mojo FILE.zip --tag TAG`.\n\n\
Exit codes: 0 ok, 1 error, 2 usage, 3 escalated (monitor failed: threshold or baseline, after max_attempts), \
4 data-quality gate failed, 130 interrupted.\n\n\
Environment: MLBUILD_H2O_URL, MLBUILD_H2O_EXCHANGE_DIR, MLBUILD_H2O_JAR, MLBUILD_H2O_CDS, MLBUILD_H2O_NATIVE_LIBS, MLBUILD_H2O_EARLY_START, MLBUILD_STEP_SANDBOX, MLBUILD_CACHE_DIR, MLBUILD_STATE_URL, MLBUILD_CONFIG \
(user config, default ~/.config/mlbuild/config.toml: state_url, [remote] url/token, [h2o] url/exchange_dir), NO_COLOR, \
MLBUILD_NO_PROGRESS, MLBUILD_REMOTE_CACHE, MLBUILD_REMOTE_TOKEN, MLBUILD_REMOTE_READ_ONLY, MLBUILD_REMOTE_CA, MLBUILD_SERVE_TOKEN, MLBUILD_UI_TOKEN. \
See docs/ for details."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub global: Global,
}

#[derive(Debug, Args)]
pub struct Global {
    /// Project directory (default: the current directory)
    #[arg(short = 'C', global = true, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// More output; -vv prints each step's key inputs
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only errors and data on stdout
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// When to use colour
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto, global = true)]
    pub color: ColorChoice,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the pipeline up to STEP (default: all eight), rerunning only stale steps
    Run(RunArgs),
    /// Show each step as fresh or stale, and why; never starts H2O
    Status {
        /// One JSON document on stdout
        #[arg(long)]
        json: bool,
        /// Override an ml.toml key for this plan, e.g. --set define.threshold=0.8
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// Plan as `run --full-refresh` would (incremental SQL sources extracted from scratch)
        #[arg(long)]
        full_refresh: bool,
    },
    /// Why STEP would rerun: the first difference, with old and new values; never starts H2O
    Explain {
        /// define, locate, prepare, confirm, execute, monitor, modify, conclude, or a
        /// `[[steps]]` name
        step: StepName,
        /// One JSON document on stdout
        #[arg(long)]
        json: bool,
        /// Override an ml.toml key, as `run --set` would
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// Explain as if `run --force STEP` were given
        #[arg(long, value_name = "STEP")]
        force: Vec<StepName>,
        /// Explain as `run --full-refresh` would run
        #[arg(long)]
        full_refresh: bool,
    },
    /// Rerun the stale steps on every edit of ml.toml or the data files (and every --interval
    /// for a SQL source); one H2O node stays warm
    Watch {
        /// Override an ml.toml key for every iteration
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// Also rerun after SECONDS without an edit, reading the source again (default: 60 for
        /// a SQL source, never for files; 0 turns it off)
        #[arg(long, value_name = "SECONDS")]
        interval: Option<u64>,
    },
    /// List registered versions, oldest first
    Versions {
        #[arg(long)]
        json: bool,
    },
    /// One version: metrics, provenance, card path, tags
    Show {
        version: String,
        #[arg(long)]
        json: bool,
        /// Also write the version's model card and its plots into DIR (card.md, plots/*.svg),
        /// so the card's image links resolve
        #[arg(long, value_name = "DIR")]
        export: Option<std::path::PathBuf>,
    },
    /// Two versions side by side: metrics, params, leaderboards
    Diff {
        old: String,
        new: String,
        #[arg(long)]
        json: bool,
    },
    /// List tags and the versions they point at
    Tags {
        #[arg(long)]
        json: bool,
    },
    /// Point TAG at VERSION (recorded in the tag's history)
    ///
    /// Refused, with nothing changed, when VERSION's MOJO or transform is missing or damaged in
    /// this store.
    Promote {
        /// The tag: 1–100 letters, digits, `.`, `_`, `-` (it names `models/TAG.zip`)
        #[arg(value_parser = tag_name)]
        tag: String,
        version: String,
        /// Why (recorded in the history)
        #[arg(long, default_value = "promote")]
        reason: String,
        #[arg(long)]
        json: bool,
    },
    /// Move TAG back to the version it held before (or to --to VERSION)
    ///
    /// Refused, with nothing changed, when that version's MOJO or transform is missing or
    /// damaged in this store.
    Rollback {
        #[arg(value_parser = tag_name)]
        tag: String,
        #[arg(long, value_name = "VERSION")]
        to: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Every move of TAG: who, when, from, to, why
    History {
        #[arg(value_parser = tag_name)]
        tag: String,
        #[arg(long)]
        json: bool,
    },
    /// Register a MOJO made elsewhere as a version and point TAG at it (validated first)
    Deploy {
        /// The MOJO zip to register
        #[arg(long, value_name = "FILE.zip")]
        mojo: PathBuf,
        /// The tag to point at it (e.g. production); `models/TAG.zip` follows
        #[arg(long, value_parser = tag_name)]
        tag: String,
        /// Why (recorded in the tag's history; default `deploy --mojo <file name>`)
        #[arg(long)]
        reason: Option<String>,
        /// One JSON document on stdout: {version, created, tag, from, model, canonical}
        #[arg(long)]
        json: bool,
    },
    /// MOJO files: check one without registering it
    #[command(subcommand)]
    Mojo(MojoCommand),
    /// The store: push to / pull from the remote cache, verify blobs, collect garbage
    #[command(subcommand)]
    Cache(CacheCommand),
    /// Experiments: run a grid of `--set` values point by point on one warm engine (each point
    /// registers its version and moves no tag), rank the points, promote one
    #[command(subcommand)]
    Exp(ExpCommand),
    /// Keep a local H2O node warm between runs: `run` and `watch` in this project use it
    /// instead of launching their own
    #[command(subcommand)]
    H2o(H2oCommand),
    /// Create an ml.toml for a data file, from a survey of its first 100,000 rows: identifier
    /// and free-text columns go to define.ignore, and the gate's null limit is set above the
    /// data's, so that the first run passes its gate (each choice is a comment and a note)
    Init {
        /// The data file (CSV); its last column is proposed as the target. Looked up in the
        /// project, then where mlbuild runs; written to ml.toml relative to the project
        data: Option<PathBuf>,
        /// The target column
        #[arg(long)]
        target: Option<String>,
    },
    /// Score a CSV natively with a tag, a version or a MOJO file (replays the prepare transform),
    /// on every core, rows in input order
    Predict {
        /// A tag, a version id, or a MOJO file (a name ending `.zip` or with a `/` is a file; a
        /// bare name is a tag or version first)
        #[arg(long, value_name = "TAG|VERSION|FILE.zip")]
        model: String,
        /// The rows to score (CSV with a header, in the data's columns)
        input: PathBuf,
        /// Write the predictions here, replacing it only once every row is scored (default:
        /// stdout); Ctrl-C leaves it as it was (exit 130); a symlink is followed, a FIFO or
        /// device written in place, INPUT refused
        #[arg(short, long, value_name = "OUT.csv")]
        output: Option<PathBuf>,
        /// Also explain each row: after the prediction columns, one contribution per model input
        /// and `BiasTerm`, adding up to the raw score (the margin before the link for GBM,
        /// XGBoost and GLM, the averaged probability for DRF and XRT); TreeSHAP for the trees,
        /// exact for GLM; Deep Learning and Stacked Ensembles are refused (exit 1)
        #[arg(long)]
        explain: bool,
    },
    /// Serve a model over HTTP (POST /predict[?explain=true&top=K], GET /model, GET /health),
    /// following its tag; with MLBUILD_SERVE_TOKEN set, /predict and /model require `Authorization: Bearer TOKEN`
    Serve {
        /// A tag (followed: a moved tag is swapped in; a version that cannot be loaded is
        /// tried again every 5 s, /health saying `stale` meanwhile), a version id, or a MOJO file
        #[arg(long, value_name = "TAG")]
        model: String,
        /// Address to bind
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// Port (0: any free port, printed on stderr)
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// Largest request body, in bytes
        #[arg(long, default_value_t = 1 << 20, value_name = "BYTES")]
        max_body: usize,
        /// Most rows in one request
        #[arg(long, default_value_t = 1000, value_name = "N")]
        max_rows: usize,
    },
    /// List runs, newest first: started, finished, command, status and step counts
    Runs {
        #[arg(long)]
        json: bool,
        /// Which page of 50 runs (1: the newest)
        #[arg(long, default_value_t = 1, value_name = "N")]
        page: u32,
    },
    /// Serve the project's pipeline, steps, runs, models, compare, tags and data in a browser,
    /// live as runs progress, with a JSON API; reading never writes or starts H2O; a Run button
    /// runs the pipeline in the background (cancel stops it); promote and rollback sit behind a
    /// confirmation; off loopback it requires MLBUILD_UI_TOKEN
    Ui {
        /// Address to bind (anything but loopback needs MLBUILD_UI_TOKEN)
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// Port (0: any free port, printed on stderr)
        #[arg(long, default_value_t = 6789)]
        port: u16,
        /// Open the UI in the default browser (xdg-open) once it listens
        #[arg(long)]
        open: bool,
    },
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Run the pipeline up to and including this step: define, locate, prepare, confirm,
    /// execute, monitor, modify, conclude, or a `[[steps]]` name
    pub step: Option<StepName>,
    /// JSON lines on stdout: one event per step, then a `done` event
    #[arg(long)]
    pub json: bool,
    /// Rerun STEP (built-in or `[[steps]]`) and everything after it even when cached (repeatable)
    #[arg(long, value_name = "STEP")]
    pub force: Vec<StepName>,
    /// Override an ml.toml key for this run, e.g. --set execute.max_models=8 (not written to ml.lock)
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Fail when ml.lock would change (CI mode)
    #[arg(long)]
    pub frozen: bool,
    /// Print what would run and why; run nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Extract an incremental SQL source from scratch instead of past its watermark (also the
    /// way out when its state is damaged or its snapshot is gone: rows the database deleted
    /// since are not in the new snapshot)
    #[arg(long)]
    pub full_refresh: bool,
}

#[derive(Debug, Subcommand)]
pub enum MojoCommand {
    /// Check a MOJO zip: structure, model.ini fields, domains, each algorithm's files, safe paths,
    /// and whether mlbuild scores it natively; exit 1 when invalid
    Validate {
        /// The MOJO zip
        #[arg(value_name = "FILE.zip")]
        file: PathBuf,
        /// The report as one JSON document on stdout
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Upload the entries named in ml.lock, and their blobs, to the remote cache
    Push,
    /// Fetch the entries named in ml.lock, and their blobs, from the remote cache (verified)
    Pull,
    /// Re-hash every local blob (moving corrupt ones to v1/quarantine/), check every entry's
    /// outputs exist, and name every version whose MOJO, card, plots or transform are damaged or
    /// missing, with the command that repairs it; the summary counts corrupt blobs, damaged
    /// entries and damaged versions apart; exit 1 on any problem
    Verify,
    /// Delete what no tag, ml.lock or recent run ([cache] keep_runs) reaches, and what no
    /// running load needs from [h2o] exchange_dir
    Gc {
        /// List what would be deleted, with sizes; delete nothing
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ExpCommand {
    /// Run every point of the grid, one ordinary run each (recorded with its overrides; no tag
    /// moved, no hook fired, no ml.lock written); steps whose keys points share run once
    Run {
        /// A dimension of the grid: KEY=V1,V2,… (values split on commas outside brackets and
        /// quotes; repeatable, the first flag varies slowest), e.g. --set execute.max_models=2,4
        #[arg(long = "set", value_name = "KEY=V1,V2", required = true)]
        sets: Vec<String>,
        /// JSON lines on stdout: each point's step and done events, then an `experiment` event
        #[arg(long)]
        json: bool,
    },
    /// The newest experiment's points, best first by the primary metric, with the parameters
    /// that differ between them
    Show {
        /// One JSON document on stdout
        #[arg(long)]
        json: bool,
        /// Show every key of the grid, not only those that differ
        #[arg(long)]
        all: bool,
    },
    /// Move TAG to the version POINT of the newest experiment registered, as `promote` does
    Promote {
        point: u32,
        /// The tag: 1–100 letters, digits, `.`, `_`, `-` (it names `models/TAG.zip`)
        #[arg(value_parser = tag_name)]
        tag: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum H2oCommand {
    /// Launch a local H2O node that outlives mlbuild (as a run would: the pinned version,
    /// `[h2o] memory`, 127.0.0.1, files in the cache dir) and print its URL; a no-op when one is
    /// already up
    Start {
        /// One JSON document on stdout: {status: started|running, url, pid, version, memory, …}
        #[arg(long)]
        json: bool,
    },
    /// Stop the warm node (SIGTERM, SIGKILL after 10 s) and remove its record
    Stop {
        /// One JSON document on stdout: {status: stopped|killed|stale|not_running, …}
        #[arg(long)]
        json: bool,
    },
    /// Whether a warm node runs: URL, pid, version, memory, uptime, cloud health
    Status {
        /// One JSON document on stdout: {status: running|unhealthy|stale|not_running, …}
        #[arg(long)]
        json: bool,
    },
}

/// A tag argument: refused by clap (a usage error, exit 2) unless it is a valid tag name.
fn tag_name(s: &str) -> Result<String, String> {
    if crate::registry::is_valid_tag(s) {
        Ok(s.to_string())
    } else {
        Err(format!(
            "`{}` is not a tag name: a tag is 1–100 letters, digits, `.`, `_` and `-`, not starting with `.` or `-` (it names `models/<TAG>.zip`), e.g. `production`",
            crate::report::sanitize(s)
        ))
    }
}
