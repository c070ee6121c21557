use std::fmt;

/// Why a manifest (one file, or one URL body) could not become pods.
///
/// Every variant names the place an operator must look: the file or URL (`location`), the YAML
/// document (1-based, as an editor counts) and, where known, the field or line and column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("{location}: cannot read: {message}")]
    Read { location: String, message: String },
    #[error("{location}: {size} bytes is over the {limit}-byte limit for a manifest")]
    TooLarge { location: String, size: u64, limit: u64 },
    #[error("{location}: not a text file (binary content); a manifest is YAML or JSON")]
    NotText { location: String },
    #[error("{location}: empty manifest")]
    Empty { location: String },
    #[error("{location}: line {line}, column {column}: {message}")]
    Syntax { location: String, line: u64, column: u64, message: String },
    #[error("{location}: document {doc}: {found} is not a static pod; a manifest holds v1 Pod or v1 PodList objects")]
    Kind { location: String, doc: usize, found: String },
    #[error("{location}: document {doc}{}: {}", item_suffix(*.item), join(.errors))]
    Invalid { location: String, doc: usize, item: Option<usize>, errors: Vec<FieldError> },
    #[error("{location}: pod {name} is already defined by {first}; this definition is ignored")]
    Duplicate { location: String, name: String, first: String },
    /// Refused by the node's Pod Security policy, in the API server's words.
    #[error("{location}: pod {pod}: violates PodSecurity \"{policy}\": {violations}")]
    Forbidden { location: String, pod: String, policy: String, violations: String },
    /// The file or its directory could be changed by someone other than root (StrictModes).
    #[error(
        "{location}: not trusted: {reason}; only root may be able to change a manifest (chown root, chmod go-w), or set staticPodPathStrictModes: false"
    )]
    Untrusted { location: String, reason: String },
}

impl ManifestError {
    /// The file or URL the error is about.
    pub fn location(&self) -> &str {
        match self {
            Self::Read { location, .. }
            | Self::TooLarge { location, .. }
            | Self::NotText { location }
            | Self::Empty { location }
            | Self::Syntax { location, .. }
            | Self::Kind { location, .. }
            | Self::Invalid { location, .. }
            | Self::Duplicate { location, .. }
            | Self::Forbidden { location, .. }
            | Self::Untrusted { location, .. } => location,
        }
    }
}

/// One invalid field, named by its path in the Pod (`spec.containers[0].image`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

fn item_suffix(item: Option<usize>) -> String {
    item.map(|i| format!(", items[{i}]")).unwrap_or_default()
}

fn join(errors: &[FieldError]) -> String {
    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}
