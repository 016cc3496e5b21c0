//! The step contract: what a step is given ([`Ctx`]: paths, config, store, printer, registry,
//! the engine on demand, the run and its [`Mode`]), what it gives back ([`StepOutput`]), and the
//! problem define resolves for the steps after it ([`ProblemSpec`]). The pipeline builds the
//! context and calls the steps; the steps never import the pipeline.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::{Config, Problem};
use crate::h2o::warm::Lookup;
use crate::h2o::{Engine, EngineConfig};
use crate::project::{Paths, Step};
use crate::registry::{Opening, Registry, RunRecorder};
use crate::report::Printer;
use crate::store::Store;

/// The engine, started at most once per run and only when a step needs it. Shared with the
/// command code so that Ctrl-C can cancel the running job and stop the node.
pub type EngineSlot = Arc<tokio::sync::Mutex<Option<Engine>>>;

/// What a walk of the pipeline may change (DESIGN.md §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `run`, `watch`: runs stale steps, records the run, registers and tags versions, writes
    /// `models/`, `ml.lock` and source state, fires hooks.
    Run,
    /// `status`, `explain`, `run --dry-run`: computes keys and looks them up, stopping at the
    /// first stale step. It writes nothing to the registry, `models/`, `ml.lock` or a source's
    /// state, runs no step and no hook; the registry it is given is opened read-only
    /// ([`Registry::open_read`]). Only memos of file contents (the stat cache, data profiles)
    /// may be refreshed, as `git status` refreshes its index.
    Plan,
}

/// Everything a step needs from the run.
pub struct Ctx<'a> {
    pub paths: &'a Paths,
    pub config: &'a Config,
    pub store: &'a Store,
    pub printer: &'a Printer,
    /// The state database, opened (or being opened) by the command: [`Ctx::registry`].
    registry: &'a Opening,
    pub engine: &'a EngineSlot,
    pub engine_config: EngineConfig,
    /// The run's record; none in [`Mode::Plan`] (nothing is recorded).
    pub run: Option<&'a RunRecorder<'a>>,
    pub h2o_started: bool,
    pub mode: Mode,
    /// A point of an experiment (`mlbuild exp run`): conclude registers the version but moves
    /// no tag, and no hook fires.
    pub experiment: bool,
    /// An engine start under way in the background ([`Ctx::prestart_engine`]).
    prestarted: Option<Prestarted>,
    /// Set by a background start once the engine is up.
    engine_up: Arc<std::sync::atomic::AtomicBool>,
    /// What reading the source for its profile collected for prepare (the rows by class of
    /// the target, the imputed columns' values), with the data's digest: prepare's split and
    /// fit of the same bytes take them.
    pub collected: Option<(String, crate::table::Collected)>,
}

impl<'a> Ctx<'a> {
    /// The context of a walk; `run` is none in [`Mode::Plan`] (nothing is recorded).
    #[allow(
        clippy::too_many_arguments,
        reason = "one argument per borrowed field of the context; a struct of them would be the context"
    )]
    pub fn new(
        paths: &'a Paths,
        config: &'a Config,
        store: &'a Store,
        printer: &'a Printer,
        registry: &'a Opening,
        engine: &'a EngineSlot,
        run: Option<&'a RunRecorder<'a>>,
        mode: Mode,
    ) -> Ctx<'a> {
        Ctx {
            paths,
            config,
            store,
            printer,
            registry,
            engine,
            engine_config: EngineConfig::resolve(paths, config),
            run,
            h2o_started: false,
            mode,
            experiment: false,
            prestarted: None,
            engine_up: Arc::default(),
            collected: None,
        }
    }

    /// The state database, waiting for its open if it is still under way.
    pub async fn registry(&self) -> Result<&'a Registry> {
        match self.run {
            Some(run) => Ok(run.registry().await?),
            None => Ok(self.registry.get().await?),
        }
    }

    /// The run's id in the registry, its row written now if it is not yet (a step that
    /// executes, or registers a version, needs it); 0 when nothing is recorded.
    pub async fn run_id(&self) -> Result<i64> {
        match self.run {
            Some(run) => Ok(run.id().await?),
            None => Ok(0),
        }
    }

    /// The run's id if its row is written.
    pub fn known_run_id(&self) -> Option<i64> {
        self.run.and_then(RunRecorder::known_id)
    }

    /// An empty engine slot: the engine starts (or is connected to) on a step's first use.
    pub fn engine_slot() -> EngineSlot {
        Arc::new(tokio::sync::Mutex::new(None))
    }
    /// The engine's client, starting or connecting to H2O on first use (or taking the one
    /// [`Ctx::prestart_engine`] started).
    pub async fn client(&mut self) -> Result<crate::h2o::Client> {
        self.settle_engine().await;
        if let Some(early) = self.prestarted.take() {
            // Its lines were held back so they do not interleave with the data steps' output.
            for (warn, line) in early.lines.lock().unwrap().drain(..) {
                if warn {
                    self.printer.warn(&line);
                } else {
                    self.printer.status("Engine", &line);
                }
            }
            if let Some(Err(e)) = early.outcome {
                return Err(e);
            }
        }
        let mut guard = self.engine.lock().await;
        // A warm node kept in the slot (by `watch`) may have been stopped since.
        if let Some(warm) = guard.as_ref().and_then(Engine::warm_node) {
            if !crate::h2o::warm::process_is_node(warm) {
                self.printer.warn(&format!(
                    "the warm H2O node at {} (pid {}) has stopped",
                    warm.url, warm.pid
                ));
                *guard = None;
            }
        }
        if guard.is_none() {
            let printer = self.printer;
            let engine = start_engine(&self.engine_config, &|warn: bool, line: &str| {
                if warn {
                    printer.warn(line);
                } else {
                    printer.status("Engine", line);
                }
            })
            .await?;
            *guard = Some(engine);
        }
        self.h2o_started = true;
        Ok(guard.as_ref().expect("engine just set").client.clone())
    }

    /// Starts the engine now, in the background, for a run whose execute step will certainly
    /// run (the pipeline decides: docs/h2o.md, "Cold start"), so the JVM boots while the data
    /// steps work. [`Ctx::client`] then waits for it; a run that ends before execute releases
    /// it as any engine (the slot is held until the start ends). `h2o_started` turns true
    /// only once the engine is up.
    pub fn prestart_engine(&mut self) {
        let Ok(mut guard) = self.engine.clone().try_lock_owned() else {
            return;
        };
        if guard.is_some() || self.prestarted.is_some() {
            return;
        }
        let cfg = self.engine_config.clone();
        let lines: Arc<std::sync::Mutex<Vec<(bool, String)>>> = Arc::default();
        let held = lines.clone();
        let started = self.engine_up.clone();
        let task = tokio::spawn(async move {
            let say = |warn: bool, line: &str| held.lock().unwrap().push((warn, line.to_string()));
            let engine = start_engine(&cfg, &say).await?;
            *guard = Some(engine);
            started.store(true, std::sync::atomic::Ordering::SeqCst);
            Ok(())
        });
        self.printer
            .status("Engine", "starting H2O in the background: execute will run");
        self.prestarted = Some(Prestarted {
            task: Some(task),
            outcome: None,
            lines,
        });
    }

    /// Waits for a background start to end (so the `done` event can say whether the engine
    /// came up); its error, if any, is kept for the step that needs the engine.
    pub async fn settle_engine(&mut self) {
        let Some(early) = self.prestarted.as_mut() else {
            return;
        };
        if let Some(task) = early.task.take() {
            early.outcome = Some(match task.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(e.into()),
                Err(e) => Err(anyhow::anyhow!("starting H2O: {e}")),
            });
        }
    }

    /// Whether this run started or connected to H2O (for the `done` event).
    pub fn engine_started(&self) -> bool {
        self.h2o_started || self.engine_up.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// An engine start under way in the background ([`Ctx::prestart_engine`]).
pub struct Prestarted {
    /// The start, until [`Ctx::settle_engine`] awaits it.
    task: Option<tokio::task::JoinHandle<Result<(), crate::h2o::H2oError>>>,
    /// How it ended, once awaited.
    outcome: Option<Result<()>>,
    /// What the start said, `(warning?, line)`, printed when a step first needs the engine.
    lines: Arc<std::sync::Mutex<Vec<(bool, String)>>>,
}

/// Connects to `[h2o] url`, attaches to a fitting warm node, or launches a managed one, saying
/// what it does through `say(is_warning, line)`.
async fn start_engine(
    cfg: &EngineConfig,
    say: &(dyn Fn(bool, &str) + Sync),
) -> Result<Engine, crate::h2o::H2oError> {
    // Without a URL, a warm node (`mlbuild h2o start`) that fits `[h2o]` is used like a remote
    // cluster (connected, never shut down by the run); a stale record is removed with a
    // warning, and otherwise a managed node is launched as usual.
    let warm = match &cfg.url {
        Some(_) => Lookup::Absent,
        None => crate::h2o::warm::lookup(cfg).await,
    };
    match &warm {
        Lookup::Stale(why) | Lookup::Skip(why) => say(true, why),
        Lookup::Absent | Lookup::Use(_) => {}
    }
    let how = match (&cfg.url, &warm) {
        (Some(url), _) => format!("connecting to H2O at {}", crate::redact::safe_url(url)),
        (None, Lookup::Use(node)) => format!(
            "using the warm node at {} (`mlbuild h2o stop` to stop it)",
            node.url
        ),
        (None, _) => format!("starting a local H2O {} node", cfg.version),
    };
    say(false, &how);
    let t = Instant::now();
    let engine = match warm {
        Lookup::Use(node) => Engine::attach(cfg, node).await?,
        _ => Engine::start(cfg, &|msg: &str| say(false, msg)).await?,
    };
    say(
        false,
        &format!(
            "ready in {}",
            crate::report::human_ms(t.elapsed().as_millis() as u64)
        ),
    );
    if cfg.nodes > 1 && engine.client.hand_over() == crate::h2o::HandOver::Upload {
        say(
            true,
            &format!(
                "data goes to the {}-node cluster through one node (`/3/PostFile`), which H2O \
                 does not parallelise; nodes read in parallel only from a path they can all \
                 read: declare one as `[h2o] exchange_dir` (docs/h2o.md)",
                cfg.nodes
            ),
        );
    }
    Ok(engine)
}

/// What a step produced when it ran.
pub struct StepOutput {
    pub outputs: BTreeMap<String, String>,
    /// Digests that represent the outputs downstream; defaults to `outputs`.
    pub output_digests: Option<BTreeMap<String, String>>,
    pub result: Value,
}

/// The resolved problem: what define decided.
#[derive(Debug, Clone)]
pub struct ProblemSpec {
    pub target: String,
    pub problem: Problem,
    pub metric: String,
    pub ignore: Vec<String>,
    /// The target's classes (empty for regression).
    pub classes: Vec<String>,
}

impl ProblemSpec {
    /// How holdout metrics are computed for this problem (classes in H2O's domain order).
    pub fn task(&self) -> Result<crate::metrics::Task> {
        Ok(match self.problem {
            Problem::Regression => crate::metrics::Task::Regression,
            Problem::Binary | Problem::Multiclass => {
                crate::metrics::Task::classification(&self.classes)?
            }
        })
    }
}

/// A step's result as its action entry records it, typed: each step's result is one of these
/// structs, written with [`StepResult::to_value`] and read back with [`StepResult::read`], so a
/// field that is missing or of the wrong type is an error naming the step, never a silent
/// default. The JSON is what docs/pipeline.md describes (and what entries written before the
/// types existed hold: fields added since are optional).
pub trait StepResult: Serialize + DeserializeOwned {
    const STEP: Step;

    /// The one line shown for the step in `run`'s output.
    fn summary(&self) -> String;

    /// A recorded result, read.
    fn read(result: &Value) -> Result<Self> {
        Self::deserialize(result).with_context(|| {
            format!(
                "the recorded result of step `{}` is not what this mlbuild reads",
                Self::STEP
            )
        })
    }

    /// The result as its entry records it.
    fn to_value(&self) -> Value {
        serde_json::to_value(self).expect("step results serialise")
    }
}

/// The one-line summary of a recorded result (what [`StepResult::summary`] says, or that the
/// result could not be read, which running the step again repairs).
pub fn summary<R: StepResult>(result: &Value) -> String {
    match R::read(result) {
        Ok(r) => r.summary(),
        Err(e) => format!("({e:#})"),
    }
}

/// A verdict: confirm's gate, monitor's checks, modify's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail,
}

impl Verdict {
    pub fn of(pass: bool) -> Verdict {
        if pass {
            Verdict::Pass
        } else {
            Verdict::Fail
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
        }
    }
}
