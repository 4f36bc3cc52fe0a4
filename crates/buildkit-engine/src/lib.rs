//! The image engine: builds an image with BuildKit and pushes it, from a plan that names
//! nothing of Pulumi. [`context`] walks, filters (`.dockerignore`) and hashes a build context;
//! [`docker`] drives a Docker Engine and serves its build session; [`registry`] speaks the
//! Distribution API; [`reference`] and [`platform`] parse image references and platforms; [`credentials`] finds
//! registry credentials (the Docker CLI's config and helpers) for both; [`cache`] is the
//! on-disk cache.

pub mod cache;
pub mod context;
pub mod credentials;
pub mod docker;
pub mod grammar;
pub mod platform;
pub mod reference;
pub mod registry;
