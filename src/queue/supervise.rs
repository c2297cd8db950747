//! Worker loops that outlive a panic: a bug in one round must not stop the queue for good.

use std::future::Future;
use std::time::Duration;

/// Runs the loop `make` builds until it ends by itself; after a panic (logged with the
/// worker's name, never its message, which could hold document data) it is started again
/// after `pause`, unless `stop` says to end.
pub async fn supervised<F, Fut>(
    name: &'static str,
    pause: Duration,
    stop: tokio::sync::watch::Receiver<bool>,
    make: F,
) where
    F: Fn() -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        match tokio::spawn(make()).await {
            Err(e) if e.is_panic() => {
                tracing::error!(worker = name, "worker panicked: starting it again");
            }
            // Ended (stopped) or cancelled.
            _ => return,
        }
        tokio::time::sleep(pause).await;
        if *stop.borrow() {
            return;
        }
    }
}

#[cfg(test)]
#[allow(clippy::panic)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn a_panicking_loop_is_started_again_until_it_ends() {
        let runs = Arc::new(AtomicUsize::new(0));
        let (_tx, stop) = tokio::sync::watch::channel(false);
        let counted = runs.clone();
        supervised("test", Duration::ZERO, stop, move || {
            let runs = counted.clone();
            async move {
                if runs.fetch_add(1, Ordering::SeqCst) < 2 {
                    panic!("round {}", runs.load(Ordering::SeqCst));
                }
            }
        })
        .await;
        assert_eq!(
            runs.load(Ordering::SeqCst),
            3,
            "two panics, then it ended by itself"
        );
    }

    #[tokio::test]
    async fn a_stop_ends_the_restarts() {
        let (tx, stop) = tokio::sync::watch::channel(false);
        tx.send(true).unwrap();
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = runs.clone();
        supervised("test", Duration::ZERO, stop, move || {
            counted.fetch_add(1, Ordering::SeqCst);
            async { panic!("always") }
        })
        .await;
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }
}
