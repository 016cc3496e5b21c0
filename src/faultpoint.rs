//! Fail points for the fault-injection suite (`tests/integration/faults.rs`); not a user feature.
//!
//! `MLBUILD_FAULTPOINT=NAME` makes the process kill itself with SIGKILL the first time it reaches
//! the point `NAME` (`NAME@N`: the N-th time), exactly as `kill -9` from outside would: no
//! destructor runs, nothing is flushed, no lock is released but by the OS. The suite uses them to
//! land a kill in a window a timer rarely hits (between two commits). Unset, a point costs one
//! load of a cached value.
//!
//! | point | where |
//! |---|---|
//! | `pipeline.before-action-entry.STEP` | a step has run and stored its blobs; its action entry is not written yet |
//! | `pipeline.after-action-entry.STEP` | the step's action entry is written; the next step has not begun |
//! | `conclude.after-register` | conclude registered the version; no tag has moved |
//! | `conclude.after-tag-move` | conclude moved its first tag; `models/` does not follow yet |
//! | `tags.after-commit` | `promote`/`rollback` committed the move; `models/TAG.zip` is not rewritten |
//! | `run.before-finish` | the pipeline is done; the run is not recorded as finished |

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

/// The environment variable that arms a point.
pub const ENV: &str = "MLBUILD_FAULTPOINT";

struct Armed {
    name: String,
    nth: u32,
    seen: AtomicU32,
}

fn armed() -> Option<&'static Armed> {
    static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
    ARMED
        .get_or_init(|| {
            let spec = std::env::var(ENV).ok()?;
            let (name, nth) = match spec.rsplit_once('@') {
                Some((name, n)) => (name.to_string(), n.parse().ok()?),
                None => (spec, 1),
            };
            Some(Armed {
                name,
                nth,
                seen: AtomicU32::new(0),
            })
        })
        .as_ref()
}

/// Reaching the point `name`: dies here when it is the armed point's N-th time.
pub fn hit(name: &str) {
    let Some(armed) = armed() else { return };
    if armed.name == name && armed.seen.fetch_add(1, Ordering::SeqCst) + 1 == armed.nth {
        // SAFETY: kill(2) on our own pid has no memory-safety preconditions.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}
