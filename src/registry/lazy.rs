//! A registry opened in the background: a command starts the open and goes on with its own
//! work (reading `ml.toml`, planning); the first use waits for it.
//!
//! A fully cached `mlbuild run` needs the registry only at the end of its walk, so opening it
//! (a connection, the file's check) overlaps the planning instead of preceding it.

use tokio::sync::OnceCell;
use tokio::task::JoinHandle;

use super::{Registry, RegistryError, Result};

/// The state database, being opened or open.
pub struct Opening {
    url: String,
    /// Opened for reading only ([`Registry::open_read`]).
    read: bool,
    cell: OnceCell<Registry>,
    task: std::sync::Mutex<Option<JoinHandle<Result<Registry>>>>,
}

impl Opening {
    /// Starts opening the database at `url` for writing ([`Registry::open`]) on the runtime's
    /// workers. Must be called within the runtime.
    pub fn start(url: &str) -> Opening {
        Opening::spawn(url, false)
    }

    /// Starts opening the database at `url` for reading only ([`Registry::open_read`]: nothing
    /// is created or written), as [`Opening::start`] does.
    pub fn start_read(url: &str) -> Opening {
        Opening::spawn(url, true)
    }

    fn spawn(url: &str, read: bool) -> Opening {
        let owned = url.to_string();
        Opening {
            url: url.to_string(),
            read,
            cell: OnceCell::new(),
            task: std::sync::Mutex::new(Some(tokio::spawn(
                async move { open(&owned, read).await },
            ))),
        }
    }

    /// A registry that is open already.
    pub fn ready(registry: Registry) -> Opening {
        Opening {
            url: String::new(),
            read: false,
            cell: OnceCell::new_with(Some(registry)),
            task: std::sync::Mutex::new(None),
        }
    }

    /// The open registry, waiting for the open under way. An open that failed is reported to
    /// the caller that waited for it; a later call opens again (and says why it fails again).
    pub async fn get(&self) -> Result<&Registry> {
        self.cell
            .get_or_try_init(|| async {
                let task = self.task.lock().map(|mut t| t.take()).unwrap_or(None);
                match task {
                    Some(task) => task.await.unwrap_or_else(|e| {
                        Err(RegistryError::Corrupt(format!(
                            "opening the state database stopped: {e}"
                        )))
                    }),
                    None => open(&self.url, self.read).await,
                }
            })
            .await
    }

    /// Closes the registry (see [`Registry::close`]), waiting for an open still under way so
    /// that nothing is left half-done when the process exits.
    pub async fn close(&self) {
        if let Some(registry) = self.cell.get() {
            return registry.close().await;
        }
        let task = self.task.lock().map(|mut t| t.take()).unwrap_or(None);
        let Some(task) = task else {
            return;
        };
        if let Ok(Ok(registry)) = task.await {
            registry.close().await;
        }
    }
}

/// Opens the registry at `url`, for reading only when `read`.
async fn open(url: &str, read: bool) -> Result<Registry> {
    if read {
        Registry::open_read(url).await
    } else {
        Registry::open(url).await
    }
}
