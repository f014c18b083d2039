//! What the call cache ([`crate::cache`]) answered for one item: a task-local count of the
//! replayed calls and their original wall time, read around each item's run
//! ([`replay_scope`]).

use std::cell::Cell;
use std::future::Future;

/// Replayed calls of one item: (count, their original wall time in ms).
#[derive(Clone, Copy, Default, Debug, PartialEq)]
pub struct Replayed {
    /// Calls answered from the cache.
    pub calls: u32,
    /// The wall time those calls took when they ran, ms.
    pub wall_ms: f64,
}

tokio::task_local! {
    /// The replayed calls of the item running in this task.
    pub(crate) static REPLAYED: Cell<Replayed>;
}

/// Runs `fut`, returning its output and the calls the cache answered within it.
pub async fn replay_scope<T>(fut: impl Future<Output = T>) -> (T, Replayed) {
    REPLAYED
        .scope(Cell::new(Replayed::default()), async {
            let out = fut.await;
            (out, REPLAYED.with(Cell::get))
        })
        .await
}
