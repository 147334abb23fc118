//! One timer per connection, re-armed lazily. Waiting for a deadline later than the one the
//! timer is armed for keeps it: it fires early, the wait sees its own deadline has not come and
//! re-arms. A connection serving requests back to back therefore costs the timer wheel nothing
//! per request (each request used to re-arm the keep-alive timer and register a timeout for
//! its function call); nginx's timer tree skips close re-arms the same way.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::time::{Instant, Sleep};

pub struct LazyTimer {
    sleep: Pin<Box<Sleep>>,
}

impl Default for LazyTimer {
    fn default() -> Self {
        LazyTimer {
            sleep: Box::pin(tokio::time::sleep_until(Instant::now())),
        }
    }
}

impl LazyTimer {
    /// Ready at `deadline` (not before); polled by the connection's waits, which race it
    /// against a read or a call.
    pub fn poll_until(&mut self, cx: &mut Context<'_>, deadline: Instant) -> Poll<()> {
        loop {
            if self.sleep.deadline() > deadline || self.sleep.is_elapsed() {
                self.sleep.as_mut().reset(deadline);
            }
            std::task::ready!(self.sleep.as_mut().poll(cx));
            if Instant::now() >= deadline {
                return Poll::Ready(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    impl LazyTimer {
        async fn until(&mut self, deadline: Instant) {
            std::future::poll_fn(|cx| self.poll_until(cx, deadline)).await
        }
    }

    #[tokio::test(start_paused = true)]
    async fn waits_for_its_own_deadline_whatever_was_armed_before() {
        let mut t = LazyTimer::default();
        let start = Instant::now();
        t.until(start + Duration::from_millis(100)).await;
        assert_eq!(start.elapsed(), Duration::from_millis(100));
        // Armed for +1 s, then a later wait (+3 s) fires early, checks and re-arms.
        let late = Instant::now() + Duration::from_secs(1);
        let _ = tokio::time::timeout(Duration::from_millis(10), t.until(late)).await;
        let later = Instant::now() + Duration::from_secs(3);
        t.until(later).await;
        assert_eq!(Instant::now(), later);
        // An earlier deadline than the armed one re-arms at once.
        let armed_far = Instant::now() + Duration::from_secs(60);
        let _ = tokio::time::timeout(Duration::from_millis(10), t.until(armed_far)).await;
        let soon = Instant::now() + Duration::from_millis(50);
        t.until(soon).await;
        assert_eq!(Instant::now(), soon);
    }
}
