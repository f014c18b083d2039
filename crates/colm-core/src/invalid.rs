//! [`Invalid`]: the error of a value written as text that does not parse or check — a
//! strategy (`debate:agents=0`), an option (`colm:refs=9`), a reference writer, a name of a
//! mode or selector, a collaboration's settings.

/// A value that does not parse or check; the message names what is wrong and what is accepted
/// (`` `refs` takes 1 to 8, got 9 ``, `` unknown strategy `vote` (local, server, …) ``).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

impl From<String> for Invalid {
    fn from(message: String) -> Self {
        Self(message)
    }
}

impl From<&str> for Invalid {
    fn from(message: &str) -> Self {
        Self(message.to_owned())
    }
}
