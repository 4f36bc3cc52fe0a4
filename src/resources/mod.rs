//! The resources of this provider (one: [`image::Image`]) and the provider configuration
//! they share. `provider()` is the whole provider: adding a resource is one `.with(...)`.

pub mod image;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::provider::Provider;
use crate::schema::PackageInfo;

/// The package name, as Pulumi knows it.
pub const PACKAGE: &str = "docker-buildkit";

/// Provider configuration: which Docker daemon builds the images.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderConfig {
    /// The Docker daemon to build with: `unix:///path/to/docker.sock` or `tcp://host:port`.
    /// Defaults to `$DOCKER_HOST`, then the local socket `unix:///var/run/docker.sock`.
    pub host: Option<String>,
    /// A directory holding `ca.pem`, `cert.pem` and `key.pem` for a `tcp://` daemon with TLS.
    /// Defaults to `$DOCKER_CERT_PATH` when `$DOCKER_TLS_VERIFY` is set.
    pub cert_path: Option<String>,
}

/// The provider with all its resources.
pub fn provider() -> Provider<ProviderConfig> {
    Provider::new(
        PACKAGE,
        env!("CARGO_PKG_VERSION"),
        "Builds Docker images with BuildKit and pushes them to a registry: fast previews that never build, rebuilds only when the context changes, streamed build logs.",
    )
    .with(image::Image)
}

/// Package metadata for the schema.
pub const PACKAGE_INFO: PackageInfo<'static> = PackageInfo {
    display_name: "Docker BuildKit",
    publisher: "docker-buildkit",
    repository: "https://github.com/docker-buildkit/pulumi-docker-buildkit",
    keywords: &[
        "pulumi",
        "docker",
        "buildkit",
        "category/utility",
        "kind/native",
    ],
    python_package: "pulumi_docker_buildkit",
    nodejs_package: "@docker-buildkit/pulumi",
};
