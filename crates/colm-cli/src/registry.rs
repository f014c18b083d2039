//! The models of one command by every name they answer to: the name they were loaded by (a
//! catalog name or a `.gguf` path), their own name, the aliases they are served under
//! (`--model NAME=ALIAS`) and the ids of upstream endpoints. Every flag that takes a model
//! (`--client`, `--server`, `--colm-client`, `--colm-server`, `--writer`) resolves through it,
//! and an unknown name is an error listing the names it knows.

use std::collections::BTreeMap;
use std::sync::Arc;

use colm_core::colm::Collaborator;

use crate::load::Loaded;

/// Loaded models by name (module docs).
#[derive(Default)]
pub struct Registry {
    by_name: BTreeMap<String, Arc<Loaded>>,
}

impl Registry {
    /// The models of `loaded` (by the names they were loaded by), also under their own names.
    pub fn new(loaded: &BTreeMap<String, Arc<Loaded>>) -> Self {
        let mut r = Self::default();
        for (name, m) in loaded {
            r.by_name.insert(name.clone(), m.clone());
            r.by_name
                .entry(m.model.name().to_owned())
                .or_insert_with(|| m.clone());
        }
        r
    }

    /// `model` also answers to `name`.
    pub fn insert(&mut self, name: &str, model: Arc<Loaded>) {
        self.by_name.insert(name.to_owned(), model);
    }

    /// Every name and the model it names, by name.
    pub fn names(&self) -> impl Iterator<Item = (&str, &Arc<Loaded>)> {
        self.by_name.iter().map(|(n, m)| (n.as_str(), m))
    }

    /// The model named `name`.
    ///
    /// # Errors
    /// No model answers to it: the message lists the names that do.
    pub fn get(&self, name: &str) -> anyhow::Result<Arc<Loaded>> {
        self.by_name.get(name).cloned().ok_or_else(|| {
            anyhow::anyhow!(
                "unknown model {name:?}: known here are {}",
                self.by_name
                    .keys()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
    }

    /// The client collaborators on the models `names`, in order ([`Collaborator::client`]).
    ///
    /// # Errors
    /// As [`Registry::get`].
    pub fn collaborators(&self, names: &[String]) -> anyhow::Result<Vec<Collaborator>> {
        names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let m = self.get(name)?;
                Ok(Collaborator::client(
                    i,
                    m.model.clone(),
                    m.description.clone(),
                ))
            })
            .collect()
    }
}
