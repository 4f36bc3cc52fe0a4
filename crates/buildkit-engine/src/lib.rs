//! The image engine: builds an image with BuildKit and pushes it, from a plan that names
//! nothing of Pulumi. [`context`] walks, filters (`.dockerignore`) and hashes a build context;
//! [`docker`] drives a Docker Engine and serves its build session; [`registry`] speaks the
//! Distribution API; [`reference`], [`platform`] and [`grammar`] parse image references,
//! platforms, extra hosts and secret ids; [`credentials`] finds registry credentials (the
//! Docker CLI's config and helpers) for both; [`cache`] is the on-disk cache; [`settings`] is
//! how the caller names its settings in the engine's messages.

pub mod buildkit;
pub mod cache;
pub mod context;
pub mod credentials;
pub mod docker;
pub mod dockerfile;
pub mod grammar;
pub mod platform;
pub mod private_dir;
pub mod reference;
pub mod registry;
pub mod settings;
