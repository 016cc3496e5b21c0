//! Signals: the one future every long-running command waits on to stop (Ctrl-C or SIGTERM).
//!
//! Library code never installs handlers itself; it takes a future (`serve::serve`'s shutdown,
//! `Engine::release`'s cut-short), and the command layer passes [`interrupted`].

/// Resolves at the first Ctrl-C (SIGINT) or SIGTERM after it is first polled. Where SIGTERM
/// cannot be watched, only Ctrl-C counts; where neither can, it never resolves.
pub async fn interrupted() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
