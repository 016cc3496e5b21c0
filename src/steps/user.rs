//! A user step (`[[steps]]`): its key inputs, and its run in a fresh directory with only what
//! it declares. docs/steps.md has the rules; this module is where they hold.
//!
//! The run: a new directory in the store's temp bucket; each declared input copied in at its
//! project-relative path (a reflink where the filesystem allows, else a copy, never a hard
//! link); each upstream output it uses copied to `.mlbuild/use/STEP.OUTPUT` after its bytes
//! are verified; its params written to `.mlbuild/params.json`. The command starts there with a
//! cleared environment — `PATH=/usr/local/bin:/usr/bin:/bin`, `HOME` and `TMPDIR` inside the
//! directory, `LANG=C.UTF-8`, and the variables it lists in `env` — under `bwrap` when that
//! works (everything read-only but its directory), else with the project's files checked
//! before and after (a write there fails the step). Its stdout and stderr go to files in the
//! directory; a non-zero exit or a missing output fails the step with stderr's last lines.
//! Outputs go to the store; the directory is removed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{json, Value};

use super::contract::{Ctx, Mode, StepOutput};
use crate::config::schema::UserStep;
use crate::config::user_step::{parse_template, Piece};
use crate::error::Diagnostic;
use crate::store::{StatCache, Store};

/// The `PATH` a step sees unless it lists `PATH` in `env`.
pub const MINIMAL_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// How long a tool's `--version` may take.
const TOOL_TIMEOUT: Duration = Duration::from_secs(30);

/// Lines of stderr shown when the command fails.
const STDERR_TAIL: usize = 20;

/// What a user step's key was computed from, and what its run needs.
pub struct Keyed {
    pub inputs: Value,
    /// Declared input files: (file in the project, project-relative path).
    files: Vec<(PathBuf, String)>,
    /// `STEP.OUTPUT` → the blob holding it.
    blobs: BTreeMap<String, String>,
}

/// The platform entered into user steps' keys.
pub fn platform() -> String {
    format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH)
}

/// The step's key inputs. `upstream` maps `STEP.OUTPUT` to (digest for the key, blob digest).
/// Tool versions come from the memo; in [`Mode::Plan`] a tool never probed is shown as such
/// (planning never runs user commands), in [`Mode::Run`] it is probed now.
pub async fn key_inputs(
    ctx: &Ctx<'_>,
    step: &UserStep,
    upstream: &BTreeMap<String, (String, String)>,
) -> Result<Keyed> {
    let project = &ctx.paths.project;
    let files = expand_inputs(project, step)?;
    let mut stat = StatCache::load(&ctx.store.stat_cache_path());
    let mut digests = serde_json::Map::new();
    for (file, shown) in &files {
        let digest = stat
            .digest(file)
            .with_context(|| format!("step `{}`: reading input `{shown}`", step.name))?;
        digests.insert(shown.clone(), Value::String(digest));
    }
    stat.save()?;
    let mut uses = serde_json::Map::new();
    let mut blobs = BTreeMap::new();
    for used in &step.uses {
        let Some((digest, blob)) = upstream.get(used) else {
            anyhow::bail!(
                "step `{}` uses `{used}`, which this run did not produce",
                step.name
            );
        };
        uses.insert(used.clone(), Value::String(digest.clone()));
        blobs.insert(used.clone(), blob.clone());
    }
    let env: serde_json::Map<String, Value> = step
        .env
        .iter()
        .map(|k| {
            let v = std::env::var(k).map_or(Value::Null, Value::String);
            (k.clone(), v)
        })
        .collect();
    let tools = tool_versions(ctx.store, project, step, ctx.mode).await?;
    let inputs = json!({
        "run": step.run,
        "outputs": step.outputs,
        "params": step.params,
        "env": env,
        "tools": tools,
        "platform": platform(),
        "inputs": digests,
        "uses": uses,
    });
    Ok(Keyed {
        inputs,
        files,
        blobs,
    })
}

/// The declared inputs, each a file in the project with its project-relative path, sorted.
fn expand_inputs(project: &Path, step: &UserStep) -> Result<Vec<(PathBuf, String)>> {
    let mut files = BTreeMap::new();
    for pattern in &step.inputs {
        let matches = crate::source::files::glob_files(project, pattern).map_err(|e| {
            Diagnostic::new(format!(
                "step `{}`: `{pattern}` in `inputs` is not a valid glob: {e}",
                step.name
            ))
            .hint("`*` matches within a name, `**` across directories, `?` one character")
        })?;
        if matches.is_empty() {
            return Err(Diagnostic::new(format!(
                "step `{}`: no file matches `{pattern}` in `inputs`",
                step.name
            ))
            .hint("inputs are paths relative to the project directory")
            .into());
        }
        for m in matches {
            if let Ok(rel) = m.strip_prefix(project) {
                files.insert(rel.to_string_lossy().into_owned(), m.clone());
            }
        }
    }
    Ok(files.into_iter().map(|(rel, abs)| (abs, rel)).collect())
}

/// The programs' version outputs, from the memo (keyed by the program's path, size and mtime
/// and the arguments) or, in a run, by running them.
async fn tool_versions(
    store: &Store,
    project: &Path,
    step: &UserStep,
    mode: Mode,
) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    if step.tools.is_empty() {
        return Ok(out);
    }
    let memo_path = store.tool_memo_path();
    let mut memo: BTreeMap<String, String> = std::fs::read(&memo_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let mut changed = false;
    let path_var = step_path(step);
    for tool in &step.tools {
        let mut words = tool.split_whitespace();
        let program = words.next().unwrap_or_default();
        let mut args: Vec<&str> = words.collect();
        if args.is_empty() {
            args.push("--version");
        }
        let Some(resolved) = which(project, program, &path_var) else {
            return Err(Diagnostic::new(format!(
                "step `{}`: tool `{program}` is not on the step's PATH ({path_var})",
                step.name
            ))
            .hint("give its full path in `tools`, or list `PATH` in `env`")
            .into());
        };
        let meta = std::fs::metadata(&resolved)
            .with_context(|| format!("reading `{}`", resolved.display()))?;
        let stamp = format!(
            "{}\u{0}{}\u{0}{}",
            resolved.display(),
            crate::h2o::provision::stamp_of(&meta),
            args.join("\u{1}")
        );
        let version = match (memo.get(&stamp), mode) {
            (Some(v), _) => v.clone(),
            (None, Mode::Plan) => "(not probed yet: `mlbuild run` asks it)".to_string(),
            (None, Mode::Run) => {
                let v = probe(&resolved, &args, &path_var).await.with_context(|| {
                    format!("step `{}`: asking `{tool}` for its version", step.name)
                })?;
                memo.insert(stamp, v.clone());
                changed = true;
                v
            }
        };
        out.insert(tool.clone(), version);
    }
    if changed {
        crate::store::write_atomic(&memo_path, &serde_json::to_vec_pretty(&memo)?)?;
    }
    Ok(out)
}

async fn probe(program: &Path, args: &[&str], path_var: &str) -> Result<String> {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .env_clear()
        .env("PATH", path_var)
        .env("LANG", "C.UTF-8")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(TOOL_TIMEOUT, cmd.output())
        .await
        .map_err(|_| anyhow::anyhow!("no answer within {} s", TOOL_TIMEOUT.as_secs()))??;
    if !out.status.success() {
        anyhow::bail!(
            "it exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(text.trim().chars().take(200).collect())
}

/// The step's `PATH`: the minimal one, or mlbuild's when the step lists `PATH` in `env`.
fn step_path(step: &UserStep) -> String {
    if step.env.iter().any(|e| e == "PATH") {
        std::env::var("PATH").unwrap_or_else(|_| MINIMAL_PATH.to_string())
    } else {
        MINIMAL_PATH.to_string()
    }
}

/// A program named with a `/` is a path (relative to the project); otherwise it is looked
/// for on `path_var`.
fn which(project: &Path, program: &str, path_var: &str) -> Option<PathBuf> {
    if program.contains('/') {
        let p = project.join(program);
        return p.is_file().then_some(p);
    }
    std::env::split_paths(path_var)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// How a step's writes are confined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sandbox {
    /// `bwrap`: the filesystem read-only but the step's directory.
    Bwrap,
    /// No `bwrap`: the project's files compared before and after.
    Checked,
}

impl Sandbox {
    fn name(self) -> &'static str {
        match self {
            Sandbox::Bwrap => "bwrap",
            Sandbox::Checked => "checked",
        }
    }
}

/// Whether `bwrap` is there and can make a sandbox on this machine (asked once per process).
fn sandbox() -> Sandbox {
    static FOUND: std::sync::OnceLock<Sandbox> = std::sync::OnceLock::new();
    *FOUND.get_or_init(|| {
        if std::env::var("MLBUILD_STEP_SANDBOX").is_ok_and(|v| v == "checked") {
            return Sandbox::Checked;
        }
        let works = std::process::Command::new("bwrap")
            .args(["--ro-bind", "/", "/", "--dev", "/dev", "--", "true"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if works {
            Sandbox::Bwrap
        } else {
            Sandbox::Checked
        }
    })
}

/// Runs the step and stores its outputs.
#[allow(
    clippy::too_many_lines,
    reason = "the run's order: directory, inputs, command, checks, outputs"
)]
pub async fn run(ctx: &Ctx<'_>, step: &UserStep, keyed: &Keyed) -> Result<StepOutput> {
    let store = ctx.store;
    let dir = store.step_dir()?;
    let work = dir.path().to_path_buf();
    for (file, rel) in &keyed.files {
        let dest = work.join(rel);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating `{}`", parent.display()))?;
        }
        reflink_copy::reflink_or_copy(file, &dest)
            .with_context(|| format!("copying input `{rel}` into the step's directory"))?;
    }
    let meta = work.join(".mlbuild");
    std::fs::create_dir_all(meta.join("use"))?;
    std::fs::create_dir_all(meta.join("scratch"))?;
    for (used, blob) in &keyed.blobs {
        let src = store
            .verified_path(blob)
            .with_context(|| format!("step `{}`: reading `{used}`", step.name))?;
        reflink_copy::reflink_or_copy(&src, meta.join("use").join(used))
            .with_context(|| format!("copying `{used}` into the step's directory"))?;
    }
    std::fs::write(
        meta.join("params.json"),
        serde_json::to_vec_pretty(&step.params)?,
    )?;
    let argv = expand(step)?;
    let sandbox = sandbox();
    // Not compared: the cache (the step's directory is in it), `models/`, the state DB.
    let skip = [
        ctx.paths.cache.clone(),
        ctx.paths.models.clone(),
        ctx.paths.project.join(".git"),
    ];
    let before = match sandbox {
        Sandbox::Checked => Some(project_stamps(&ctx.paths.project, &skip)),
        Sandbox::Bwrap => None,
    };
    let stdout_path = meta.join("stdout");
    let stderr_path = meta.join("stderr");
    let mut cmd = match sandbox {
        Sandbox::Bwrap => {
            let mut c = tokio::process::Command::new("bwrap");
            // No private /tmp: a write there would succeed and vanish; `TMPDIR` is inside the
            // step's directory.
            c.args(["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"])
                .args(["--die-with-parent", "--bind"])
                .arg(&work)
                .arg(&work)
                .arg("--chdir")
                .arg(&work)
                .arg("--")
                .args(&argv);
            c
        }
        Sandbox::Checked => {
            let mut c = tokio::process::Command::new(&argv[0]);
            c.args(&argv[1..]);
            c
        }
    };
    cmd.env_clear()
        .env("PATH", step_path(step))
        .env("HOME", &work)
        .env("TMPDIR", meta.join("scratch"))
        .env("LANG", "C.UTF-8");
    for var in &step.env {
        if let Some(v) = std::env::var_os(var) {
            cmd.env(var, v);
        }
    }
    cmd.current_dir(&work)
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&stdout_path)?)
        .stderr(std::fs::File::create(&stderr_path)?)
        .kill_on_drop(true);
    let shown = argv.join(" ");
    ctx.printer
        .detail(1, &format!("{}: {shown} ({})", step.name, sandbox.name()));
    let started = std::time::Instant::now();
    // Its own process group: a run that is interrupted (Ctrl-C drops this future) stops the
    // command and whatever it started, not only the process mlbuild spawned.
    cmd.process_group(0);
    let mut child = cmd.spawn().map_err(|e| {
        Diagnostic::new(format!("step `{}`: could not start `{}`: {e}", step.name, argv[0]))
            .hint("the step sees PATH=/usr/local/bin:/usr/bin:/bin unless it lists `PATH` in `env`; or give the program's full path")
    })?;
    let group = GroupKill(child.id());
    let status = child.wait().await?;
    group.disarm();
    let seconds = started.elapsed().as_secs_f64();
    let tail = || stderr_tail(&stderr_path);
    if !status.success() {
        return Err(Diagnostic::new(format!(
            "step `{}`: `{shown}` {}{}",
            step.name,
            describe_exit(status),
            tail()
        ))
        .hint("nothing was cached; fix the command and run again")
        .into());
    }
    if let Some(before) = before {
        let after = project_stamps(&ctx.paths.project, &skip);
        let touched = changed_files(&before, &after, &ctx.paths.project);
        if !touched.is_empty() {
            return Err(Diagnostic::new(format!(
                "step `{}` wrote into the project: {}",
                step.name,
                touched.join(", ")
            ))
            .hint(
                "a step writes only inside its own directory: declare what it writes in `outputs`",
            )
            .into());
        }
    }
    let mut outputs = BTreeMap::new();
    let mut sizes = serde_json::Map::new();
    let mut missing = Vec::new();
    for (name, rel) in &step.outputs {
        let file = work.join(rel);
        // A regular file of its own: not a symlink (to a device, or out of the directory).
        if !std::fs::symlink_metadata(&file).is_ok_and(|m| m.is_file()) {
            missing.push(format!("`{name}` ({rel})"));
            continue;
        }
        let digest = store.put_file(&file)?;
        sizes.insert(
            name.clone(),
            json!({ "path": rel, "bytes": std::fs::metadata(&file)?.len() }),
        );
        outputs.insert(name.clone(), digest);
    }
    if !missing.is_empty() {
        return Err(Diagnostic::new(format!(
            "step `{}`: `{shown}` exited 0 but did not write {} as a regular file{}",
            step.name,
            missing.join(", "),
            tail()
        ))
        .hint("write each declared output at its path, relative to the step's directory (use `{out.NAME}`)")
        .into());
    }
    Ok(StepOutput {
        outputs,
        output_digests: None,
        result: json!({
            "outputs": sizes,
            "sandbox": sandbox.name(),
            "seconds": (seconds * 1000.0).round() / 1000.0,
        }),
    })
}

/// Kills a step's process group when dropped before [`GroupKill::disarm`] (the run was
/// interrupted while the command ran).
struct GroupKill(Option<u32>);

impl GroupKill {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for GroupKill {
    fn drop(&mut self) {
        if let Some(pid) = self.0.and_then(|p| libc::pid_t::try_from(p).ok()) {
            // SAFETY: signals the process group this step created (`process_group(0)`).
            unsafe { libc::kill(-pid, libc::SIGKILL) };
        }
    }
}

/// The command line with placeholders filled in: paths relative to the step's directory.
fn expand(step: &UserStep) -> Result<Vec<String>> {
    step.run
        .iter()
        .map(|arg| {
            let pieces = parse_template(arg).map_err(|e| anyhow::anyhow!(e.message))?;
            Ok(pieces
                .into_iter()
                .map(|p| match p {
                    Piece::Text(t) => t,
                    Piece::Use(s, o) => format!(".mlbuild/use/{s}.{o}"),
                    Piece::Out(n) => step.outputs.get(&n).cloned().unwrap_or_default(),
                    Piece::Params => ".mlbuild/params.json".to_string(),
                })
                .collect())
        })
        .collect()
}

fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with {code}"),
        (None, Some(sig)) => format!("was killed by signal {sig}"),
        _ => "failed".into(),
    }
}

fn stderr_tail(path: &Path) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text.lines().collect();
    if lines.is_empty() {
        return " (no stderr)".into();
    }
    let from = lines.len().saturating_sub(STDERR_TAIL);
    let shown: Vec<String> = lines[from..]
        .iter()
        .map(|l| format!("  | {}", crate::report::sanitize(l)))
        .collect();
    format!("; its stderr ends:\n{}", shown.join("\n"))
}

/// Every file of the project but those under `skip` and the state DB's, with size and mtime.
fn project_stamps(project: &Path, skip: &[PathBuf]) -> BTreeMap<PathBuf, (u64, i128)> {
    use std::os::unix::fs::MetadataExt;
    let mut out = BTreeMap::new();
    let mut stack = vec![project.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            let name = e.file_name();
            if skip.contains(&path) || name.to_string_lossy().starts_with("state.db") {
                continue;
            }
            let Ok(meta) = e.metadata() else { continue };
            if meta.is_dir() {
                stack.push(path);
            } else {
                let ns = meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128;
                out.insert(path, (meta.len(), ns));
            }
        }
    }
    out
}

/// The files written, changed or removed between two [`project_stamps`], project-relative.
fn changed_files(
    before: &BTreeMap<PathBuf, (u64, i128)>,
    after: &BTreeMap<PathBuf, (u64, i128)>,
    project: &Path,
) -> Vec<String> {
    let shown = |p: &Path| p.strip_prefix(project).unwrap_or(p).display().to_string();
    let mut out: Vec<String> = after
        .iter()
        .filter(|(p, s)| before.get(*p) != Some(s))
        .map(|(p, _)| shown(p))
        .chain(
            before
                .keys()
                .filter(|p| !after.contains_key(*p))
                .map(|p| format!("{} (removed)", shown(p))),
        )
        .collect();
    out.sort();
    out
}

/// The one-line summary of a user step's result.
pub fn summary(result: &Value) -> String {
    let outputs = result["outputs"].as_object();
    let files: Vec<String> = outputs
        .into_iter()
        .flatten()
        .map(|(name, o)| {
            format!(
                "{name} ({})",
                crate::report::human_bytes(o["bytes"].as_u64().unwrap_or(0))
            )
        })
        .collect();
    if files.is_empty() {
        "ran".into()
    } else {
        format!("wrote {}", files.join(", "))
    }
}

/// Prepare's entry as confirm, execute and monitor see it when step `user` provides the
/// training data (`provides = ["train", "holdout"]`): its `train` and `holdout` in place of
/// prepare's, and a schema for their columns — prepare's type for a column prepare made, the
/// profile's kind (numeric, else enum) for a new one. The two files must have the same columns
/// and the target. `provided_by` in the result tells conclude that the version's rows cannot
/// be replayed from raw ones.
pub fn provided_prepare(
    store: &Store,
    prepare: &crate::store::ActionEntry,
    user: &UserStep,
    blobs: &BTreeMap<String, String>,
    target: &str,
) -> Result<crate::store::ActionEntry> {
    use crate::config::ColumnType;
    use crate::table::Kind;
    let get = |name: &str| -> Result<(String, crate::table::Profile)> {
        let digest = blobs
            .get(name)
            .with_context(|| format!("step `{}` recorded no `{name}`", user.name))?
            .clone();
        let path = store.verified_path(&digest)?;
        let profile = super::locate::profile(store, &path, &digest)
            .with_context(|| format!("reading `{name}` as step `{}` wrote it", user.name))?;
        Ok((digest, profile))
    };
    let (train, train_profile) = get("train")?;
    let (holdout, holdout_profile) = get("holdout")?;
    let names = |p: &crate::table::Profile| -> Vec<String> {
        p.columns.iter().map(|c| c.name.clone()).collect()
    };
    if names(&train_profile) != names(&holdout_profile) {
        return Err(Diagnostic::new(format!(
            "step `{}` provides `train` and `holdout` with different columns: {} and {}",
            user.name,
            names(&train_profile).join(", "),
            names(&holdout_profile).join(", ")
        ))
        .hint("write both files with the same header: monitor scores the holdout with the model trained on train")
        .into());
    }
    if train_profile.column(target).is_none() {
        return Err(Diagnostic::new(format!(
            "step `{}` provides training rows without the target column `{target}`",
            user.name
        ))
        .hint("keep the target column in both files it writes")
        .into());
    }
    if train_profile.rows == 0 || holdout_profile.rows == 0 {
        return Err(Diagnostic::new(format!(
            "step `{}` provides {} training and {} holdout rows",
            user.name, train_profile.rows, holdout_profile.rows
        ))
        .hint("both files need rows")
        .into());
    }
    let before = super::prepare::schema(store, &prepare.outputs["schema"])?;
    let columns: Vec<(String, ColumnType)> = train_profile
        .columns
        .iter()
        .map(|c| {
            let known = before.columns.iter().find(|(n, _)| *n == c.name);
            let ty = match (known, &c.kind) {
                (Some((_, ty)), _) => *ty,
                (None, Kind::Numeric) => ColumnType::Numeric,
                (None, Kind::Categorical) => ColumnType::Enum,
            };
            (c.name.clone(), ty)
        })
        .collect();
    let schema = store.put_bytes(&serde_json::to_vec(&super::prepare::Schema { columns })?)?;
    let mut entry = prepare.clone();
    for map in [&mut entry.outputs, &mut entry.output_digests] {
        map.insert("train".into(), train.clone());
        map.insert("holdout".into(), holdout.clone());
        map.insert("schema".into(), schema.clone());
    }
    entry.output_sizes.clear();
    entry.result["provided_by"] = Value::String(user.name.clone());
    entry.result["train_rows"] = json!(train_profile.rows);
    entry.result["holdout_rows"] = json!(holdout_profile.rows);
    Ok(entry)
}
