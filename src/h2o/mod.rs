//! The H2O engine: a managed local node or an existing cluster, and the REST calls mlbuild makes.
//!
//! [`Engine::start`] is the one entry point the pipeline uses. With a URL (`MLBUILD_H2O_URL` /
//! `[h2o] url`) it connects and checks the declared fingerprint (version, node count) and
//! launches nothing. Without one it finds Java 8–17 ([`java`]), finds or provisions the pinned
//! jar ([`provision`]), launches a [`LocalNode`] on 127.0.0.1 that dies with mlbuild ([`node`]),
//! and checks the fingerprint too. All REST calls live in [`Client`] ([`client`]).
//!
//! A warm node (`mlbuild h2o start`, [`warm`]) is a local node that outlives mlbuild; the caller
//! asks [`warm::lookup`] first and, when it names a usable node, [`Engine::attach`]es to it,
//! which, like a remote cluster, [`Engine::shutdown`] leaves running.
//!
//! A run ends its use of the engine with [`Engine::release`], on success, error and Ctrl-C: a
//! managed node is stopped (which removes everything on it); on a cluster mlbuild does not own
//! (remote or warm), the jobs the run started are cancelled and the keys it created removed
//! ([`ledger`]), within a time budget that a second Ctrl-C cuts short.
//!
//! Why 3.46.0.11: H2O-3 >= 3.46.0.12 refuses every MOJO export with HTTP 412 "SECURE REQUIRED"
//! (reference/h2o-rest.md G1); on such a cluster [`Client::download_mojo`] fails with
//! [`H2oError::MojoExportBlocked`]. See `docs/h2o.md` for the whole story and measurements.

pub mod cds;
pub mod client;
pub mod error;
pub mod exchange;
pub mod java;
pub mod leaderboard;
pub mod ledger;
pub mod native;
pub mod node;
pub mod provision;
pub mod warm;

#[cfg(test)]
mod live_tests;

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

pub use client::{
    AutoMlRun, AutoMlSpec, Client, CloudInfo, ColumnKind, FrameInfo, HandOver, SORT_METRICS,
};
pub use error::H2oError;
pub use java::{find_java, Java};
pub use leaderboard::{Leaderboard, LeaderboardRow};
pub use ledger::{KeyKind, Leftovers};
pub use node::{ClassData, LaunchSpec, LocalNode};
pub use provision::{default_tool_cache, locate_or_provision_jar, JAR_SHA256};
pub use warm::WarmNode;

/// The H2O version mlbuild launches, and the default declared version.
pub const PINNED_VERSION: &str = "3.46.0.11";

/// How long [`Engine::release`] may spend cancelling a run's jobs and removing its keys from a
/// cluster mlbuild does not own. Measured: an AutoML cancel and its cleanup take about 1 s.
pub const RELEASE_BUDGET: Duration = Duration::from_secs(10);

/// How to get an engine; the caller resolves env vars and `ml.toml` into this.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// An existing cluster; when set, nothing is launched.
    pub url: Option<String>,
    /// An explicit jar to launch (`MLBUILD_H2O_JAR` or `[h2o] jar`).
    pub jar: Option<PathBuf>,
    /// Declared H2O version (checked on connect).
    pub version: String,
    /// Declared node count (checked on connect; a managed engine launches that many JVMs).
    pub nodes: u32,
    /// Declared threads per node (`-nthreads` of managed nodes; checked on connect when
    /// `nodes` > 1).
    pub threads: Option<u32>,
    /// JVM heap of the local node, e.g. "2g".
    pub memory: String,
    /// Where data is lent to a cluster at `url` ([`exchange`]); unused for a managed node,
    /// which imports straight from the store.
    pub exchange_dir: Option<PathBuf>,
    /// Where the local node's ice_root and logs go (inside the project's cache dir).
    pub work_dir: PathBuf,
    /// The user tool cache, where the provisioned jar lives.
    pub tool_cache: PathBuf,
}

impl EngineConfig {
    /// What `ml.toml` declares about the cluster, as checked on connect.
    pub fn fingerprint(&self) -> Declared {
        Declared {
            version: self.version.clone(),
            nodes: self.nodes,
            threads: self.threads.filter(|_| self.nodes > 1),
        }
    }

    /// The engine `ml.toml`'s `[h2o]` asks for, with `MLBUILD_H2O_URL` and `MLBUILD_H2O_JAR`
    /// taking precedence over `url` and `jar`.
    pub fn resolve(paths: &crate::project::Paths, config: &crate::config::Config) -> EngineConfig {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let user = crate::user_config::get();
        EngineConfig {
            url: env("MLBUILD_H2O_URL")
                .or_else(|| config.h2o.url.clone())
                .or_else(|| user.h2o.url.clone()),
            jar: env("MLBUILD_H2O_JAR")
                .map(PathBuf::from)
                .or_else(|| config.h2o.jar.as_ref().map(|j| paths.project.join(j))),
            version: config.h2o.version.clone(),
            nodes: config.h2o.nodes,
            threads: config.h2o.threads,
            memory: config.h2o.memory.clone(),
            exchange_dir: env("MLBUILD_H2O_EXCHANGE_DIR")
                .map(PathBuf::from)
                .or_else(|| {
                    config
                        .h2o
                        .exchange_dir
                        .as_ref()
                        .map(|d| paths.project.join(d))
                })
                .or_else(|| user.h2o.exchange_dir.clone()),
            work_dir: crate::store::layout::engine_dir(&paths.cache),
            tool_cache: paths.tool_cache.clone(),
        }
    }
}

/// Opens `<dir>/.lock` and holds an exclusive `flock` on it until the returned file is
/// dropped (blocking). Serialises the writers of a shared directory: the exchange, the
/// class-data archive's build.
pub(crate) fn lock_dir(dir: &std::path::Path) -> Result<std::fs::File, H2oError> {
    use fs4::fs_std::FileExt;
    let path = dir.join(".lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| H2oError::io("could not open", &path, e))?;
    file.lock_exclusive()
        .map_err(|e| H2oError::io("could not lock", &path, e))?;
    Ok(file)
}

/// The cluster `ml.toml` declares: checked on connect ([`Client::check_fingerprint`]) and, as
/// declared (never as discovered), part of execute's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declared {
    pub version: String,
    pub nodes: u32,
    /// Threads per node; declared only for a cluster of more than one node.
    pub threads: Option<u32>,
}

/// A ready H2O: the client, and the local node if we launched one.
pub struct Engine {
    pub client: Client,
    node: Option<LocalNode>,
    /// The warm node we attached to, if that is what this is (never shut down by us).
    warm: Option<WarmNode>,
}

impl Engine {
    /// Connects to `cfg.url`, or launches a local node; either way checks the fingerprint.
    /// Provisioning the jar (first run only) blocks the current thread while it downloads.
    pub async fn start(
        cfg: &EngineConfig,
        log: &(dyn Fn(&str) + Sync),
    ) -> Result<Engine, H2oError> {
        if let Some(url) = &cfg.url {
            // The check's `GET /3/Cloud` is the first request: it also proves the URL answers.
            let client = Client::new(url)?
                .check_fingerprint(&cfg.fingerprint())
                .await?;
            let client = match &cfg.exchange_dir {
                Some(dir) => client.with_exchange(dir),
                None => client,
            };
            return Ok(Engine {
                client,
                node: None,
                warm: None,
            });
        }
        let java = find_java()?;
        let jar = locate_or_provision_jar(cfg.jar.as_deref(), &cfg.tool_cache, log)?;
        let mut spec = LaunchSpec {
            java: java.path,
            jar,
            memory: cfg.memory.clone(),
            work_dir: cfg.work_dir.clone(),
            nodes: cfg.nodes,
            threads: cfg.threads,
            class_data: ClassData::None,
            native_libs: None,
        };
        spec.native_libs = native::prepare(&spec.jar, &cfg.tool_cache, cfg.jar.is_some(), log);
        spec.class_data = cds::prepare(&spec, &cfg.tool_cache, cfg.jar.is_some(), log).await;
        log(&format!(
            "starting H2O ({}, Java {}{}) …",
            spec.jar.display(),
            java.major,
            if matches!(spec.class_data, ClassData::Use(_)) {
                ", class-data archive"
            } else {
                ""
            }
        ));
        let started = std::time::Instant::now();
        let node = cds::launch(&spec, log).await?;
        let pids: Vec<String> = node.pids().iter().map(u32::to_string).collect();
        log(&format!(
            "H2O is up at {} ({} {}, {:.1} s)",
            node.url(),
            if pids.len() == 1 { "pid" } else { "pids" },
            pids.join(", "),
            started.elapsed().as_secs_f64()
        ));
        let client = Client::new(&node.url())?;
        // On a mismatch `node` is dropped here, which kills the JVMs.
        // A node on this machine reads the store itself: no bytes go through a socket.
        let client = client
            .check_fingerprint(&cfg.fingerprint())
            .await?
            .with_hand_over(HandOver::LocalPath);
        Ok(Engine {
            client,
            node: Some(node),
            warm: None,
        })
    }

    /// Connects to a warm node that [`warm::lookup`] found usable, checking the fingerprint as
    /// for any cluster. [`Engine::shutdown`] leaves it running.
    pub async fn attach(cfg: &EngineConfig, warm: WarmNode) -> Result<Engine, H2oError> {
        let client = Client::new(&warm.url)?;
        let client = client
            .check_fingerprint(&cfg.fingerprint())
            .await?
            .with_hand_over(HandOver::LocalPath);
        Ok(Engine {
            client,
            node: None,
            warm: Some(warm),
        })
    }

    /// The warm node, when this engine is attached to one.
    pub fn warm_node(&self) -> Option<&WarmNode> {
        self.warm.as_ref()
    }

    /// Ends a run's use of the engine, on every path (success, error, Ctrl-C).
    ///
    /// A managed local node is shut down, which ends its jobs and removes everything on it. On a
    /// cluster mlbuild does not own (remote, or a warm node), the jobs the run started are
    /// cancelled and the keys it created removed ([`Client::teardown`]); after a clean run
    /// there are none and nothing is sent. Either way it returns after at most `budget`, or as
    /// soon as `cut_short` resolves (a second Ctrl-C): a node being stopped is then killed, and
    /// [`Released::warning`] names what was left on a cluster. `log` hears what is going on.
    pub async fn release(
        self,
        budget: Duration,
        cut_short: impl Future<Output = ()>,
        log: &dyn Fn(&str),
    ) -> Released {
        let url = self.client.display_url();
        let client = self.client.clone();
        if self.node.is_some() {
            // Dropping the shutdown future drops the node, which SIGKILLs and reaps the JVM.
            let shutdown = tokio::select! {
                r = self.shutdown() => r.err(),
                _ = cut_short => None,
            };
            return Released {
                url,
                left: Leftovers::default(),
                why: None,
                shutdown,
            };
        }
        let work = client.leftovers();
        if work.is_empty() {
            return Released {
                url,
                left: work,
                why: None,
                shutdown: None,
            };
        }
        log(&format!(
            "cancelling this run's H2O jobs and removing what it created on {url} (at most {} s; \
             Ctrl-C again to skip)",
            budget.as_secs()
        ));
        let why = tokio::select! {
            errors = client.teardown() => errors.into_iter().next().map(|e| e.to_string()),
            _ = tokio::time::sleep(budget) => Some(format!("it took longer than {} s", budget.as_secs())),
            _ = cut_short => Some("interrupted again".to_string()),
        };
        let left = client.leftovers();
        Released {
            url,
            why: (!left.is_empty()).then(|| why.unwrap_or_else(|| "H2O kept them".into())),
            left,
            shutdown: None,
        }
    }

    /// Stops the local node if we launched one (waiting until it has exited); leaves a remote
    /// cluster and a warm node alone. [`Engine::release`] is the way to end a run.
    pub async fn shutdown(self) -> Result<(), H2oError> {
        match self.node {
            Some(node) => node.shutdown().await,
            None => Ok(()),
        }
    }

    /// The JVM's pid, when we launched it.
    pub fn launched_pid(&self) -> Option<u32> {
        self.node.as_ref().map(LocalNode::pid)
    }

    /// The local node, when we launched it (its log path, cloud name).
    pub fn local_node(&self) -> Option<&LocalNode> {
        self.node.as_ref()
    }
}

/// What [`Engine::release`] could not do.
#[derive(Debug)]
pub struct Released {
    /// The cluster, credentials removed.
    pub url: String,
    /// What the run started or created and is still on the cluster.
    pub left: Leftovers,
    /// Why it is left (the first error, the budget, a second Ctrl-C).
    pub why: Option<String>,
    /// Stopping the managed node failed.
    pub shutdown: Option<H2oError>,
}

impl Released {
    /// One warning for the user, when something was left behind.
    pub fn warning(&self) -> Option<String> {
        if let Some(e) = &self.shutdown {
            return Some(format!("stopping H2O: {e}"));
        }
        if self.left.is_empty() {
            return None;
        }
        Some(format!(
            "could not remove everything this run made on H2O at {} ({}): {}; remove them with \
             `DELETE /3/DKV/<key>` (an AutoML project with `?cascade=true`), or restart the node",
            self.url,
            self.why.as_deref().unwrap_or("unknown"),
            self.left.describe()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An engine on a "cluster" that accepts connections and never answers, with one AutoML
    /// project and its frame in the ledger.
    fn hung_engine() -> (Engine, std::net::TcpListener) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = Client::new(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
        client.track_key("pr_train", KeyKind::Frame);
        client.track_key("pr@@CAPSULE", KeyKind::AutoMl);
        let engine = Engine {
            client,
            node: None,
            warm: None,
        };
        (engine, listener)
    }

    #[tokio::test]
    async fn release_is_bounded_by_its_budget_and_names_what_is_left() {
        let (engine, _listener) = hung_engine();
        let t = std::time::Instant::now();
        let released = engine
            .release(Duration::from_millis(300), std::future::pending(), &|_| {})
            .await;
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        let w = released.warning().unwrap();
        assert!(
            w.contains("(it took longer than 0 s)")
                && w.contains("AutoML project `pr@@CAPSULE`, frame `pr_train`"),
            "{w}"
        );
    }

    #[tokio::test]
    async fn a_second_signal_cuts_release_short() {
        let (engine, _listener) = hung_engine();
        let t = std::time::Instant::now();
        let released = engine
            .release(RELEASE_BUDGET, std::future::ready(()), &|_| {})
            .await;
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
        assert!(released.warning().unwrap().contains("(interrupted again)"));
    }

    #[tokio::test]
    async fn a_clean_run_releases_without_a_request() {
        // Port 9 (discard) is closed: any request would fail and leave a warning.
        let client = Client::new("http://127.0.0.1:9").unwrap();
        let engine = Engine {
            client,
            node: None,
            warm: None,
        };
        let logged = std::sync::Mutex::new(Vec::<String>::new());
        let released = engine
            .release(RELEASE_BUDGET, std::future::pending(), &|m| {
                logged.lock().unwrap().push(m.to_string())
            })
            .await;
        assert!(released.warning().is_none());
        assert!(logged.lock().unwrap().is_empty());
    }
}
