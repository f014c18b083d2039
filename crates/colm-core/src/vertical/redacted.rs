//! Data residency around a guide: a [`Guide`] that sees a sensitive query, and the answers sent
//! with it, only with their sensitive spans replaced by placeholders ([`super::privacy`]), and
//! whose guidance comes back with the values restored on the device. The device–cloud router's
//! `colm` route and the device client (`colm-client`) both wrap their guide in it.

use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;

use super::privacy::{Detector, Redaction};
use crate::colm::guide::{Ask, Guide, Guided, Shared};
use crate::colm::{Contribution, Selection};
use crate::prompts::CandidateProfile;
use crate::query::Query;
use crate::step::{Step, StepObserver, StepOutcome};

/// `inner` asked about the redacted query (module docs).
pub struct Redacted<'a> {
    inner: &'a dyn Guide,
    detector: &'a Detector,
    /// The query's redaction, extended by each answer sent (one value, one placeholder).
    redaction: Mutex<Redaction>,
}

impl<'a> Redacted<'a> {
    /// `inner` asked with `redaction` (of the query's transcript, by `detector`).
    pub fn new(inner: &'a dyn Guide, detector: &'a Detector, redaction: Redaction) -> Self {
        Self {
            inner,
            detector,
            redaction: Mutex::new(redaction),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Redaction> {
        self.redaction
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The query as it leaves the device: its transcript with placeholders.
    fn query(&self) -> Query {
        Query::new(self.lock().text.clone())
    }

    /// `step`'s text with the values put back.
    fn restore(&self, step: &mut Step) {
        if let StepOutcome::Ok { completion } = &mut step.outcome {
            completion.text = self.lock().restore(&completion.text);
        }
    }
}

#[async_trait]
impl Guide for Redacted<'_> {
    fn server_model(&self) -> &str {
        self.inner.server_model()
    }

    /// The inner guide's shared part, as the server wrote it (restored only once it is the
    /// guidance: a critique must read what the server wrote).
    async fn shared(&self, _query: &Query, observer: Option<StepObserver<'_>>) -> Option<Shared> {
        let query = self.query();
        self.inner.shared(&query, observer).await
    }

    async fn guidance(&self, ask: Ask<'_>, observer: Option<StepObserver<'_>>) -> Guided {
        let query = self.query();
        let answers: Vec<Contribution> = {
            let mut r = self.lock();
            ask.answers
                .iter()
                .map(|a| Contribution {
                    collaborator: a.collaborator.clone(),
                    text: self.detector.redact_also(&mut r, &a.text),
                })
                .collect()
        };
        let redacted = Ask {
            query: &query,
            answers: &answers,
            ..ask
        };
        let mut guided = self.inner.guidance(redacted, observer).await;
        self.restore(&mut guided.guidance);
        for c in &mut guided.critiques {
            self.restore(c);
        }
        guided
    }

    async fn select(
        &self,
        _query: &str,
        profiles: &[CandidateProfile<'_>],
        k: usize,
        observer: Option<StepObserver<'_>>,
    ) -> Option<Selection> {
        let query = self.lock().text.clone();
        self.inner.select(&query, profiles, k, observer).await
    }
}
