//! The speeds the router estimates an escalation's latency from ([`SpeedEstimate`]).

use serde::{Deserialize, Serialize};

use crate::model::Route;

/// Measured speeds used to estimate an escalation's latency.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SpeedEstimate {
    /// Server prompt processing, tokens/s.
    pub server_prompt_tok_s: f64,
    /// Server generation, tokens/s.
    pub server_gen_tok_s: f64,
    /// Local generation, tokens/s.
    pub local_gen_tok_s: f64,
    /// Network round trip, ms.
    pub rtt_ms: f64,
}

impl SpeedEstimate {
    /// Estimated wall time, ms, of escalating on `route` with a server prompt of
    /// `prompt_tokens` and completions of `completion_tokens` (the server's, and for `colm`
    /// the local refinement's): RTT + prefill + decode (+ local decode for `colm`).
    pub fn escalation_ms(&self, route: Route, prompt_tokens: u64, completion_tokens: u64) -> f64 {
        let per = |tokens: u64, tok_s: f64| {
            if tok_s > 0.0 {
                tokens as f64 * 1000.0 / tok_s
            } else {
                f64::INFINITY
            }
        };
        let server = self.rtt_ms
            + per(prompt_tokens, self.server_prompt_tok_s)
            + per(completion_tokens, self.server_gen_tok_s);
        match route {
            Route::Local => 0.0,
            Route::Remote => server,
            Route::Colm => server + per(completion_tokens, self.local_gen_tok_s),
        }
    }
}
