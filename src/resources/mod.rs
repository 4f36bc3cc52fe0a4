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
    /// What answers at `host`: `docker` (a Docker Engine, the default) or `buildkit` (a
    /// standalone buildkitd, as buildx's `remote` driver reaches it: `unix:///path` or
    /// `tcp://host:port` with `certPath` for mutual TLS; its image exporter pushes, so
    /// images must be pushed).
    pub driver: Option<Driver>,
}

/// What a builder's address leads to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Driver {
    /// A Docker Engine.
    #[default]
    Docker,
    /// A standalone BuildKit daemon (`buildkitd`).
    Buildkit,
}

impl Driver {
    fn engine(self) -> crate::docker::Driver {
        match self {
            Driver::Docker => crate::docker::Driver::Docker,
            Driver::Buildkit => crate::docker::Driver::Buildkit,
        }
    }
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
    /// What answers at `host`: `docker` (the default) or `buildkit` (a standalone
    /// buildkitd: `unix:///path`, or `tcp://host:port` with `certPath` for mutual TLS).
    pub driver: Option<Driver>,
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

/// What is wrong with `host` as a buildkitd address (with `cert_path`), if anything.
fn buildkit_host_problem(host: Option<&str>, cert_path: Option<&str>) -> Option<String> {
    let Some(host) = host.filter(|h| !h.is_empty()) else {
        return Some(
            "a BuildKit daemon has no default address: give its `host`, e.g. unix:///run/buildkit/buildkitd.sock or tcp://buildkitd:1234"
                .to_string(),
        );
    };
    match host.split_once("://") {
        Some(("unix", path)) if !path.is_empty() => None,
        Some(("tcp", addr)) if !addr.is_empty() => cert_path.is_none().then(|| {
            format!(
                "{host:?} is a tcp:// BuildKit daemon: give `certPath`, the directory with ca.pem, cert.pem and key.pem for its mutual TLS"
            )
        }),
        _ => Some(format!(
            "{host:?} is not a BuildKit daemon address: use unix:///path/to/buildkitd.sock or tcp://host:port (with `certPath`)"
        )),
    }
}

impl ValidateConfig for ProviderConfig {
    fn validate(&self) -> Vec<CheckFailure> {
        let mut f = Vec::new();
        if self.driver == Some(Driver::Buildkit) {
            if let Some(problem) =
                buildkit_host_problem(self.host.as_deref(), self.cert_path.as_deref())
            {
                f.push(CheckFailure::new("host", problem));
            }
        } else if let Some(host) = self.host.as_deref().filter(|h| !h.is_empty())
            && let Some(problem) = host_problem(host)
        {
            f.push(CheckFailure::new("host", problem));
        }
        let mut seen: Vec<&str> = Vec::new();
        for (i, b) in self.builders.iter().flatten().enumerate() {
            let problem = if b.driver == Some(Driver::Buildkit) {
                buildkit_host_problem(Some(&b.host), b.cert_path.as_deref())
            } else {
                host_problem(&b.host)
            };
            if let Some(problem) = problem {
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
            driver: self.driver.unwrap_or_default().engine(),
        }
    }

    /// The address of a builder that is a Docker host (the default one first), if any: it
    /// cannot export a cache but the inline one.
    pub fn a_docker_builder(&self) -> Option<String> {
        self.daemon_addresses()
            .into_iter()
            .find(|a| a.driver == crate::docker::Driver::Docker)
            .map(|a| crate::docker::daemon_host(&a))
    }

    /// True when the default builder is a buildkitd (it keeps no images: they are pushed).
    pub fn builds_on_buildkitd(&self) -> bool {
        self.driver == Some(Driver::Buildkit)
    }

    /// Every daemon that may build: the default one, then each of `builders`.
    pub fn daemon_addresses(&self) -> Vec<crate::docker::DaemonAddress> {
        std::iter::once(self.daemon_address())
            .chain(self.builders.iter().flatten().map(BuilderConfig::address))
            .collect()
    }

    pub fn builder_specs(&self) -> Vec<crate::docker::BuilderSpec> {
        self.builders
            .iter()
            .flatten()
            .map(|b| crate::docker::BuilderSpec {
                address: b.address(),
                platforms: b
                    .platforms
                    .iter()
                    .filter_map(|p| crate::platform::Platform::parse(p))
                    .collect(),
            })
            .collect()
    }
}

impl BuilderConfig {
    fn address(&self) -> crate::docker::DaemonAddress {
        crate::docker::DaemonAddress {
            host: Some(self.host.clone()),
            cert_path: self.cert_path.clone(),
            driver: self.driver.unwrap_or_default().engine(),
        }
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
            ..Default::default()
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

    /// A BuildKit daemon's address is `unix://` or `tcp://` with certificates, never a
    /// Docker host's other spellings; each failure names the property.
    #[test]
    fn buildkit_addresses_are_checked_as_buildkitd_takes_them() {
        let default = |host: Option<&str>, certs: Option<&str>| ProviderConfig {
            host: host.map(Into::into),
            cert_path: certs.map(Into::into),
            driver: Some(Driver::Buildkit),
            ..Default::default()
        };
        assert_eq!(
            default(Some("unix:///run/buildkit/buildkitd.sock"), None).validate(),
            vec![]
        );
        assert_eq!(
            default(Some("tcp://bk:1234"), Some("/certs")).validate(),
            vec![]
        );
        for (host, certs, says) in [
            (None, None, "no default address"),
            (Some("tcp://bk:1234"), None, "certPath"),
            (Some("ssh://me@bk"), None, "not a BuildKit daemon address"),
            (Some("unix://"), None, "not a BuildKit daemon address"),
        ] {
            let f = default(host, certs).validate();
            assert_eq!(f.len(), 1, "{host:?}: {f:?}");
            assert_eq!(f[0].property, "host");
            assert!(f[0].reason.contains(says), "{host:?}: {}", f[0].reason);
        }
        let builder = ProviderConfig {
            builders: Some(vec![BuilderConfig {
                host: "https://bk:1234".into(),
                cert_path: None,
                platforms: vec!["linux/arm64".into()],
                driver: Some(Driver::Buildkit),
            }]),
            ..Default::default()
        };
        let f = builder.validate();
        assert_eq!(f[0].property, "builders[0].host", "{f:?}");
        // The engine is told which it is.
        assert_eq!(
            builder.builder_specs()[0].address.driver,
            crate::docker::Driver::Buildkit
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
                driver: None,
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
