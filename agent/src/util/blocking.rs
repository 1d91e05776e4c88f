//! Blocking work kept off the async runtimes.

/// Runs blocking work (file system calls that may hang on a dead mount) on a detached
/// thread: unlike `spawn_blocking`, a thread stuck in the kernel never delays the runtime's
/// shutdown, so SIGTERM still ends the agent.
pub async fn off_runtime<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("probe".into())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(|e| format!("cannot start a probe thread: {e}"))?;
    rx.await.map_err(|_| "probe thread died".to_string())
}
