//! What the engine's caller calls its settings. The engine's messages tell the user what to
//! change ("give the TLS certificates directory"), but the words for it belong to the caller:
//! a Pulumi provider says "the provider's `certPath`", a command line would say `--tls-certs`.
//! So the engine names a [`Setting`] by its role, and the caller says once, at start-up, what
//! each is called ([`name_settings`]); until it does, the engine's own neutral words are used.

use std::fmt;
use std::sync::OnceLock;

/// A setting of the engine's caller that a message may ask the user to change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    /// Who runs the engine, in "{Runner} runs `ssh …`".
    Runner,
    /// The Docker daemon's address (besides `DOCKER_HOST`).
    DaemonHost,
    /// The directory of the daemon's TLS client certificates (besides `DOCKER_CERT_PATH`).
    DaemonCerts,
    /// Registry credentials given with the build (besides `docker login`).
    RegistryLogin,
    /// The build secrets given with the build.
    BuildSecrets,
    /// The ssh agents forwarded to the build.
    SshAgents,
    /// The key files or socket of one forwarded agent.
    SshAgentPaths,
    /// The `SSH_AUTH_SOCK` of the engine's process.
    AgentSocketEnv,
}

/// The caller's words for each [`Setting`].
#[derive(Debug, Clone)]
pub struct SettingNames {
    pub runner: &'static str,
    pub daemon_host: &'static str,
    pub daemon_certs: &'static str,
    pub registry_login: &'static str,
    pub build_secrets: &'static str,
    pub ssh_agents: &'static str,
    pub ssh_agent_paths: &'static str,
    pub agent_socket_env: &'static str,
}

/// The engine's own words, for a caller that named nothing.
pub const NEUTRAL: SettingNames = SettingNames {
    runner: "the engine",
    daemon_host: "the daemon address",
    daemon_certs: "the TLS certificates directory",
    registry_login: "registry credentials for the build",
    build_secrets: "the build's secrets",
    ssh_agents: "the build's ssh agents",
    ssh_agent_paths: "the agent's paths",
    agent_socket_env: "SSH_AUTH_SOCK",
};

static NAMES: OnceLock<SettingNames> = OnceLock::new();

/// Says what the caller calls its settings, for the rest of the process. The first call
/// wins; `false` when names were already set (to other words or the same).
pub fn name_settings(names: SettingNames) -> bool {
    NAMES.set(names).is_ok()
}

fn names() -> &'static SettingNames {
    NAMES.get().unwrap_or(&NEUTRAL)
}

impl Setting {
    /// The caller's word for this setting.
    pub fn name(self) -> &'static str {
        let n = names();
        match self {
            Setting::Runner => n.runner,
            Setting::DaemonHost => n.daemon_host,
            Setting::DaemonCerts => n.daemon_certs,
            Setting::RegistryLogin => n.registry_login,
            Setting::BuildSecrets => n.build_secrets,
            Setting::SshAgents => n.ssh_agents,
            Setting::SshAgentPaths => n.ssh_agent_paths,
            Setting::AgentSocketEnv => n.agent_socket_env,
        }
    }
}

impl fmt::Display for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `text` with its first letter upper-case, for a setting's name at the start of a sentence.
pub fn capitalized(text: &str) -> String {
    let mut c = text.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}
