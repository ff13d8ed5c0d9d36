//! Errors of the access model.

#[derive(Debug, thiserror::Error)]
pub enum ApiAccessError {
    /// Input a user can correct (a role, tenant or token id).
    #[error("{0}")]
    BadInput(String),
    #[error("no API token with id {0} (see `kennel api token list`)")]
    NoSuchToken(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the token file {path} is damaged: {why} (restore it, or remove it and make new tokens)"
    )]
    Damaged { path: String, why: String },
}

pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ApiAccessError {
    let what = what.into();
    move |source| ApiAccessError::Io { what, source }
}
