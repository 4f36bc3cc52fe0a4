//! docker-buildkit: a Pulumi resource provider whose one resource, `Image`, builds a Docker
//! image with BuildKit through the Docker Engine API and pushes it to a registry.
//!
//! Three layers, three crates (ARCHITECTURE.md): [`pulumi_kit`] serves resources to the
//! Pulumi engine and knows nothing of Docker; [`buildkit_engine`] builds and pushes images
//! and knows nothing of Pulumi; this crate's [`resources`] (the `Image`) maps one onto the
//! other. The engine's and the kit's modules are re-exported under their old names, so
//! `docker_buildkit::docker::…` and `docker_buildkit::rpc::…` keep working for the tests,
//! the benches and codegen.

pub mod resources;

pub use buildkit_engine::{
    buildkit, cache, context, credentials, docker, dockerfile, grammar, platform, reference,
    registry,
};
pub use pulumi_kit::{generated, path, provider, redact, resource, rpc, schema, validation};
