//! The API server side: the only code that talks to it (kube-rs). Registers the Node and keeps
//! its Lease, keeps one read-only mirror pod per static pod with true status, and posts events.
//! Nothing local ever waits for it: static pods run the same with the API server gone.
//!
//! - `lease`: the Node keeper (registration, Lease renewal, status posts);
//! - `sync`: the mirror loop, carrying out `pod::verdict` and `rules` against the API;
//! - `pod`, `node`, `rules`, `events`: what the objects look like, and the decisions, pure.

mod events;
mod lease;
#[cfg(test)]
mod mock_tests;
pub mod node;
pub mod pod;
pub mod rules;
mod sync;

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

pub use sync::{MirrorSync, Settings};

#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    #[error("{verb} {object}: {message}")]
    Api { verb: &'static str, object: String, code: Option<u16>, message: String },
    #[error("kubeconfig {path}: {message}")]
    Kubeconfig { path: String, message: String },
    #[error("{0}")]
    Invalid(String),
}

impl MirrorError {
    pub fn api(verb: &'static str, object: String, error: kube::Error) -> Self {
        match error {
            kube::Error::Api(status) => Self::Api {
                verb,
                object,
                code: Some(status.code),
                message: format!("{} ({})", status.message, status.reason),
            },
            other => Self::Api { verb, object, code: None, message: describe(&other) },
        }
    }

    pub fn code(&self) -> Option<u16> {
        match self {
            Self::Api { code, .. } => *code,
            _ => None,
        }
    }
}

/// kube's top-level messages hide the cause ("ServiceError: client error (Connect)"); name it.
pub(crate) fn describe(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(&format!(": {text}"));
        }
        source = cause.source();
    }
    message
}

/// Why a static pod has no mirror right now, by full name (`namespace/name`), for the local view.
#[derive(Clone, Default)]
pub struct MirrorProblems(Arc<Mutex<BTreeMap<String, String>>>);

impl MirrorProblems {
    pub fn set(&self, full_name: &str, problem: Option<String>) {
        let mut map = self.0.lock().expect("problems lock");
        match problem {
            Some(p) => map.insert(full_name.into(), p),
            None => map.remove(full_name),
        };
    }
    pub fn get(&self, full_name: &str) -> Option<String> {
        self.0.lock().expect("problems lock").get(full_name).cloned()
    }
}
