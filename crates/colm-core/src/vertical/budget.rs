//! The server-token budget of the router: where spending is kept ([`TokenLedger`]: in memory
//! here, [`LocalLedger`]; shared between replicas in Redis by `colm-server`) and what one
//! escalation reserves ([`Reservation`]).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A ledger that cannot be read or written (its store is unreachable or broken); the message
/// says which and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("token ledger: {0}")]
pub struct LedgerError(pub String);

/// Where a [`Router`] keeps the server tokens (prompt + completion) it spent, for its budget
/// of [`RouterConfig::server_tokens_per_window`] per sliding window of
/// [`RouterConfig::window_s`]: in this process ([`LocalLedger`], the default), or shared by
/// the replicas of a deployment (`colm serve --state redis://…` keeps it in Redis).
///
/// Under a budget, an escalation first [reserves](TokenLedger::reserve) its estimate (the
/// prompt's tokens and the draft's length) in one step that checks and records, and
/// [settles](TokenLedger::settle) it with the tokens the server reported once it answered.
/// Concurrent escalations, on one replica or several, therefore cannot pass the budget
/// together; what one spends beyond its estimate can.
#[async_trait::async_trait]
pub trait TokenLedger: Send + Sync {
    /// Server tokens spent (or reserved) in the last `window`.
    ///
    /// # Errors
    /// The ledger cannot be read (the router then keeps the query local and says why).
    async fn spent(&self, window: Duration) -> Result<u64, LedgerError>;

    /// Records `tokens` spent now, to count for `window` (escalations without a budget): a
    /// reservation without a limit.
    ///
    /// # Errors
    /// The ledger cannot be written (the router logs it; the answer stands).
    async fn add(&self, tokens: u64, window: Duration) -> Result<(), LedgerError> {
        self.reserve(tokens, u64::MAX, window).await.map(drop)
    }

    /// Reserves `tokens` now, to count for `window`, if what the window holds plus `tokens`
    /// stays within `limit`; checked and recorded as one step.
    ///
    /// # Errors
    /// The ledger cannot be read or written (the router keeps the query local and says why).
    async fn reserve(
        &self,
        tokens: u64,
        limit: u64,
        window: Duration,
    ) -> Result<Reservation, LedgerError>;

    /// Replaces the tokens of reservation `id` by `tokens` (0 drops it: nothing was spent),
    /// keeping its time; a reservation already out of the window is recorded again now.
    ///
    /// # Errors
    /// The ledger cannot be written (the router logs it; the answer stands).
    async fn settle(&self, id: &str, tokens: u64, window: Duration) -> Result<(), LedgerError>;
}

/// The outcome of [`TokenLedger::reserve`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    /// Reserved under `id` (for [`TokenLedger::settle`]); `spent`: what the window held before.
    Reserved {
        /// The reservation's id.
        id: String,
        /// Tokens in the window before this reservation.
        spent: u64,
    },
    /// Refused: the window holds `spent` tokens, and the reservation would pass the limit.
    Refused {
        /// Tokens in the window.
        spent: u64,
    },
}

/// A [`TokenLedger`] in this process's memory.
#[derive(Debug, Default)]
pub struct LocalLedger {
    spendings: Mutex<Spendings>,
}

/// The spendings of a [`LocalLedger`], oldest first: (when, tokens, id); the last id given.
#[derive(Debug, Default)]
struct Spendings {
    list: VecDeque<(Instant, u64, u64)>,
    last_id: u64,
}

impl Spendings {
    /// Drops the spendings older than `window` and sums the others.
    fn sum(&mut self, window: Duration) -> u64 {
        let now = Instant::now();
        while self
            .list
            .front()
            .is_some_and(|(t, _, _)| now.duration_since(*t) > window)
        {
            self.list.pop_front();
        }
        self.list.iter().map(|(_, n, _)| n).sum()
    }

    /// Records `tokens` now under a new id, returned.
    fn push(&mut self, tokens: u64) -> u64 {
        self.last_id += 1;
        self.list.push_back((Instant::now(), tokens, self.last_id));
        self.last_id
    }
}

impl LocalLedger {
    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Spendings>, LedgerError> {
        self.spendings
            .lock()
            .map_err(|e| LedgerError(e.to_string()))
    }
}

#[async_trait::async_trait]
impl TokenLedger for LocalLedger {
    async fn spent(&self, window: Duration) -> Result<u64, LedgerError> {
        Ok(self.lock()?.sum(window))
    }

    async fn reserve(
        &self,
        tokens: u64,
        limit: u64,
        window: Duration,
    ) -> Result<Reservation, LedgerError> {
        let mut spendings = self.lock()?;
        let spent = spendings.sum(window);
        if spent.saturating_add(tokens) > limit {
            return Ok(Reservation::Refused { spent });
        }
        Ok(Reservation::Reserved {
            id: spendings.push(tokens).to_string(),
            spent,
        })
    }

    async fn settle(&self, id: &str, tokens: u64, _window: Duration) -> Result<(), LedgerError> {
        let mut spendings = self.lock()?;
        let id = id.parse::<u64>().ok();
        if tokens == 0 {
            spendings.list.retain(|(_, _, n)| Some(*n) != id);
        } else if let Some(s) = spendings.list.iter_mut().find(|(_, _, n)| Some(*n) == id) {
            s.1 = tokens;
        } else {
            spendings.push(tokens);
        }
        Ok(())
    }
}
