//! Data residency: what a sensitive query may do ([`Residency`]) and what is decided for one
//! query ([`Residency::decide`]: leave, stay on the device, or leave redacted).

use serde::{Deserialize, Serialize};

use super::privacy::{self, Detector};

/// What a sensitive query may do.
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Residency {
    /// Never leaves the device.
    Local,
    /// Leaves with typed placeholders, restored on the device.
    Redact,
}

/// What residency decides for one query ([`Residency::decide`]).
#[derive(Debug)]
pub enum Decision {
    /// Nothing sensitive: the query may leave as it is.
    Leave,
    /// It stays on the device; why.
    StayLocal(String),
    /// It leaves with placeholders (the redaction of its transcript); why.
    Redact(privacy::Redaction, String),
}

impl Residency {
    /// What a query whose transcript is `text` may do: one `flagged` sensitive, or holding
    /// spans `detector` finds, stays on the device under [`Residency::Local`] or when nothing
    /// in it can be redacted, and otherwise leaves redacted. The one residency rule of the
    /// router and the device client.
    pub fn decide(self, detector: &Detector, text: &str, flagged: bool) -> Decision {
        let found = detector.find(text);
        if !flagged && found.is_empty() {
            return Decision::Leave;
        }
        let what = if flagged {
            "flagged sensitive".to_owned()
        } else {
            let mut kinds: Vec<&str> = found.iter().map(|s| s.kind.tag()).collect();
            kinds.dedup();
            format!("sensitive spans ({})", kinds.join(", "))
        };
        match self {
            Residency::Local => Decision::StayLocal(format!("{what}: stays on the device")),
            Residency::Redact if found.is_empty() => {
                Decision::StayLocal(format!("{what}, nothing to redact: stays on the device"))
            }
            Residency::Redact => Decision::Redact(
                detector.redact(text),
                format!("{what}: sent with placeholders"),
            ),
        }
    }
}
