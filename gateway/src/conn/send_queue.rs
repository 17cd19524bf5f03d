//! A connection's bounded outgoing queue: many pushers (the hub's fan-out,
//! the node, the session), one reader (the session's writer).
//!
//! Why not a tokio channel: a bounded mpsc allocates its slots in blocks of
//! 32 on first use and keeps them for the connection's life (1.8 KiB per
//! idle connection), and pays a semaphore and atomic list operations per
//! item. Here the queue is a `VecDeque` behind a std mutex, held only for a
//! push or a swap, never across an `.await`: the writer takes everything
//! queued in one swap, and an empty queue holds no allocation. The writer
//! is its only reader: it waits through [`one_waiter`](super::one_waiter),
//! woken by the push that makes the queue non-empty and by [`SendQueue::end`].

use super::outbound::Outbound;
use futures_util::task::AtomicWaker;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// The shared half, owned by the connection's handle.
pub struct SendQueue {
    queue: Mutex<Queue>,
    /// The reader's waker while it waits.
    reader: AtomicWaker,
    /// The connection is closing: [`QueueReader::recv`] stops waiting.
    ending: AtomicBool,
    capacity: usize,
}

struct Queue {
    items: VecDeque<Outbound>,
    /// The reader is gone: pushes are refused.
    closed: bool,
}

/// The outcome of a push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    Queued,
    /// The queue holds `capacity` items already.
    Full,
    /// The reader is gone.
    Closed,
}

impl SendQueue {
    pub fn new(capacity: usize) -> Self {
        SendQueue {
            queue: Mutex::new(Queue {
                items: VecDeque::new(),
                closed: false,
            }),
            reader: AtomicWaker::new(),
            ending: AtomicBool::new(false),
            capacity,
        }
    }

    /// The connection is closing: a waiting [`QueueReader::recv`] returns
    /// `None`. Pushes are still taken (what is queued may go out before the
    /// close frame, through `try_recv`).
    pub fn end(&self) {
        self.ending.store(true, Ordering::SeqCst);
        self.reader.wake();
    }

    pub fn push(&self, item: Outbound) -> Pushed {
        let mut queue = self.queue.lock().expect("send queue lock");
        if queue.closed {
            return Pushed::Closed;
        }
        if queue.items.len() >= self.capacity {
            return Pushed::Full;
        }
        queue.items.push_back(item);
        let first = queue.items.len() == 1;
        drop(queue);
        if first {
            self.reader.wake();
        }
        Pushed::Queued
    }
}

/// The reading half, owned by the writer. Besides what is still queued, at
/// most one taken batch (up to the capacity again) is in its hands.
pub struct QueueReader {
    shared: Arc<SendQueue>,
    taken: VecDeque<Outbound>,
}

/// Nothing is queued right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Empty;

impl QueueReader {
    pub fn new(shared: Arc<SendQueue>) -> Self {
        QueueReader {
            shared,
            taken: VecDeque::new(),
        }
    }

    /// The next item, waiting for one; `None` once the connection is
    /// closing ([`SendQueue::end`]; what is still queued is for
    /// `try_recv`). Cancel-safe: an item is only taken when it is returned.
    pub fn recv(&mut self) -> impl Future<Output = Option<Outbound>> + '_ {
        let QueueReader { shared, taken } = self;
        // What `recv` returns now, if it need not wait.
        let ready = || {
            if shared.ending.load(Ordering::SeqCst) {
                return Some(None);
            }
            take_next(shared, taken).ok().map(Some)
        };
        super::one_waiter::wait_until(&shared.reader, ready)
    }

    pub fn try_recv(&mut self) -> Result<Outbound, Empty> {
        take_next(&self.shared, &mut self.taken)
    }

    /// Items waiting, taken or not.
    pub fn len(&self) -> usize {
        self.taken.len()
            + self
                .shared
                .queue
                .lock()
                .expect("send queue lock")
                .items
                .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The next item: from the batch taken, else the whole queue is taken in
/// one swap.
fn take_next(shared: &SendQueue, taken: &mut VecDeque<Outbound>) -> Result<Outbound, Empty> {
    if taken.is_empty() {
        // Given back empty and unallocated: an idle connection's queue
        // holds no memory.
        *taken = VecDeque::new();
        let mut queue = shared.queue.lock().expect("send queue lock");
        std::mem::swap(&mut queue.items, taken);
        drop(queue);
        if !taken.is_empty() {
            crate::metrics::metrics()
                .outbound_queue_depth
                .observe(taken.len() as f64);
        }
    }
    taken.pop_front().ok_or(Empty)
}

impl Drop for QueueReader {
    fn drop(&mut self) {
        let mut queue = self.shared.queue.lock().expect("send queue lock");
        queue.closed = true;
        queue.items = VecDeque::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(s: &'static str) -> Outbound {
        Outbound::Frame(s.into())
    }

    fn text(item: Outbound) -> String {
        match item {
            Outbound::Frame(f) => f.to_string(),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn fifo_bounded_and_closed_when_the_reader_goes() {
        let shared = Arc::new(SendQueue::new(2));
        let mut reader = QueueReader::new(shared.clone());
        assert!(matches!(reader.try_recv(), Err(Empty)));
        assert_eq!(shared.push(frame("a")), Pushed::Queued);
        assert_eq!(shared.push(frame("b")), Pushed::Queued);
        assert_eq!(shared.push(frame("c")), Pushed::Full);
        assert_eq!(reader.len(), 2);
        assert_eq!(text(reader.recv().await.unwrap()), "a");
        // "b" is taken with "a": the queue has room again.
        assert_eq!(shared.push(frame("c")), Pushed::Queued);
        assert_eq!(text(reader.recv().await.unwrap()), "b");
        assert_eq!(text(reader.try_recv().unwrap()), "c");
        assert!(reader.is_empty());
        drop(reader);
        assert_eq!(shared.push(frame("d")), Pushed::Closed);
    }

    #[tokio::test]
    async fn a_waiting_reader_is_woken_by_a_push_from_another_thread() {
        let shared = Arc::new(SendQueue::new(8));
        let mut reader = QueueReader::new(shared.clone());
        let pusher = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            shared.push(frame("x"))
        });
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), reader.recv())
            .await
            .expect("woken");
        assert_eq!(text(got.unwrap()), "x");
        assert_eq!(pusher.join().unwrap(), Pushed::Queued);
    }

    #[tokio::test]
    async fn a_waiting_reader_is_woken_by_the_end_and_the_queued_items_stay() {
        let shared = Arc::new(SendQueue::new(8));
        let mut reader = QueueReader::new(shared.clone());
        let ender = {
            let shared = shared.clone();
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(20));
                shared.end();
            })
        };
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), reader.recv())
            .await
            .expect("woken");
        assert!(got.is_none(), "ending");
        ender.join().unwrap();
        assert_eq!(shared.push(frame("last")), Pushed::Queued);
        assert!(reader.recv().await.is_none(), "still ending");
        assert_eq!(text(reader.try_recv().unwrap()), "last");
    }
}
