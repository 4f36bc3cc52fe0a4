//! The resources of this provider (one: [`image::Image`]) and the provider configuration
//! they share. `provider()` is the whole provider: adding a resource is one `.with(...)`.

pub mod image;
pub mod inputs;

use buildkit_engine::settings::SettingNames;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::path::PropertyPath;
use crate::provider::{Provider, ValidateConfig};
use crate::resource::CheckFailure;
use crate::schema::PackageInfo;

/// The package name, as Pulumi knows it.
pub const PACKAGE: &str = "docker-buildkit";

/// Provider configuration: which Docker daemon builds the images.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderConfig {
    /// The Docker daemon to build with: `unix:///path/to/docker.sock`, `tcp://host:port` or
    /// `ssh://[user@]host[:port]` (through your ssh configuration and agent, never prompting;
    /// the remote runs `docker system dial-stdio`, as with the docker CLI). Defaults to
    /// `$DOCKER_HOST`, then the local socket `unix:///var/run/docker.sock`.
    pub host: Option<String>,
    /// A directory holding `ca.pem`, `cert.pem` and `key.pem` for a `tcp://` daemon with TLS.
    /// Defaults to `$DOCKER_CERT_PATH` when `$DOCKER_TLS_VERIFY` is set.
    pub cert_path: Option<String>,
    /// More Docker daemons, each building the platforms it lists (natively, e.g. an arm64
    /// host for `linux/arm64`), as `docker buildx create --append --platform` sets up. The
    /// platforms of an image build in parallel, each on a builder that lists it, else on
    /// `host` (emulated, for a foreign platform). When several list a platform, an image always
    /// goes to the same one (rendezvous hashing on its name, so its cache stays warm there);
    /// one that cannot be reached is skipped, with a warning, for the next.
    pub builders: Option<Vec<BuilderConfig>>,
}

/// A Docker daemon that builds some platforms.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BuilderConfig {
    /// The daemon: `unix:///path/to/docker.sock`, `tcp://host:port` or
    /// `ssh://[user@]host[:port]` (through your ssh configuration and agent; the remote runs
    /// `docker system dial-stdio`).
    pub host: String,
    /// A directory holding `ca.pem`, `cert.pem` and `key.pem`, for a `tcp://` daemon with TLS.
    pub cert_path: Option<String>,
    /// The platforms it builds, as `os/arch[/variant]` (e.g. `linux/arm64`).
    pub platforms: Vec<String>,
}

/// What is wrong with `host` as a Docker host, if anything.
fn host_problem(host: &str) -> Option<String> {
    match crate::docker::HOST_SCHEMES
        .iter()
        .find_map(|s| host.strip_prefix(s).map(|rest| (s, rest)))
    {
        None => Some(format!(
            "{host:?} is not a Docker host this provider can reach: use unix:///path/to/docker.sock, tcp://host:port, http://host:port, https://host:port or ssh://[user@]host[:port]"
        )),
        Some((scheme, "")) => Some(format!(
            "{host:?} names no {} after {scheme}: write e.g. unix:///var/run/docker.sock, tcp://127.0.0.1:2375 or ssh://me@build-host",
            if *scheme == "unix://" {
                "socket path"
            } else {
                "address"
            }
        )),
        Some((&"ssh://", _)) => crate::docker::tunnel::SshHost::parse(host)
            .err()
            .map(|e| e.to_string()),
        Some(_) => None,
    }
}

impl ValidateConfig for ProviderConfig {
    fn validate(&self) -> Vec<CheckFailure> {
        let mut f = Vec::new();
        if let Some(host) = self.host.as_deref().filter(|h| !h.is_empty())
            && let Some(problem) = host_problem(host)
        {
            f.push(CheckFailure::new("host", problem));
        }
        let mut seen: Vec<&str> = Vec::new();
        for (i, b) in self.builders.iter().flatten().enumerate() {
            if let Some(problem) = host_problem(&b.host) {
                f.push(CheckFailure::new(
                    PropertyPath::key("builders").at(i).field("host"),
                    problem,
                ));
            } else if seen.contains(&b.host.as_str()) {
                f.push(CheckFailure::new(
                    PropertyPath::key("builders").at(i).field("host"),
                    format!(
                        "{:?} is listed twice: list all its platforms in one entry",
                        b.host
                    ),
                ));
            }
            seen.push(&b.host);
            if b.platforms.is_empty() {
                f.push(CheckFailure::new(
                    PropertyPath::key("builders").at(i).field("platforms"),
                    "a builder must list the platforms it builds, e.g. [\"linux/arm64\"]",
                ));
            }
            // The Image's grammar: an entry no Image platform could ever equal is refused
            // here, not left to build nothing while its platforms go to the default daemon.
            for (j, p) in b.platforms.iter().enumerate() {
                if let Err(e) = p.parse::<crate::platform::Platform>() {
                    f.push(CheckFailure::new(
                        PropertyPath::key("builders").at(i).field("platforms").at(j),
                        e.to_string(),
                    ));
                }
            }
        }
        f
    }
}

impl ProviderConfig {
    /// The builders as the engine takes them (platforms that do not parse were refused by
    /// [`ValidateConfig::validate`]).
    /// The default daemon's address (`host`, `certPath`).
    pub fn daemon_address(&self) -> crate::docker::DaemonAddress {
        crate::docker::DaemonAddress {
            host: self.host.clone(),
            cert_path: self.cert_path.clone(),
        }
    }

    /// Every daemon that may build: the default one, then each of `builders`.
    pub fn daemon_addresses(&self) -> Vec<crate::docker::DaemonAddress> {
        std::iter::once(self.daemon_address())
            .chain(
                self.builders
                    .iter()
                    .flatten()
                    .map(|b| crate::docker::DaemonAddress {
                        host: Some(b.host.clone()),
                        cert_path: b.cert_path.clone(),
                    }),
            )
            .collect()
    }

    pub fn builder_specs(&self) -> Vec<crate::docker::BuilderSpec> {
        self.builders
            .iter()
            .flatten()
            .map(|b| crate::docker::BuilderSpec {
                address: crate::docker::DaemonAddress {
                    host: Some(b.host.clone()),
                    cert_path: b.cert_path.clone(),
                },
                platforms: b
                    .platforms
                    .iter()
                    .filter_map(|p| crate::platform::Platform::parse(p))
                    .collect(),
            })
            .collect()
    }
}

/// What the provider's settings are called, for the engine's messages ("give the
/// provider's `certPath`").
const SETTING_NAMES: SettingNames = SettingNames {
    runner: "the provider",
    daemon_host: "the provider's `host` configuration",
    daemon_certs: "the provider's `certPath`",
    registry_login: "`registry` on the Image",
    build_secrets: "the image's `secrets`",
    ssh_agents: "the image's `ssh`",
    ssh_agent_paths: "`paths`",
    agent_socket_env: "the provider's SSH_AUTH_SOCK",
};

/// The provider with all its resources.
pub fn provider() -> Provider<ProviderConfig> {
    buildkit_engine::settings::name_settings(SETTING_NAMES);
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
            ..Default::default()
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
            "ssh://user@host",
            "ssh://host:2222",
        ] {
            assert_eq!(host_failures(good), vec![], "{good}");
        }
        assert!(ProviderConfig::default().validate().is_empty());
        for bad in [
            "ftp://x",
            "ssh://",
            "ssh://host/path",
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

    /// The engine's messages name the provider's settings once the provider exists.
    #[tokio::test]
    async fn engine_messages_name_the_provider_settings() {
        let _ = provider();
        let address = |host: &str| crate::docker::DaemonAddress {
            host: Some(host.into()),
            cert_path: None,
        };
        let e = crate::docker::connect(&address("https://127.0.0.1:1"))
            .await
            .err()
            .unwrap();
        assert!(e.to_string().contains("the provider's `certPath`"), "{e}");
        let e = crate::docker::connect(&address("http://127.0.0.1:1"))
            .await
            .err()
            .unwrap();
        assert!(e.to_string().contains("the provider's `certPath`"), "{e}");
        let e = crate::docker::connect(&address("unix:///nonexistent/docker.sock"))
            .await
            .err()
            .unwrap();
        assert!(
            e.to_string()
                .contains("Set DOCKER_HOST or the provider's `host` configuration"),
            "{e}"
        );
    }

    /// A builder's platforms follow the Image's grammar: `Linux/arm64` used to pass here and
    /// then never match the Image's `linux/arm64`, which silently built emulated on the
    /// default daemon.
    #[test]
    fn builder_platforms_use_the_image_grammar() {
        let config = |platforms: &[&str]| ProviderConfig {
            builders: Some(vec![BuilderConfig {
                host: "tcp://127.0.0.1:2375".into(),
                cert_path: None,
                platforms: platforms.iter().map(|p| p.to_string()).collect(),
            }]),
            ..Default::default()
        };
        assert_eq!(config(&["linux/arm64", "linux/arm/v7"]).validate(), vec![]);
        for bad in ["Linux/arm64", "linux/ARM64", "linux/arm64/", "linux"] {
            let f = config(&["linux/amd64", bad]).validate();
            assert_eq!(f.len(), 1, "{bad}: {f:?}");
            assert_eq!(f[0].property, "builders[0].platforms[1]", "{bad}");
            // The Image's own message for the same string.
            assert_eq!(
                Err(f[0].reason.clone()),
                image::validate_platform(bad).map_err(|e| e.to_string()),
                "{bad}"
            );
        }
        // Whatever passes here is a platform the engine gets, unchanged.
        let specs = config(&["linux/arm64"]).builder_specs();
        assert_eq!(specs[0].platforms[0].to_string(), "linux/arm64");
    }
}
