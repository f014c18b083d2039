//! `colm ask`'s live view: each step's text on stdout as it is written, and a status line on
//! stderr (when it is a terminal) with every running step's tokens, tokens/s and elapsed time.
//!
//! Steps run concurrently (a draft beside a reference), so one step at a time is *in focus*:
//! its heading is printed when it starts and its text as it arrives; the text of steps that run
//! meanwhile is kept and printed whole, with their heading, when the focus frees. Each step
//! ends with a line of its token counts and time ([`crate::print::step_footer`]).

use std::io::{IsTerminal, Write};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use colm_core::colm::Step;
use colm_core::step::{Observe, Progress, StepKind, StepPhase};

/// A step the view has seen start.
struct Running {
    kind: StepKind,
    round: u32,
    collaborator: Option<String>,
    model: String,
    /// Text reports received (about one per generated token).
    pieces: u64,
    /// Text not yet printed (printed whole when the step gets the focus).
    held: String,
    started: Instant,
    /// Its heading is on stdout.
    shown: bool,
    /// Some text that is not whitespace has arrived.
    any: bool,
    /// Ended (its footer waits for the focus).
    finished: Option<Step>,
}

impl Running {
    fn is(&self, kind: StepKind, round: u32, collaborator: Option<&str>, model: &str) -> bool {
        self.kind == kind
            && self.round == round
            && self.collaborator.as_deref() == collaborator
            && self.model == model
    }
}

/// The live view ([module docs](self)); an [`Observe`]r of a strategy's steps.
pub struct Live {
    state: Mutex<State>,
    status: bool,
    began: Instant,
}

#[derive(Default)]
struct State {
    /// Steps seen, in the order they started; the first unfinished-or-unprinted one has the
    /// focus.
    steps: Vec<Running>,
    /// Width of the status line on stderr, to clear it.
    status_width: usize,
}

impl Live {
    /// A view that draws the status line when stderr is a terminal.
    pub fn new() -> Self {
        Self {
            state: Mutex::new(State::default()),
            status: std::io::stderr().is_terminal(),
            began: Instant::now(),
        }
    }

    fn with(&self, f: impl FnOnce(&mut State, &mut dyn Write)) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out = std::io::stdout().lock();
        state.clear_status();
        f(&mut state, &mut out);
        state.flush_focus(&mut out);
        let _ = out.flush();
        if self.status {
            let line = state.status_line(self.began);
            if !line.is_empty() {
                eprint!("{line}");
                state.status_width = line.chars().count();
            }
        }
    }

    /// Prints what is still held and clears the status line (call before printing the end of
    /// the run).
    pub fn done(&self) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.clear_status();
        let mut out = std::io::stdout().lock();
        state.flush_focus(&mut out);
        let _ = out.flush();
    }
}

impl State {
    /// Erases the status line from stderr, if one is drawn (only on a terminal).
    fn clear_status(&mut self) {
        if self.status_width > 0 {
            eprint!("\r{}\r", " ".repeat(self.status_width));
            self.status_width = 0;
        }
    }

    /// Prints what the step in focus holds; when it has finished, its footer, and moves the
    /// focus on to the next step (repeatedly).
    fn flush_focus(&mut self, out: &mut dyn Write) {
        while let Some(step) = self.steps.first_mut() {
            if !step.shown {
                let heading = crate::print::heading(
                    step.kind,
                    step.round,
                    step.collaborator.as_deref(),
                    &step.model,
                );
                let _ = writeln!(out, "\n── {heading} ──");
                step.shown = true;
            }
            if !step.held.is_empty() {
                let _ = write!(out, "{}", step.held);
                step.held.clear();
            }
            let Some(finished) = step.finished.take() else {
                return;
            };
            if step.any {
                let _ = writeln!(out);
            }
            let _ = writeln!(out, "{}", crate::print::step_footer(&finished));
            self.steps.remove(0);
        }
    }

    fn status_line(&self, began: Instant) -> String {
        let running: Vec<String> = self
            .steps
            .iter()
            .filter(|s| s.finished.is_none())
            .map(|s| {
                let secs = s.started.elapsed().as_secs_f64();
                let rate = if secs > 0.0 {
                    s.pieces as f64 / secs
                } else {
                    0.0
                };
                format!("{} {} tok {:.1} tok/s", s.kind.as_str(), s.pieces, rate)
            })
            .collect();
        if running.is_empty() {
            return String::new();
        }
        format!(
            "⏳ {} · {:.1} s",
            running.join(" · "),
            began.elapsed().as_secs_f64()
        )
    }

    fn find(&mut self, p: &Progress) -> Option<&mut Running> {
        self.steps.iter_mut().find(|s| {
            s.finished.is_none() && s.is(p.step, p.round, p.collaborator.as_deref(), &p.model)
        })
    }
}

impl Observe for Live {
    fn finished(&self, step: &Step) {
        self.with(|state, _| {
            let p = Progress::from(step);
            match state.find(&p) {
                Some(s) => s.finished = Some(step.clone()),
                // Not seen starting (reported only when it ended): shown whole.
                None => state.steps.push(Running {
                    kind: step.kind,
                    round: step.round,
                    collaborator: step.collaborator.clone(),
                    model: step.model.clone(),
                    pieces: 0,
                    held: step.text().unwrap_or_default().trim().to_owned(),
                    started: Instant::now(),
                    shown: false,
                    any: true,
                    finished: Some(step.clone()),
                }),
            }
        });
    }

    fn live(&self) -> bool {
        true
    }

    fn running(&self, report: Progress) {
        self.with(|state, _| match report.phase {
            StepPhase::Started => state.steps.push(Running {
                kind: report.step,
                round: report.round,
                collaborator: report.collaborator.clone(),
                model: report.model.clone(),
                pieces: 0,
                held: String::new(),
                started: Instant::now(),
                shown: false,
                any: false,
                finished: None,
            }),
            StepPhase::Text => {
                if let Some(s) = state.find(&report) {
                    s.pieces += 1;
                    let text = report.text.unwrap_or_default();
                    // Leading blank lines of a step's text are not shown.
                    let text = if s.any {
                        text.as_str()
                    } else {
                        text.trim_start()
                    };
                    s.any |= !text.is_empty();
                    s.held.push_str(text);
                }
            }
            StepPhase::Finished => {}
        });
    }
}
