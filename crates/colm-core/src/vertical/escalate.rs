//! The router's escalations ([`Router::answer`], step 5): the `remote` route, where the server
//! model answers the (redacted) query itself, and the `colm` route, one CoLM round
//! ([`crate::colm::round::run`]) on the device's draft guided by the server model's own reference.

use super::privacy;
use super::redacted::Redacted;
use super::Router;
use crate::colm::guide::{Guide, InProcess};
use crate::colm::round;
use crate::colm::{Collaborator, ColmConfig, ColmError};
use crate::model::SamplingParams;
use crate::prompts;
use crate::query::Query;
use crate::step::{call, Step, StepKind, StepObserver, Watch};

impl Router {
    /// The `remote` route: the server model answers the (redacted) query itself.
    pub(super) async fn remote(
        &self,
        query_out: &Query,
        restore: Option<&privacy::Redaction>,
        params: &SamplingParams,
        observer: Option<StepObserver<'_>>,
    ) -> Escalation {
        let step = call(
            StepKind::Draft,
            1,
            None,
            self.server.as_ref(),
            prompts::draft(query_out),
            params,
            observer,
        )
        .await;
        let outcome = match (step.text(), step.error()) {
            (Some(t), _) => Ok(Ok(match restore {
                Some(r) => r.restore(t),
                None => t.to_owned(),
            })),
            (None, e) => Err(e.map(ToString::to_string).unwrap_or_default()),
        };
        Escalation {
            server_steps: vec![step],
            client_steps: Vec::new(),
            outcome,
        }
    }

    /// The `colm` route: one CoLM round ([`round::run`]) on the device's `draft`, guided by the
    /// server model's own reference (one generalist writer, the server model itself), asked
    /// about the redacted query when `redaction` is set.
    pub(super) async fn collaborate(
        &self,
        query: &Query,
        draft: Step,
        redaction: Option<privacy::Redaction>,
        params: &SamplingParams,
        observer: Option<StepObserver<'_>>,
    ) -> Escalation {
        let config = ColmConfig {
            client_params: params.clone(),
            server_params: params.clone(),
            refine: Some(self.config.refine),
            ..ColmConfig::default()
        };
        let server = InProcess {
            aggregator: Some(self.server.as_ref()),
            writers: &[],
            store: None,
            config: &config,
            embedder: None,
        };
        let redacted = redaction.map(|r| Redacted::new(&server, &self.detector, r));
        let guide: &dyn Guide = match &redacted {
            Some(r) => r,
            None => &server,
        };
        let local = Collaborator {
            id: "local".into(),
            description: String::new(),
            model: self.local.clone(),
        };
        let run = round::run(
            query,
            std::slice::from_ref(&local),
            guide,
            &config,
            Some(vec![draft]),
            Watch::steps(observer),
        )
        .await;
        let (record, outcome) = match run {
            Ok(r) => {
                let answer = r.answer().unwrap_or_default().to_owned();
                (r, Ok(Ok(answer)))
            }
            Err(ColmError::GuidanceFailed { error, partial, .. }) => {
                // A writer's own error says why (the guidance's says only that none was made).
                let why = partial
                    .references
                    .iter()
                    .flat_map(|r| r.steps.iter())
                    .find_map(Step::error)
                    .map_or_else(|| error.to_string(), ToString::to_string);
                (*partial, Err(why))
            }
            Err(ColmError::AllCollaboratorsFailed {
                errors, partial, ..
            }) => {
                let e = errors
                    .first()
                    .map(|(_, e)| e.to_string())
                    .unwrap_or_default();
                (*partial, Ok(Err(e)))
            }
            Err(ColmError::InvalidConfig(m)) => {
                return Escalation {
                    server_steps: Vec::new(),
                    client_steps: Vec::new(),
                    outcome: Err(m),
                }
            }
        };
        let server_steps = record
            .references
            .iter()
            .flat_map(|r| r.all_steps())
            .chain(
                record
                    .rounds
                    .iter()
                    .flat_map(|r| r.guidance.iter().chain(&r.critiques)),
            )
            // The calls only (one reference passed on as guidance is no call).
            .filter(|s| !s.messages.is_empty())
            .cloned()
            .collect();
        let client_steps = record
            .rounds
            .iter()
            .flat_map(|r| r.refinements.iter())
            .cloned()
            .collect();
        Escalation {
            server_steps,
            client_steps,
            outcome,
        }
    }
}

/// What an escalation did: the server's steps, the device's steps after its draft, and the
/// outcome — `Err` when the server failed (the draft answers), else the answer or the
/// refinement's failure.
pub(super) struct Escalation {
    pub(super) server_steps: Vec<Step>,
    pub(super) client_steps: Vec<Step>,
    pub(super) outcome: Result<Result<String, String>, String>,
}
