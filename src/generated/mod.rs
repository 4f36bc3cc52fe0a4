//! Generated protocol code only: Pulumi's `pulumirpc` gRPC services and messages for
//! tonic/prost. Regenerate with `cargo run -p codegen -- protocol`; never edit by hand.

#[allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
pub mod pulumirpc {
    include!("pulumirpc.rs");
}
