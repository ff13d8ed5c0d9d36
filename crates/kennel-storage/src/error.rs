use std::io;
use std::path::PathBuf;

/// Errors from templates and VE layers.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("template '{0}' does not exist (see `kennel template list`; create it with `kennel template create` or `kennel template import`)")]
    NoSuchTemplate(String),
    #[error("template '{0}' already exists (remove it first with `kennel template remove {0}`)")]
    TemplateExists(String),
    #[error("invalid template name '{0}': use 1-64 characters a-z, 0-9, '.', '_' or '-', starting with a letter or digit")]
    BadTemplateName(String),
    #[error("unknown template source '{0}': use `busybox` or `debian-12` (or import a tarball with `kennel template import`)")]
    UnknownSource(String),
    /// An external program (debootstrap) or the host's busybox is missing
    /// or failed.
    #[error("{0}")]
    Tool(String),
    /// A template's `template.toml` cannot be read or written.
    #[error("template metadata {path}: {reason}")]
    Metadata { path: PathBuf, reason: String },
    /// A VE's layer could not be prepared.
    #[error("{0}")]
    Layer(String),
    /// The request cannot be done as asked (a snapshot that does not
    /// exist, a disk the data does not fit in, a bad name): the user's to
    /// change, nothing was changed.
    #[error("{0}")]
    Refused(String),
    /// A stopped VE's disk is still in use by the kernel (something on
    /// the host holds the VE's files): work on the image itself must wait.
    #[error("{0}")]
    InUse(String),
    #[error("archive {path}: {reason}")]
    Archive { path: PathBuf, reason: String },
    #[error("{0}")]
    Unsupported(String),
    /// A tree could not be removed (`remove::remove_tree`).
    #[error("remove {path}: {reason}")]
    Remove { path: PathBuf, reason: String },
    /// A VE backup cannot be written, read or restored.
    #[error(transparent)]
    Backup(#[from] crate::backup::BackupError),
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

pub(crate) fn io_err(
    op: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(io::Error) -> StorageError {
    let path = path.into();
    move |source| StorageError::Io { op, path, source }
}
