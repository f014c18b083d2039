//! What one request costs its tenant: an estimate reserved from the tenant's token budget
//! before the request runs, then settled — counted in the metrics, charged to the tenant less
//! the reservation — however the request ends: answered, failed, or cut because its caller
//! went away. A request that ends early is charged what its model calls actually prefilled
//! and generated, as their [`Meter`] counted it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use colm_core::{Meter, Usage};

use crate::auth::{current_tenant, Tenant};
use crate::error::ApiError;
use crate::AppState;

/// The reservation and meter of one request (see the module doc). Settled once: the first of
/// [`Charge::settle`], [`Charge::settle_metered`] or the drop counts, the others do nothing.
pub struct Charge {
    state: AppState,
    /// The named tenant served (`None` on a server without keys: nothing to charge).
    tenant: Option<Tenant>,
    model: String,
    /// Tokens taken from the tenant's budget before the request ran.
    reserved: u64,
    meter: Arc<Meter>,
    settled: AtomicBool,
}

impl Charge {
    /// Reserves `estimate` tokens of the current tenant's budget ([`crate::auth::Auth::reserve`])
    /// for a request to `model` (its hosted id).
    ///
    /// # Errors
    /// The 429 `insufficient_quota` of a spent budget, with the seconds until it refills.
    pub async fn reserve(state: &AppState, model: &str, estimate: u64) -> Result<Self, ApiError> {
        let tenant = current_tenant().filter(|t| !t.name.is_empty());
        let mut reserved = 0;
        if let (Some(t), Some(auth)) = (&tenant, state.auth()) {
            auth.reserve(&t.name, estimate)
                .await
                .map_err(|wait| auth.budget_spent(wait))?;
            reserved = estimate;
        }
        Ok(Self {
            state: state.clone(),
            tenant,
            model: model.to_owned(),
            reserved,
            meter: Meter::new(),
            settled: AtomicBool::new(false),
        })
    }

    /// The meter to run the request's model calls in ([`Meter::scope`]).
    pub fn meter(&self) -> Arc<Meter> {
        self.meter.clone()
    }

    /// Settles with `usage`, the answers' reported usage. False when already settled.
    pub fn settle(&self, usage: Usage) -> bool {
        if self.settled.swap(true, Ordering::AcqRel) {
            return false;
        }
        self.state.spend(
            self.tenant.as_ref(),
            &self.model,
            usage.prompt_tokens,
            usage.completion_tokens,
            self.reserved,
        );
        true
    }

    /// Settles with what the meter counted so far and the server has not recorded step by
    /// step ([`AppState::record_tokens`]) — for a request that failed or was cut, or whose
    /// steps were recorded as they finished — with at least `delivered` completion tokens
    /// (the deltas its caller received: a remote model reports its usage only at the end).
    /// The usage charged; `None` when already settled.
    pub fn settle_metered(&self, delivered: u64) -> Option<Usage> {
        let mut usage = self.meter.unrecorded();
        usage.completion_tokens = usage.completion_tokens.max(delivered);
        self.settle(usage).then_some(usage)
    }
}

impl Drop for Charge {
    /// A request dropped unsettled (its handler was cancelled) is charged what it used.
    fn drop(&mut self) {
        let _ = self.settle_metered(0);
    }
}
