//! Waiting for the signal to stop, and the background sweeps that stop with it.

/// Why the process is asked to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopSignal {
    /// SIGTERM: an orchestrator (Kubernetes, systemd) replaces or removes the process;
    /// it drains first.
    Terminate,
    /// Ctrl-C (SIGINT): someone at a terminal; no drain window.
    Interrupt,
}

/// Resolves on SIGTERM or Ctrl-C, saying which. The one signal handler of every
/// service (and of `cargo xtask`'s long runs).
pub async fn signal() -> StopSignal {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {
            tracing::info!("Ctrl-C received");
            StopSignal::Interrupt
        }
        _ = terminate => {
            tracing::info!("SIGTERM received");
            StopSignal::Terminate
        }
    }
}

/// Run `pass` now and then every `period` until `shutdown`: the background sweeps
/// (unpaid orders, expired claims, reconcilers, reservation expiry). A pass that
/// fails is logged ("could not {what}") and the next one tried a period later.
pub async fn every<F, Fut, T, E>(
    period: std::time::Duration,
    shutdown: tokio_util::sync::CancellationToken,
    what: &str,
    mut pass: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    while !shutdown.is_cancelled() {
        if let Err(err) = pass().await {
            tracing::warn!(error = %err, "could not {what}");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(period) => {}
        }
    }
}
