//! The output gateway: every command's status lines, warnings, step events and data go through
//! the [`Printer`], the final error too (`commands::diagnostics`, through [`Printer::error`]).
//! Exceptions that still print directly: `serve` (its request log and swap lines),
//! `user_config` (a warning before a printer exists) and `main`'s runtime failure.
//!
//! Data (JSON events, tables) go to stdout; progress, status lines and warnings go to stderr.
//! Progress bars appear only when stderr is a terminal and neither `--json`, `-q`,
//! `MLBUILD_NO_PROGRESS` nor a non-TTY says otherwise. Colour follows `--color` and `NO_COLOR`.

pub mod card;
pub mod hooks;
pub mod plots;

use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::status::{RunStatus, StepStatus};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum ColorChoice {
    #[default]
    Auto,
    Always,
    Never,
}

/// One `{"event":"step",…}` line of `run --json` (DESIGN.md §3.2).
#[derive(Debug, Clone, Serialize)]
pub struct StepEvent {
    pub event: &'static str,
    pub step: String,
    pub status: StepStatus,
    pub key: String,
    pub attempt: u32,
    pub duration_ms: u64,
    pub verdict: Option<String>,
    pub reason: String,
    #[serde(skip)]
    pub summary: String,
}

/// The closing `{"event":"done",…}` line.
#[derive(Debug, Clone, Serialize)]
pub struct DoneEvent {
    pub event: &'static str,
    pub status: RunStatus,
    pub h2o_started: bool,
    pub version: Option<String>,
    pub model: Option<String>,
    pub tags: std::collections::BTreeMap<String, String>,
}

pub struct Printer {
    json: bool,
    quiet: bool,
    verbose: u8,
    color: bool,
    progress: bool,
    bar: Mutex<Option<ProgressBar>>,
}

impl Printer {
    pub fn new(json: bool, quiet: bool, verbose: u8, color: ColorChoice) -> Printer {
        let tty = std::io::stderr().is_terminal();
        let color = match color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => tty && std::env::var_os("NO_COLOR").is_none(),
        };
        let progress = tty && !json && !quiet && std::env::var_os("MLBUILD_NO_PROGRESS").is_none();
        Printer {
            json,
            quiet,
            verbose,
            color,
            progress,
            bar: Mutex::new(None),
        }
    }

    pub fn json(&self) -> bool {
        self.json
    }

    pub fn verbose(&self) -> u8 {
        self.verbose
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    /// Prints a line on stderr. Its user-provided parts were made safe by the callers
    /// ([`sanitize`]); the line's own colour codes are kept.
    fn eprint_line(&self, line: &str) {
        let bar = self.bar.lock().unwrap();
        match bar.as_ref() {
            Some(b) => b.println(line),
            None => {
                let _ = writeln!(std::io::stderr(), "{line}");
            }
        }
    }

    /// A status line on stderr (suppressed by `-q`).
    pub fn status(&self, verb: &str, message: &str) {
        if self.quiet {
            return;
        }
        let verb = self.paint("1;32", &format!("{verb:>10}"));
        self.eprint_line(&format!("{verb} {}", sanitize(message)));
    }

    /// Detail printed at `-v` or more.
    pub fn detail(&self, level: u8, message: &str) {
        if self.verbose >= level && !self.quiet {
            self.eprint_line(&format!("{:>10} {}", "", sanitize(message)));
        }
    }

    pub fn warn(&self, message: &str) {
        let tag = self.paint("1;33", "warning");
        self.eprint_line(&format!("{tag}: {}", sanitize(message)));
    }

    /// Writes one line of data to stdout.
    pub fn data(&self, text: &str) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", sanitize(text));
        let _ = out.flush();
    }

    pub fn step(&self, event: &StepEvent) {
        if self.json {
            self.data(&serde_json::to_string(event).expect("events serialise"));
            return;
        }
        let code = match event.status {
            StepStatus::Ran => "1;32",
            StepStatus::Cached | StepStatus::Restored => "2",
            StepStatus::Failed => "1;31",
        };
        let label = event.status.as_str();
        let attempt = if event.attempt > 1 {
            format!(" (attempt {})", event.attempt)
        } else {
            String::new()
        };
        let verdict = match event.verdict.as_deref() {
            Some("fail") => format!(" {}", self.paint("1;33", "[verdict: fail]")),
            _ => String::new(),
        };
        let duration = if event.status == StepStatus::Ran {
            format!(" [{}]", human_ms(event.duration_ms))
        } else {
            String::new()
        };
        let why = if event.status == StepStatus::Ran {
            format!(" — {}", sanitize(&event.reason))
        } else {
            String::new()
        };
        if !self.quiet {
            self.eprint_line(&format!(
                "{} {:<8} {}{attempt}{verdict}{duration}{why}",
                self.paint(code, &format!("{:>10}", label)),
                event.step,
                sanitize(&event.summary),
            ));
        }
    }

    pub fn done(&self, event: &DoneEvent) {
        if self.json {
            self.data(&serde_json::to_string(event).expect("events serialise"));
        }
    }

    /// Starts a progress bar (no-op when progress is off).
    pub fn start_progress(&self, message: &str) {
        if !self.progress {
            return;
        }
        let bar = ProgressBar::new(1000);
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:>10.cyan.bold} [{bar:30}] {percent:>3}% {wide_msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix("training");
        bar.set_message(message.to_string());
        *self.bar.lock().unwrap() = Some(bar);
    }

    pub fn set_progress(&self, fraction: f64, message: &str) {
        if let Some(b) = self.bar.lock().unwrap().as_ref() {
            b.set_position((fraction.clamp(0.0, 1.0) * 1000.0) as u64);
            b.set_message(message.to_string());
        }
    }

    /// Prints a rendered error (its lines already made safe) on stderr, clearing a live progress
    /// bar first so the error is not drawn over or under it. Shown even with `-q`.
    pub fn error(&self, lines: &[String]) {
        self.finish_progress();
        let mut err = std::io::stderr().lock();
        for line in lines {
            let _ = writeln!(err, "{line}");
        }
    }

    pub fn finish_progress(&self) {
        if let Some(b) = self.bar.lock().unwrap().take() {
            b.finish_and_clear();
        }
    }
}

/// A byte count for people: `12 B`, `1.5 KiB`, `3.2 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

pub fn human_ms(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else {
        format!("{}m{:02}s", ms / 60_000, (ms % 60_000) / 1000)
    }
}

/// How many names an error lists before it counts the rest.
pub const NAMES_SHOWN: usize = 20;

/// A list of names for a message (column names, say): the first [`NAMES_SHOWN`], comma
/// separated, then how many more there are, so that a 100,000-column file gives a short error.
pub fn list_names<S: AsRef<str>>(names: &[S]) -> String {
    let shown: Vec<&str> = names.iter().take(NAMES_SHOWN).map(AsRef::as_ref).collect();
    let mut text = shown.join(", ");
    if names.len() > NAMES_SHOWN {
        text.push_str(&format!(
            ", … and {} more ({} in all)",
            names.len() - NAMES_SHOWN,
            names.len()
        ));
    }
    text
}

/// Text that may hold user input (`ml.toml` values, arguments, file and column names, data),
/// made safe to print on a terminal: control characters other than newline and tab — ESC above
/// all, which starts terminal escape sequences, and CR, which overwrites a line — and Unicode's
/// bidirectional overrides are shown as `\x1b` / `\u{202e}` escapes. JSON output needs none of
/// this (serde escapes control characters).
pub fn sanitize(text: &str) -> std::borrow::Cow<'_, str> {
    fn unsafe_char(c: char) -> bool {
        (c.is_control() && c != '\n' && c != '\t')
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    }
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            c if !unsafe_char(c) => out.push(c),
            c if (c as u32) < 0x100 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod sanitize_tests {
    use super::{list_names, sanitize};

    #[test]
    fn long_lists_of_names_are_cut_at_twenty() {
        assert_eq!(list_names(&["a", "b"]), "a, b");
        let many: Vec<String> = (0..100_000).map(|i| format!("c{i}")).collect();
        let text = list_names(&many);
        assert!(text.starts_with("c0, c1, "), "{text}");
        assert!(
            text.ends_with("c19, … and 99980 more (100000 in all)"),
            "{text}"
        );
        assert!(text.len() < 200);
        assert_eq!(list_names(&many[..20]).matches(", ").count(), 19);
    }

    #[test]
    fn terminal_controls_are_shown_not_obeyed() {
        assert_eq!(sanitize("plain `tag`\n\tok"), "plain `tag`\n\tok");
        assert_eq!(
            sanitize("ta\x1b[2Jg\rX\u{7f}\u{9b}"),
            "ta\\x1b[2Jg\\x0dX\\x7f\\x9b"
        );
        assert_eq!(sanitize("a\u{202e}b"), "a\\u{202e}b");
        assert!(matches!(
            sanitize("ünïcode ✓"),
            std::borrow::Cow::Borrowed(_)
        ));
    }
}

#[cfg(test)]
mod bytes_tests {
    #[test]
    fn sizes_read_well() {
        assert_eq!(super::human_bytes(12), "12 B");
        assert_eq!(super::human_bytes(1536), "1.5 KiB");
    }
}
