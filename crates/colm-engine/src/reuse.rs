//! Prompt reuse across requests (llama-server's `cache_prompt`): a finished request leaves the
//! tokens it decoded in its sequence's KV cache (its prompt, and with [`PromptReuse::All`] the
//! tokens it generated); the next request goes to the free sequence whose kept tokens share
//! the longest prefix with its prompt and reads only the rest.
//!
//! Each sequence has its own KV cells, allocated when the model is loaded (`kv_unified` off, as
//! `llama-server -np N`), so what a sequence keeps costs no memory beyond them; it is evicted
//! when a request that shares less with it than [`PromptCache::min_reuse`] tokens is given that
//! sequence (the one used least recently, as llama-server picks a slot by prompt similarity
//! and then by age).

use colm_core::PromptReuse;
use llama_cpp_2::token::LlamaToken;

/// The tokens kept in each sequence's KV cache while no request uses it.
pub(crate) struct PromptCache {
    /// Per sequence: its kept tokens (positions 0..len) and when it was last given out.
    kept: Vec<(Vec<LlamaToken>, u64)>,
    clock: u64,
    /// What finished requests keep (the engine's setting).
    mode: PromptReuse,
    /// Fewest shared tokens worth reusing; a shorter match is treated as none, so the
    /// request takes the least recently used sequence and leaves better matches alone.
    min_reuse: usize,
}

/// Where a request goes: its sequence and how many leading prompt tokens it may skip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Placement {
    /// The sequence.
    pub seq: usize,
    /// Prompt tokens already in that sequence's cache (always fewer than the prompt, so the
    /// last one is read again for its logits).
    pub reused: usize,
}

impl PromptCache {
    /// A cache of `n` sequences keeping what `mode` says.
    pub(crate) fn new(n: usize, mode: PromptReuse, min_reuse: usize) -> Self {
        Self {
            kept: vec![(Vec::new(), 0); n],
            clock: 0,
            mode,
            min_reuse: min_reuse.max(1),
        }
    }

    /// Chooses among the `free` sequences for `prompt` and takes it (its kept tokens beyond
    /// the reused prefix are the caller's to remove from the KV cache); `reuse` false (the
    /// request's `cache_prompt: false`) reuses nothing. `None` when `free` is empty.
    pub(crate) fn place(
        &mut self,
        free: impl IntoIterator<Item = usize>,
        prompt: &[LlamaToken],
        reuse: bool,
    ) -> Option<Placement> {
        let reuse = reuse && self.mode != PromptReuse::Off;
        let best = free
            .into_iter()
            .filter(|&s| s < self.kept.len())
            .map(|s| {
                let shared = if reuse {
                    common_prefix(&self.kept[s].0, prompt)
                } else {
                    0
                };
                let shared = if shared >= self.min_reuse { shared } else { 0 };
                // The longest match, then the least recently used (an empty one first).
                (s, shared, std::cmp::Reverse(self.kept[s].1))
            })
            .max_by_key(|&(s, shared, age)| (shared, age, std::cmp::Reverse(s)))?;
        let (seq, shared, _) = best;
        self.clock += 1;
        self.kept[seq] = (Vec::new(), self.clock);
        Some(Placement {
            seq,
            reused: shared.min(prompt.len().saturating_sub(1)),
        })
    }

    /// Notes that sequence `seq` is free again and its KV cache holds `prompt` then
    /// `generated` at positions 0..; it keeps what the mode says (the caller removes nothing:
    /// whatever is not kept is overwritten by the next request given this sequence).
    pub(crate) fn keep(&mut self, seq: usize, prompt: &[LlamaToken], generated: &[LlamaToken]) {
        let mode = self.mode;
        if let Some(k) = self.kept.get_mut(seq) {
            k.0.clear();
            if mode != PromptReuse::Off {
                k.0.extend_from_slice(prompt);
            }
            if mode == PromptReuse::All {
                k.0.extend_from_slice(generated);
            }
        }
    }

    /// Forgets what sequence `seq` holds (its KV cache was cleared).
    pub(crate) fn forget(&mut self, seq: usize) {
        if let Some(k) = self.kept.get_mut(seq) {
            k.0.clear();
        }
    }
}

/// Length of the longest common prefix of `a` and `b`.
fn common_prefix(a: &[LlamaToken], b: &[LlamaToken]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ids: &[i32]) -> Vec<LlamaToken> {
        ids.iter().map(|&i| LlamaToken(i)).collect()
    }

    #[test]
    fn a_request_goes_to_the_longest_match_and_skips_it() {
        let mut c = PromptCache::new(3, PromptReuse::All, 2);
        let first = c.place([0, 1, 2], &t(&[1, 2, 3]), true).unwrap();
        assert_eq!(first, Placement { seq: 0, reused: 0 });
        c.keep(0, &t(&[1, 2, 3]), &t(&[4, 5]));
        let other = c.place([1, 2], &t(&[9, 9]), true).unwrap();
        c.keep(other.seq, &t(&[9, 9, 8]), &[]);
        // The second turn of the first conversation finds its first turn.
        let again = c.place([0, 1, 2], &t(&[1, 2, 3, 4, 5, 6, 7]), true);
        assert_eq!(again, Some(Placement { seq: 0, reused: 5 }));
        // A prompt that is all cached still reads its last token again.
        c.keep(0, &t(&[1, 2, 3, 4, 5, 6, 7, 8]), &[]);
        let same = c.place([0, 1, 2], &t(&[1, 2, 3]), true);
        assert_eq!(same, Some(Placement { seq: 0, reused: 2 }));
    }

    #[test]
    fn short_matches_and_opt_outs_take_the_least_recently_used() {
        let mut c = PromptCache::new(2, PromptReuse::All, 3);
        for (seq, tokens) in [(0, [1, 2, 3, 4]), (1, [5, 6, 7, 8])] {
            assert_eq!(c.place([seq], &t(&tokens), true).unwrap().seq, seq);
            c.keep(seq, &t(&tokens), &[]);
        }
        // Two shared tokens are below the minimum: the older sequence (0) is evicted, though
        // 1 matches nothing at all.
        let p = c.place([0, 1], &t(&[1, 2, 9]), true).unwrap();
        assert_eq!(p, Placement { seq: 0, reused: 0 });
        c.keep(0, &t(&[1, 2, 9]), &[]);
        // `cache_prompt: false` reuses nothing, even on a full match.
        let p = c.place([0, 1], &t(&[5, 6, 7, 8, 9]), false).unwrap();
        assert_eq!(p, Placement { seq: 1, reused: 0 });
    }

    #[test]
    fn prompt_mode_keeps_what_was_read_not_what_was_generated() {
        let mut c = PromptCache::new(1, PromptReuse::Prompt, 1);
        c.place([0], &t(&[1, 2, 3]), true).unwrap();
        c.keep(0, &t(&[1, 2, 3]), &t(&[4, 5]));
        let next = c.place([0], &t(&[1, 2, 3, 4, 5, 6]), true).unwrap();
        assert_eq!(next.reused, 3);
    }

    #[test]
    fn a_disabled_cache_keeps_nothing() {
        let mut c = PromptCache::new(1, PromptReuse::Off, 1);
        c.place([0], &t(&[1, 2, 3]), true).unwrap();
        c.keep(0, &t(&[1, 2, 3]), &[]);
        assert_eq!(c.place([0], &t(&[1, 2, 3, 4]), true).unwrap().reused, 0);
        assert!(c.place([], &t(&[1]), true).is_none());
    }
}
