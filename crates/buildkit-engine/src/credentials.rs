//! Registry credentials as the Docker CLI keeps them: the `config.json` in `$DOCKER_CONFIG`
//! (default `~/.docker`), its `credHelpers` and `credsStore` credential helpers
//! (`docker-credential-<name> get`) and its inline `auths` entries, plus the server-name
//! normalization that lets `https://index.docker.io/v1/`, `docker.io` and `ghcr.io/` be
//! matched against a registry host.
//!
//! Not for: talking to registries (see [`crate::registry`]), storing or erasing credentials
//! (`docker login` / `docker logout` do that), or reading credentials given as resource
//! inputs. Secrets never leave this module in error messages or `Debug` output.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde::Deserialize;

/// The canonical host of Docker Hub, after [`normalize_server`].
pub const DOCKER_HUB_HOST: &str = "docker.io";

/// The key Docker Hub credentials are stored under by `docker login`, in `auths` and in
/// credential helpers.
pub const DOCKER_HUB_LEGACY_KEY: &str = "https://index.docker.io/v1/";

/// How long a credential helper may run before it is killed.
const HELPER_TIMEOUT: Duration = Duration::from_secs(30);

/// What a credential helper prints when it has nothing for a server.
const HELPER_NOT_FOUND: &str = "credentials not found";

/// Login details for one registry.
///
/// `Debug` is written by hand and never shows `password` or `identity_token`.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The registry host as normalized by [`normalize_server`].
    pub server: String,
    pub username: String,
    pub password: String,
    /// An OAuth2 refresh token (`identitytoken` in `config.json`, or a helper secret whose
    /// username is `<token>`); exchanged at the registry's token server instead of a password.
    pub identity_token: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redact = |present: bool| if present { "<redacted>" } else { "<empty>" };
        f.debug_struct("Credentials")
            .field("server", &self.server)
            .field("username", &self.username)
            .field(
                "password",
                &format_args!("{}", redact(!self.password.is_empty())),
            )
            .field(
                "identity_token",
                &format_args!(
                    "{}",
                    match &self.identity_token {
                        Some(_) => "Some(<redacted>)",
                        None => "None",
                    }
                ),
            )
            .finish()
    }
}

/// Why credentials could not be looked up. Messages never contain a secret.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot read the Docker config file {}: {source}", path.display())]
    ConfigUnreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the Docker config file {} is not valid: {detail}; fix it or move it away (it is read for registry credentials)",
        path.display()
    )]
    ConfigInvalid { path: PathBuf, detail: String },
    #[error(
        "the Docker config file {} has an unusable `auth` entry for {server}: {detail}; run `docker login {server}` again",
        path.display()
    )]
    InvalidAuthEntry {
        path: PathBuf,
        server: String,
        detail: String,
    },
    #[error(
        "credential helper `{helper}` was not found on PATH; install it, or remove it from `credHelpers`/`credsStore` in the Docker config"
    )]
    HelperNotFound { helper: String },
    #[error("credential helper `{helper}` could not be run: {source}")]
    HelperSpawn {
        helper: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "credential helper `{helper}` did not answer within {} s; check that it does not wait for input (e.g. an unlocked keychain)",
        timeout.as_secs()
    )]
    HelperTimeout { helper: String, timeout: Duration },
    #[error("credential helper `{helper}` failed for {server}: {detail}")]
    HelperFailed {
        helper: String,
        server: String,
        detail: String,
    },
}

/// Normalizes a server as written by users or in `config.json` to a `host[:port]`: strips
/// `https://` / `http://`, any path (`/v1/`), trailing `/`; `index.docker.io`,
/// `registry-1.docker.io` and `docker.io` all become `docker.io`. Host names are lowercased.
pub fn normalize_server(s: &str) -> String {
    let s = s.trim();
    let without_scheme = ["https://", "http://"]
        .iter()
        .find_map(|scheme| {
            s.get(..scheme.len())
                .filter(|head| head.eq_ignore_ascii_case(scheme))
                .map(|_| &s[scheme.len()..])
        })
        .unwrap_or(s);
    let host = without_scheme
        .split('/')
        .next()
        .unwrap_or(without_scheme)
        .to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "docker.io" => DOCKER_HUB_HOST.to_string(),
        _ => host,
    }
}

/// Credentials for registry `host` (already normalized) from the Docker CLI config at
/// `$DOCKER_CONFIG/config.json` (default `~/.docker/config.json`): first `credHelpers[host]`,
/// then `credsStore`, then `auths[host]` (`auth` = base64 "user:pass", or
/// `username`/`password`, or `identitytoken`). Keys in `config.json` are matched after
/// normalization. `Ok(None)` when nothing is configured or there is no config file; an
/// unparsable file is an error naming it.
///
/// Blocking (it may run a credential helper): call it from `spawn_blocking` in async code.
pub fn from_docker_config(host: &str) -> Result<Option<Credentials>, AuthError> {
    let Some(dir) = docker_config_dir() else {
        return Ok(None);
    };
    from_config_dir(&dir, host, None)
}

/// The Docker CLI config directory: `$DOCKER_CONFIG`, else `$HOME/.docker`.
pub fn docker_config_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|home| PathBuf::from(home).join(".docker"))
}

/// [`from_docker_config`] with an explicit config directory and, optionally, the `PATH` to
/// find credential helpers on (default: this process's `PATH`).
pub fn from_config_dir(
    dir: &Path,
    host: &str,
    helper_path: Option<&OsStr>,
) -> Result<Option<Credentials>, AuthError> {
    let host = normalize_server(host);
    let path = dir.join("config.json");
    let text = match std::fs::read(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(AuthError::ConfigUnreadable { path, source }),
    };
    let config = parse_config(&path, &text)?;

    if let Some(helper) = lookup(&config.cred_helpers, &host)
        && !helper.is_empty()
    {
        return run_helper(helper, &host, helper_path);
    }
    if let Some(store) = config.creds_store.as_deref().filter(|s| !s.is_empty())
        && let Some(found) = run_helper(store, &host, helper_path)?
    {
        return Ok(Some(found));
    }
    match lookup(&config.auths, &host) {
        Some(entry) => entry_credentials(&path, &host, entry),
        None => Ok(None),
    }
}

/// The parts of `config.json` this module reads; everything else is ignored.
#[derive(Deserialize, Default)]
struct ConfigFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: BTreeMap<String, String>,
}

#[derive(Deserialize, Default)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

fn parse_config(path: &Path, text: &[u8]) -> Result<ConfigFile, AuthError> {
    if text.iter().all(u8::is_ascii_whitespace) {
        return Ok(ConfigFile::default());
    }
    // serde_json's messages can quote values from the file (which may be secrets), so only
    // the kind of error and its position are reported.
    serde_json::from_slice(text).map_err(|e| {
        let what = match e.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                "it is not valid JSON"
            }
            serde_json::error::Category::Data => "a field has an unexpected type",
            serde_json::error::Category::Io => "it could not be read",
        };
        AuthError::ConfigInvalid {
            path: path.to_path_buf(),
            detail: format!("{what} (line {}, column {})", e.line(), e.column()),
        }
    })
}

/// The value whose key normalizes to `host`; an exactly matching key wins over others.
fn lookup<'a, V>(map: &'a BTreeMap<String, V>, host: &str) -> Option<&'a V> {
    map.get(host).or_else(|| {
        map.iter()
            .find(|(k, _)| normalize_server(k) == host)
            .map(|(_, v)| v)
    })
}

fn entry_credentials(
    path: &Path,
    host: &str,
    entry: &AuthEntry,
) -> Result<Option<Credentials>, AuthError> {
    let invalid = |detail: &str| AuthError::InvalidAuthEntry {
        path: path.to_path_buf(),
        server: host.to_string(),
        detail: detail.to_string(),
    };
    let mut username = entry.username.clone().unwrap_or_default();
    let mut password = entry.password.clone().unwrap_or_default();
    if let Some(auth) = entry
        .auth
        .as_deref()
        .map(str::trim)
        .filter(|a| !a.is_empty())
    {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth)
            .map_err(|_| invalid("it is not valid base64"))?;
        let decoded =
            String::from_utf8(decoded).map_err(|_| invalid("it does not decode to text"))?;
        let (user, pass) = decoded
            .split_once(':')
            .ok_or_else(|| invalid("it does not decode to \"username:password\""))?;
        username = user.to_string();
        password = pass.to_string();
    }
    let identity_token = entry.identitytoken.clone().filter(|t| !t.is_empty());
    if username.is_empty() && password.is_empty() && identity_token.is_none() {
        // Docker Desktop leaves empty entries behind when a credential store holds the secret.
        return Ok(None);
    }
    Ok(Some(Credentials {
        server: host.to_string(),
        username,
        password,
        identity_token,
    }))
}

/// What `docker-credential-<name> get` prints.
#[derive(Deserialize)]
struct HelperAnswer {
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default)]
    secret: String,
}

/// The server names a credential was possibly stored under by `docker login`, best first.
fn helper_server_names(host: &str) -> Vec<String> {
    if host == DOCKER_HUB_HOST {
        vec![DOCKER_HUB_LEGACY_KEY.to_string()]
    } else {
        vec![host.to_string(), format!("https://{host}")]
    }
}

/// Asks `docker-credential-<name>` for `host`'s credentials.
fn run_helper(
    name: &str,
    host: &str,
    helper_path: Option<&OsStr>,
) -> Result<Option<Credentials>, AuthError> {
    let helper = format!("docker-credential-{name}");
    let search_path = helper_path
        .map(OsStr::to_os_string)
        .or_else(|| std::env::var_os("PATH"))
        .unwrap_or_default();
    let program =
        find_executable(&helper, &search_path).ok_or_else(|| AuthError::HelperNotFound {
            helper: helper.clone(),
        })?;
    for server in helper_server_names(host) {
        let output = run_with_timeout(&helper, &program, helper_path, &server)?;
        if !output.success {
            let stdout = String::from_utf8_lossy(&output.stdout);
            let stderr = String::from_utf8_lossy(&output.stderr);
            if stdout.contains(HELPER_NOT_FOUND) || stderr.contains(HELPER_NOT_FOUND) {
                continue;
            }
            let said = short_message(&stderr).or_else(|| short_message(&stdout));
            return Err(AuthError::HelperFailed {
                helper,
                server,
                detail: match said {
                    Some(said) => format!("it exited with {}: {said}", output.status),
                    None => format!("it exited with {}", output.status),
                },
            });
        }
        // The helper's output holds the secret: report only where the JSON broke.
        let answer: HelperAnswer =
            serde_json::from_slice(&output.stdout).map_err(|e| AuthError::HelperFailed {
                helper: helper.clone(),
                server: server.clone(),
                detail: format!(
                    "its answer is not the expected JSON {{\"Username\", \"Secret\"}} (line {}, column {})",
                    e.line(),
                    e.column()
                ),
            })?;
        if answer.username.is_empty() && answer.secret.is_empty() {
            continue;
        }
        return Ok(Some(if answer.username == "<token>" {
            Credentials {
                server: host.to_string(),
                username: String::new(),
                password: String::new(),
                identity_token: Some(answer.secret),
            }
        } else {
            Credentials {
                server: host.to_string(),
                username: answer.username,
                password: answer.secret,
                identity_token: None,
            }
        }));
    }
    Ok(None)
}

/// A helper's error text, if short enough to quote (it comes from a failing `get`, which
/// never holds a secret).
fn short_message(text: &str) -> Option<String> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let mut out: String = text.chars().take(300).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    Some(out)
}

fn find_executable(name: &str, search_path: &OsStr) -> Option<PathBuf> {
    std::env::split_paths(search_path)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file())
}

struct HelperOutput {
    success: bool,
    status: std::process::ExitStatus,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

fn run_with_timeout(
    helper: &str,
    program: &Path,
    helper_path: Option<&OsStr>,
    server: &str,
) -> Result<HelperOutput, AuthError> {
    let spawn_error = |source| AuthError::HelperSpawn {
        helper: helper.to_string(),
        source,
    };
    let mut command = Command::new(program);
    command
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(path) = helper_path {
        command.env("PATH", OsString::from(path));
    }
    let mut child = command.spawn().map_err(spawn_error)?;

    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading its input is answered by its exit status.
        let _ = stdin.write_all(server.as_bytes());
    }
    let stdout = child.stdout.take().map(read_in_background);
    let stderr = child.stderr.take().map(read_in_background);

    let deadline = Instant::now() + HELPER_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(AuthError::HelperTimeout {
                    helper: helper.to_string(),
                    timeout: HELPER_TIMEOUT,
                });
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(source) => {
                let _ = child.kill();
                return Err(spawn_error(source));
            }
        }
    };
    let collect = |reader: Option<std::thread::JoinHandle<Vec<u8>>>| {
        reader.and_then(|r| r.join().ok()).unwrap_or_default()
    };
    Ok(HelperOutput {
        success: status.success(),
        status,
        stdout: collect(stdout),
        stderr: collect(stderr),
    })
}

fn read_in_background<R: Read + Send + 'static>(mut reader: R) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = reader.read_to_end(&mut buf);
        buf
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWORD: &str = "s3cr3t-Pa55word";

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn config_dir(json: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("config.json"), json).expect("write config.json");
        dir
    }

    /// A PATH with a `docker-credential-dbktest` helper in front of the system PATH. It
    /// knows `https://index.docker.io/v1/`, `ghcr.io` and `https://legacy.example.com`
    /// (identity token); other servers get "credentials not found" and exit 1.
    fn helper_path() -> (tempfile::TempDir, OsString) {
        let dir = tempfile::tempdir().expect("temp dir");
        let script = format!(
            r#"#!/bin/sh
[ "$1" = get ] || {{ echo "unsupported action $1" >&2; exit 2; }}
server=$(cat)
case "$server" in
  https://index.docker.io/v1/) echo '{{"ServerURL":"https://index.docker.io/v1/","Username":"hubuser","Secret":"{PASSWORD}"}}' ;;
  ghcr.io) echo '{{"ServerURL":"ghcr.io","Username":"ghuser","Secret":"{PASSWORD}"}}' ;;
  https://legacy.example.com) echo '{{"ServerURL":"https://legacy.example.com","Username":"<token>","Secret":"{PASSWORD}"}}' ;;
  broken.example.com) echo 'the keychain is locked' >&2; exit 3 ;;
  garbage.example.com) echo 'not json {PASSWORD}' ;;
  *) echo 'credentials not found in native keychain'; exit 1 ;;
esac
"#
        );
        let file = dir.path().join("docker-credential-dbktest");
        std::fs::write(&file, script).expect("write helper");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755))
                .expect("chmod helper");
        }
        let mut paths = vec![dir.path().to_path_buf()];
        paths.extend(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        ));
        let joined = std::env::join_paths(paths).expect("join PATH");
        (dir, joined)
    }

    fn creds(server: &str, user: &str, pass: &str) -> Credentials {
        Credentials {
            server: server.into(),
            username: user.into(),
            password: pass.into(),
            identity_token: None,
        }
    }

    #[test]
    fn normalizes_servers() {
        for (input, want) in [
            ("https://index.docker.io/v1/", "docker.io"),
            ("index.docker.io", "docker.io"),
            ("registry-1.docker.io", "docker.io"),
            ("docker.io", "docker.io"),
            ("HTTPS://Docker.IO/", "docker.io"),
            ("ghcr.io", "ghcr.io"),
            ("ghcr.io/", "ghcr.io"),
            ("https://ghcr.io/v2/", "ghcr.io"),
            ("http://localhost:5000", "localhost:5000"),
            ("127.0.0.1:5000/", "127.0.0.1:5000"),
            ("  quay.io  ", "quay.io"),
            ("[::1]:5000", "[::1]:5000"),
        ] {
            assert_eq!(normalize_server(input), want, "{input}");
        }
    }

    #[test]
    fn missing_config_file_is_none() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert_eq!(
            from_config_dir(dir.path(), "ghcr.io", None).expect("ok"),
            None
        );
    }

    #[test]
    fn empty_config_file_is_none() {
        let dir = config_dir("");
        assert_eq!(
            from_config_dir(dir.path(), "ghcr.io", None).expect("ok"),
            None
        );
    }

    #[test]
    fn unparsable_config_names_the_file_and_hides_values() {
        let dir = config_dir(&format!(
            r#"{{"auths": {{"ghcr.io": {{"auth": "{PASSWORD}""#
        ));
        let err = from_config_dir(dir.path(), "ghcr.io", None).expect_err("invalid");
        let msg = err.to_string();
        assert!(msg.contains("config.json"), "{msg}");
        assert!(!msg.contains(PASSWORD), "{msg}");

        // A value of the wrong type: serde_json would quote it.
        let dir = config_dir(&format!(r#"{{"auths": "{PASSWORD}"}}"#));
        let err = from_config_dir(dir.path(), "ghcr.io", None).expect_err("invalid");
        let msg = format!("{err} {err:?}");
        assert!(msg.contains("config.json"), "{msg}");
        assert!(!msg.contains(PASSWORD), "{msg}");
    }

    #[test]
    fn auths_base64() {
        let dir = config_dir(&format!(
            r#"{{"auths": {{"ghcr.io": {{"auth": "{}"}}}}}}"#,
            b64(&format!("me:{PASSWORD}"))
        ));
        assert_eq!(
            from_config_dir(dir.path(), "ghcr.io", None).expect("ok"),
            Some(creds("ghcr.io", "me", PASSWORD))
        );
        assert_eq!(
            from_config_dir(dir.path(), "quay.io", None).expect("ok"),
            None
        );
    }

    #[test]
    fn auths_password_may_contain_colons() {
        let dir = config_dir(&format!(
            r#"{{"auths": {{"ghcr.io": {{"auth": "{}"}}}}}}"#,
            b64("me:a:b:c")
        ));
        assert_eq!(
            from_config_dir(dir.path(), "ghcr.io", None).expect("ok"),
            Some(creds("ghcr.io", "me", "a:b:c"))
        );
    }

    #[test]
    fn auths_invalid_base64_is_an_error_without_the_secret() {
        let dir = config_dir(&format!(
            r#"{{"auths": {{"ghcr.io": {{"auth": "{PASSWORD}!!"}}}}}}"#
        ));
        let err = from_config_dir(dir.path(), "ghcr.io", None).expect_err("invalid");
        let msg = format!("{err} {err:?}");
        assert!(
            msg.contains("ghcr.io") && msg.contains("docker login"),
            "{msg}"
        );
        assert!(!msg.contains(PASSWORD), "{msg}");

        let dir = config_dir(&format!(
            r#"{{"auths": {{"ghcr.io": {{"auth": "{}"}}}}}}"#,
            b64(PASSWORD)
        ));
        let err = from_config_dir(dir.path(), "ghcr.io", None).expect_err("no colon");
        let msg = format!("{err} {err:?}");
        assert!(!msg.contains(PASSWORD), "{msg}");
    }

    #[test]
    fn auths_username_password_fields() {
        let dir = config_dir(&format!(
            r#"{{"auths": {{"https://registry.example.com/": {{"username": "u", "password": "{PASSWORD}"}}}}}}"#
        ));
        assert_eq!(
            from_config_dir(dir.path(), "registry.example.com", None).expect("ok"),
            Some(creds("registry.example.com", "u", PASSWORD))
        );
    }

    #[test]
    fn auths_identity_token() {
        let dir = config_dir(&format!(
            r#"{{"auths": {{"myacr.azurecr.io": {{"auth": "{}", "identitytoken": "{PASSWORD}"}}}}}}"#,
            b64("00000000-0000-0000-0000-000000000000:")
        ));
        let got = from_config_dir(dir.path(), "myacr.azurecr.io", None)
            .expect("ok")
            .expect("some");
        assert_eq!(got.identity_token.as_deref(), Some(PASSWORD));
        assert_eq!(got.username, "00000000-0000-0000-0000-000000000000");
        assert_eq!(got.password, "");
    }

    #[test]
    fn empty_auth_entry_is_none() {
        let dir = config_dir(r#"{"auths": {"ghcr.io": {}, "quay.io": {"auth": ""}}}"#);
        assert_eq!(
            from_config_dir(dir.path(), "ghcr.io", None).expect("ok"),
            None
        );
        assert_eq!(
            from_config_dir(dir.path(), "quay.io", None).expect("ok"),
            None
        );
    }

    #[test]
    fn docker_hub_key_is_normalized() {
        let dir = config_dir(&format!(
            r#"{{"auths": {{"https://index.docker.io/v1/": {{"auth": "{}"}}}}}}"#,
            b64(&format!("hub:{PASSWORD}"))
        ));
        for host in ["docker.io", "index.docker.io", "registry-1.docker.io"] {
            assert_eq!(
                from_config_dir(dir.path(), host, None).expect("ok"),
                Some(creds("docker.io", "hub", PASSWORD)),
                "{host}"
            );
        }
    }

    #[test]
    fn exact_key_wins_over_normalized_one() {
        let dir = config_dir(&format!(
            r#"{{"auths": {{"https://ghcr.io": {{"auth": "{}"}}, "ghcr.io": {{"auth": "{}"}}}}}}"#,
            b64("old:x"),
            b64("new:y")
        ));
        assert_eq!(
            from_config_dir(dir.path(), "ghcr.io", None).expect("ok"),
            Some(creds("ghcr.io", "new", "y"))
        );
    }

    #[test]
    fn cred_helper_real_script() {
        let (_bin, path) = helper_path();
        let dir = config_dir(
            r#"{"credHelpers": {"ghcr.io": "dbktest", "https://index.docker.io/v1/": "dbktest", "legacy.example.com": "dbktest", "nothing.example.com": "dbktest"}}"#,
        );
        assert_eq!(
            from_config_dir(dir.path(), "ghcr.io", Some(&path)).expect("ok"),
            Some(creds("ghcr.io", "ghuser", PASSWORD))
        );
        assert_eq!(
            from_config_dir(dir.path(), "docker.io", Some(&path)).expect("ok"),
            Some(creds("docker.io", "hubuser", PASSWORD))
        );
        // Stored as `https://legacy.example.com`: found on the second try, as a token.
        let token = from_config_dir(dir.path(), "legacy.example.com", Some(&path))
            .expect("ok")
            .expect("some");
        assert_eq!(token.identity_token.as_deref(), Some(PASSWORD));
        assert_eq!(token.username, "");
        // Not found → None.
        assert_eq!(
            from_config_dir(dir.path(), "nothing.example.com", Some(&path)).expect("ok"),
            None
        );
    }

    #[test]
    fn cred_helpers_win_over_creds_store_and_auths() {
        let (_bin, path) = helper_path();
        let dir = config_dir(&format!(
            r#"{{"credHelpers": {{"ghcr.io": "dbktest"}}, "credsStore": "nosuchstore",
                "auths": {{"ghcr.io": {{"auth": "{}"}}}}}}"#,
            b64("fromauths:x")
        ));
        assert_eq!(
            from_config_dir(dir.path(), "ghcr.io", Some(&path)).expect("ok"),
            Some(creds("ghcr.io", "ghuser", PASSWORD))
        );
    }

    #[test]
    fn creds_store_wins_over_auths_and_falls_back_when_not_found() {
        let (_bin, path) = helper_path();
        let dir = config_dir(&format!(
            r#"{{"credsStore": "dbktest",
                "auths": {{"ghcr.io": {{"auth": "{}"}}, "quay.io": {{"auth": "{}"}}}}}}"#,
            b64("fromauths:x"),
            b64("quayuser:y")
        ));
        assert_eq!(
            from_config_dir(dir.path(), "ghcr.io", Some(&path)).expect("ok"),
            Some(creds("ghcr.io", "ghuser", PASSWORD))
        );
        assert_eq!(
            from_config_dir(dir.path(), "quay.io", Some(&path)).expect("ok"),
            Some(creds("quay.io", "quayuser", "y"))
        );
    }

    #[test]
    fn missing_helper_is_a_clear_error() {
        let (_bin, path) = helper_path();
        let dir = config_dir(r#"{"credHelpers": {"ghcr.io": "doesnotexist"}}"#);
        let err = from_config_dir(dir.path(), "ghcr.io", Some(&path)).expect_err("missing");
        assert!(matches!(err, AuthError::HelperNotFound { .. }), "{err:?}");
        assert!(
            err.to_string().contains("docker-credential-doesnotexist"),
            "{err}"
        );
    }

    #[test]
    fn failing_helper_reports_its_stderr() {
        let (_bin, path) = helper_path();
        let dir = config_dir(r#"{"credHelpers": {"broken.example.com": "dbktest"}}"#);
        let err =
            from_config_dir(dir.path(), "broken.example.com", Some(&path)).expect_err("fails");
        let msg = err.to_string();
        assert!(
            msg.contains("docker-credential-dbktest") && msg.contains("keychain is locked"),
            "{msg}"
        );
    }

    #[test]
    fn helper_garbage_output_hides_the_output() {
        let (_bin, path) = helper_path();
        let dir = config_dir(r#"{"credHelpers": {"garbage.example.com": "dbktest"}}"#);
        let err =
            from_config_dir(dir.path(), "garbage.example.com", Some(&path)).expect_err("garbage");
        let msg = format!("{err} {err:?}");
        assert!(msg.contains("docker-credential-dbktest"), "{msg}");
        assert!(!msg.contains(PASSWORD), "{msg}");
    }

    #[test]
    fn debug_redacts_secrets() {
        let c = Credentials {
            server: "ghcr.io".into(),
            username: "me".into(),
            password: PASSWORD.into(),
            identity_token: Some(format!("tok-{PASSWORD}")),
        };
        let dbg = format!("{c:?} {c:#?}");
        assert!(!dbg.contains(PASSWORD), "{dbg}");
        assert!(dbg.contains("ghcr.io") && dbg.contains("me"), "{dbg}");
        assert!(dbg.contains("<redacted>"), "{dbg}");
    }
}
