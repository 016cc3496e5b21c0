//! How a run, a step and a plan entry stand: one enum each, with the names the JSON output
//! (DESIGN.md §3.2), the registry's rows and the docs use. Each enum is the only place its
//! names are spelled.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Names `as_str`, `Display`, `FromStr` and serde agree on.
macro_rules! named {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownStatus;
            fn from_str(s: &str) -> Result<Self, UnknownStatus> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownStatus {
                        what: stringify!($name),
                        value: s.to_string(),
                        expected: [$($text),+].join(", "),
                    }),
                }
            }
        }
    };
}

named!(
    /// How a run stands in the registry (`runs.status`).
    RunStatus {
        /// Started, not finished (or its process was killed and nothing noticed yet).
        Running = "running",
        Ok = "ok",
        /// Monitor failed (threshold or baseline) after `max_attempts`.
        Escalated = "escalated",
        Failed = "failed",
        /// The data-quality gate (confirm) failed.
        GateFailed = "gate_failed",
        /// Ctrl-C, SIGTERM, or found killed by the next run.
        Interrupted = "interrupted",
    }
);

named!(
    /// What happened to one step of a run (`run --json` step events, `steps.status`).
    StepStatus {
        Ran = "ran",
        /// Its entry was in the local action cache.
        Cached = "cached",
        /// Its entry came from the remote cache.
        Restored = "restored",
        Failed = "failed",
    }
);

named!(
    /// A step in a plan (`status`, `explain`, `run --dry-run`).
    Freshness {
        Fresh = "fresh",
        Stale = "stale",
    }
);

/// A status name this version does not know.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("unknown {what} `{value}` (expected one of: {expected})")]
pub struct UnknownStatus {
    pub what: &'static str,
    pub value: String,
    pub expected: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_text_and_json() {
        for s in RunStatus::ALL {
            assert_eq!(s.as_str().parse::<RunStatus>().unwrap(), *s);
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for s in StepStatus::ALL {
            assert_eq!(s.as_str().parse::<StepStatus>().unwrap(), *s);
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert_eq!(serde_json::to_value(Freshness::Stale).unwrap(), "stale");
        assert_eq!(
            "done".parse::<StepStatus>().unwrap_err().to_string(),
            "unknown StepStatus `done` (expected one of: ran, cached, restored, failed)"
        );
    }

    #[test]
    fn names_are_todays() {
        let runs: Vec<&str> = RunStatus::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            runs,
            [
                "running",
                "ok",
                "escalated",
                "failed",
                "gate_failed",
                "interrupted"
            ]
        );
    }
}
