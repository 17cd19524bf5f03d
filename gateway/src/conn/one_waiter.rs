//! A wait with exactly one waiter (the session for its close, the writer
//! for its queue): one `AtomicWaker` instead of a waiter list, so the wait
//! is a future of a few words, held by every idle connection.

use futures_util::task::AtomicWaker;
use std::task::Poll;

/// Resolves with what `ready` gives once it gives something. Whoever makes
/// `ready` give something must then call `waker.wake()`. Not an `async fn`:
/// that would keep `waker` and `ready` beside the `poll_fn` holding them.
pub(super) fn wait_until<T>(
    waker: &AtomicWaker,
    mut ready: impl FnMut() -> Option<T>,
) -> impl Future<Output = T> {
    std::future::poll_fn(move |cx| {
        if let Some(value) = ready() {
            return Poll::Ready(value);
        }
        // Registered before looking again: a change between the two looks
        // wakes this waker.
        waker.register(cx.waker());
        match ready() {
            Some(value) => Poll::Ready(value),
            None => Poll::Pending,
        }
    })
}
