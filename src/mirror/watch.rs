//! `--watch-with-interval S`: run again and again, refreshing incrementally each cycle with
//! the same signed-in session (kept alive by its use), until stopped.

use std::time::Duration;

use super::Stopper;

/// Wait `interval` before the next cycle; `false` when the stopper fired meanwhile.
pub async fn pause(interval: Duration, stopper: &Stopper) -> bool {
    if stopper.is_stopped() {
        return false;
    }
    tokio::select! {
        _ = tokio::time::sleep(interval) => true,
        _ = stopper.stopped() => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stop_ends_the_pause() {
        let stopper = Stopper::default();
        let s = stopper.clone();
        let waiter = tokio::spawn(async move { pause(Duration::from_secs(3600), &s).await });
        stopper.stop();
        assert!(!waiter.await.unwrap());
        assert!(pause(Duration::from_millis(1), &Stopper::default()).await);
    }
}
