//! The resources of this provider (one: [`image::Image`]) and the provider configuration
//! they share. `provider()` is the whole provider: adding a resource is one `.with(...)`.

pub mod image;
pub mod inputs;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::provider::{Provider, ValidateConfig};
use crate::resource::CheckFailure;
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

impl ValidateConfig for ProviderConfig {
    fn validate(&self) -> Vec<CheckFailure> {
        let mut f = Vec::new();
        if let Some(host) = self.host.as_deref().filter(|h| !h.is_empty()) {
            match crate::docker::HOST_SCHEMES
                .iter()
                .find_map(|s| host.strip_prefix(s).map(|rest| (s, rest)))
            {
                None => f.push(CheckFailure::new(
                    "host",
                    format!(
                        "{host:?} is not a Docker host this provider can reach: use unix:///path/to/docker.sock, tcp://host:port, http://host:port or https://host:port"
                    ),
                )),
                Some((scheme, "")) => f.push(CheckFailure::new(
                    "host",
                    format!(
                        "{host:?} names no {} after {scheme}: write e.g. unix:///var/run/docker.sock or tcp://127.0.0.1:2375",
                        if *scheme == "unix://" { "socket path" } else { "address" }
                    ),
                )),
                Some(_) => {}
            }
        }
        f
    }
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
    // The GitHub releases of `repository` (see `scripts/dist.sh` for the assets).
    plugin_download_url: "github://api.github.com/docker-buildkit/pulumi-docker-buildkit",
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

#[cfg(test)]
mod tests {
    use super::*;

    fn host_failures(host: &str) -> Vec<CheckFailure> {
        ProviderConfig {
            host: Some(host.to_string()),
            cert_path: None,
        }
        .validate()
    }

    #[test]
    fn config_accepts_the_hosts_connect_can_reach() {
        for good in [
            "",
            "unix:///var/run/docker.sock",
            "tcp://127.0.0.1:2375",
            "http://docker:2375",
            "https://docker:2376",
        ] {
            assert_eq!(host_failures(good), vec![], "{good}");
        }
        assert!(ProviderConfig::default().validate().is_empty());
        for bad in [
            "ftp://x",
            "ssh://user@host",
            "/var/run/docker.sock",
            "unix://",
            "tcp://",
            "TCP://x:1",
        ] {
            let f = host_failures(bad);
            assert_eq!(f.len(), 1, "{bad}");
            assert_eq!(f[0].property, "host");
        }
    }
}
