//! Static pod manifests: parsing bytes into pods, validating them (with the field contract of
//! `fields`, docs/POD-FIELDS.md), and giving each its identity.
//!
//! Nothing here does I/O: the sources read bytes and hand them over, so every rule is unit-tested.

mod error;
mod fields;
mod identity;
mod parse;
mod pod;
mod validate;

pub use error::{FieldError, ManifestError};
pub use identity::{
    ANNOTATION_CONFIG_HASH, ANNOTATION_CONFIG_SEEN, ANNOTATION_CONFIG_SOURCE, Origin, SourceKind, default_pull_policy,
    derive_uid,
};
pub use parse::{MAX_MANIFEST_BYTES, parse_manifest};
pub use pod::{RestartPolicy, StaticPod, is_sidecar};
