//! Requests a tenant has in flight: each `POST` of a tenant (the requests that run models:
//! chat completions, guidance, sessions' drafts) holds a place from when it is admitted until
//! its response body has been sent or dropped, queued or running alike. A tenant at its quota
//! ([`crate::auth::AuthConfig::max_concurrent`]) gets 429 `concurrency_limit_exceeded` for one
//! more, so one tenant cannot fill a model's queue ([`crate::ServerConfig`]'s `max_queue`, the
//! backstop for all) and shut the others out. Counted per replica.
//!
//! Its `Retry-After` is when a place is expected to free up: the tenant's mean request time
//! so far (an exponential average of its finished requests) less the time its oldest request
//! in flight has run, at least 1 s.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::response::Response;
use http_body::{Frame, SizeHint};

/// The weight of the latest finished request in a tenant's mean request time.
const ALPHA: f64 = 0.2;

#[derive(Default)]
struct Load {
    /// Start times of the requests in flight, by place number.
    running: HashMap<u64, Instant>,
    next: u64,
    /// Exponential mean of finished requests' times, s (`None` before the first).
    mean_s: Option<f64>,
}

/// The places of every tenant (cheap to clone, shared).
#[derive(Clone, Default)]
pub struct InFlight(Arc<Mutex<HashMap<String, Load>>>);

impl InFlight {
    /// Takes one of `tenant`'s `quota` places; `Err(seconds)` when all are taken: when one is
    /// expected to free up (module docs).
    pub fn enter(&self, tenant: &str, quota: usize) -> Result<Place, u64> {
        let mut all = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let load = all.entry(tenant.to_owned()).or_default();
        let now = Instant::now();
        if load.running.len() >= quota.max(1) {
            let oldest = load
                .running
                .values()
                .min()
                .map_or(0.0, |t| (now - *t).as_secs_f64());
            let wait = load.mean_s.map_or(1.0, |m| m - oldest);
            return Err(wait.ceil().max(1.0) as u64);
        }
        let id = load.next;
        load.next += 1;
        load.running.insert(id, now);
        Ok(Place {
            inflight: self.clone(),
            tenant: tenant.to_owned(),
            id,
        })
    }

    /// Requests `tenant` has in flight.
    #[cfg(test)]
    fn count(&self, tenant: &str) -> usize {
        let all = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        all.get(tenant).map_or(0, |l| l.running.len())
    }
}

/// One request's place: freed when dropped, its time added to the tenant's mean.
pub struct Place {
    inflight: InFlight,
    tenant: String,
    id: u64,
}

impl Place {
    /// `response` holding this place until its body has been sent or dropped.
    pub fn hold(self, response: Response) -> Response {
        response.map(|inner| {
            Body::new(Held {
                inner,
                _place: self,
            })
        })
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut all = self
            .inflight
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // (A tenant's entry stays: its mean outlives its requests; tenants are the key file's.)
        let Some(load) = all.get_mut(&self.tenant) else {
            return;
        };
        if let Some(started) = load.running.remove(&self.id) {
            let s = started.elapsed().as_secs_f64();
            load.mean_s = Some(load.mean_s.map_or(s, |m| m + ALPHA * (s - m)));
        }
    }
}

/// A response body that holds its request's [`Place`].
struct Held {
    inner: Body,
    _place: Place,
}

impl http_body::Body for Held {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_tenant_at_its_quota_waits_for_its_own_places_only() {
        let f = InFlight::default();
        let a = f.enter("acme", 2).unwrap();
        let _b = f.enter("acme", 2).unwrap();
        assert_eq!(f.enter("acme", 2).err(), Some(1), "no mean yet: 1 s");
        assert!(f.enter("globex", 2).is_ok(), "another tenant is unaffected");
        drop(a);
        assert_eq!(f.count("acme"), 1);
        let _c = f.enter("acme", 2).unwrap();
        // With a mean of 10 s and the oldest in flight for 4 s: about 6 s.
        {
            let mut all = f.0.lock().unwrap();
            let load = all.get_mut("acme").unwrap();
            load.mean_s = Some(10.0);
            for t in load.running.values_mut() {
                *t = Instant::now().checked_sub(Duration::from_secs(4)).unwrap();
            }
        }
        assert_eq!(f.enter("acme", 2).err(), Some(6));
    }
}
