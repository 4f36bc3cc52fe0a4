//! Authentication with a registry, for the client that owns an [`Authenticator`]: what to
//! send with a request (cached Basic credentials or a Bearer token per scope), what to do
//! with a 401 (parse its RFC 7235 `WWW-Authenticate` challenges, answer Basic or fetch a
//! token from the realm: GET with Basic credentials, or an OAuth2 `refresh_token` POST for
//! an identity token; a plain-HTTP realm only on loopback), and keeping every secret it
//! holds out of the text it passes on ([`Authenticator::scrub`]).
//!
//! Not for: finding credentials (`crate::credentials`), or HTTP beyond the token request:
//! the caller sends its own requests and hands over the 401's headers. Knows nothing of
//! `client.rs`; imports only `http.rs` (capped bodies, errors, loopback).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use reqwest::header::{HeaderMap, WWW_AUTHENTICATE};
use reqwest::{RequestBuilder, StatusCode, Url};
use serde::Deserialize;

use super::RegistryError;
use super::http::{ErrorContext, MAX_SMALL_BODY_BYTES, error_detail, is_loopback_host, read_body};
use crate::credentials::Credentials;

/// What the registry has asked for so far.
#[derive(Default)]
struct AuthCache {
    /// The registry answered with a Basic challenge: send credentials up front.
    basic: bool,
    /// Bearer tokens by scope (`repository:<repo>:<actions>`).
    tokens: HashMap<String, String>,
}

#[derive(Clone, Copy)]
pub(super) enum Access {
    Pull,
    PullPush,
}

impl Access {
    /// The token scope for this access to `repo`.
    pub(super) fn scope(self, repo: &str) -> String {
        match self {
            Access::Pull => format!("repository:{repo}:pull"),
            Access::PullPush => format!("repository:{repo}:pull,push"),
        }
    }
}

pub(super) enum Authorization {
    Basic { username: String, password: String },
    Bearer(String),
}

impl Authorization {
    /// `builder` with this authorization's header.
    pub(super) fn apply(&self, builder: RequestBuilder) -> RequestBuilder {
        match self {
            Authorization::Basic { username, password } => {
                builder.basic_auth(username, Some(password))
            }
            Authorization::Bearer(token) => builder.bearer_auth(token),
        }
    }
}

/// The credentials, name and token cache of one registry. Cheap to clone; clones share
/// tokens.
#[derive(Clone)]
pub(super) struct Authenticator {
    /// The registry as users name it (normalized), for messages.
    server: String,
    credentials: Option<Arc<Credentials>>,
    cache: Arc<Mutex<AuthCache>>,
}

impl ErrorContext for Authenticator {
    fn server(&self) -> &str {
        &self.server
    }

    fn with_credentials(&self) -> bool {
        self.credentials.is_some()
    }

    /// Removes any secret this authenticator knows from text that came from elsewhere.
    fn scrub(&self, mut text: String) -> String {
        let mut secrets: Vec<String> = Vec::new();
        if let Some(c) = &self.credentials {
            secrets.push(c.password.clone());
            secrets.extend(c.identity_token.clone());
        }
        secrets.extend(self.lock_cache().tokens.values().cloned());
        for secret in secrets.iter().filter(|s| !s.is_empty()) {
            if text.contains(secret.as_str()) {
                text = text.replace(secret.as_str(), "<redacted>");
            }
        }
        text
    }
}

impl Authenticator {
    /// `server` as users name it (normalized), with its credentials if any.
    pub(super) fn new(server: String, credentials: Option<Credentials>) -> Authenticator {
        Authenticator {
            server,
            credentials: credentials.map(Arc::new),
            cache: Arc::default(),
        }
    }

    pub(super) fn credentials(&self) -> Option<&Credentials> {
        self.credentials.as_deref()
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, AuthCache> {
        self.cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// What to send up front for `scope`: its token, or Basic credentials once the
    /// registry has asked for them.
    pub(super) fn cached_authorization(&self, scope: &str) -> Option<Authorization> {
        let cache = self.lock_cache();
        if let Some(token) = cache.tokens.get(scope) {
            return Some(Authorization::Bearer(token.clone()));
        }
        if cache.basic {
            return self.basic_authorization();
        }
        None
    }

    /// Drops the token of `scope` (the registry refused it).
    pub(super) fn forget(&self, scope: &str) {
        self.lock_cache().tokens.remove(scope);
    }

    fn basic_authorization(&self) -> Option<Authorization> {
        self.credentials
            .as_ref()
            .filter(|c| !c.username.is_empty() || !c.password.is_empty())
            .map(|c| Authorization::Basic {
                username: c.username.clone(),
                password: c.password.clone(),
            })
    }

    /// Answers the challenges in the headers of a 401: a Bearer token for `scope` if the
    /// registry offers that (fetched through `http`), else Basic.
    pub(super) async fn answer(
        &self,
        http: &reqwest::Client,
        headers: &HeaderMap,
        scope: &str,
    ) -> Result<Authorization, RegistryError> {
        let challenges: Vec<Challenge> = headers
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(parse_challenges)
            .collect();
        if let Some(bearer) = challenges
            .iter()
            .find(|c| c.scheme == "bearer" && c.param("realm").is_some())
        {
            let token = self.fetch_token(http, bearer, scope).await?;
            self.lock_cache()
                .tokens
                .insert(scope.to_string(), token.clone());
            return Ok(Authorization::Bearer(token));
        }
        if challenges.iter().any(|c| c.scheme == "basic") {
            let basic = self
                .basic_authorization()
                .ok_or_else(|| self.unauthorized())?;
            self.lock_cache().basic = true;
            return Ok(basic);
        }
        match challenges.first() {
            Some(other) => Err(self.protocol(
                StatusCode::UNAUTHORIZED,
                format!(
                    "it asks for the unsupported authentication scheme {:?}",
                    other.scheme
                ),
            )),
            None => Err(self.unauthorized()),
        }
    }

    /// Gets a token for `scope` from the challenge's realm (the registry's token server).
    async fn fetch_token(
        &self,
        http: &reqwest::Client,
        challenge: &Challenge,
        scope: &str,
    ) -> Result<String, RegistryError> {
        let realm = challenge.param("realm").unwrap_or_default();
        let realm_url = Url::parse(realm).ok().filter(|u| {
            u.scheme() == "https"
                || (u.scheme() == "http" && u.host_str().is_some_and(is_loopback_host))
        });
        let Some(realm_url) = realm_url else {
            return Err(self.protocol(
                StatusCode::UNAUTHORIZED,
                format!("its token server {realm:?} is not an HTTPS URL; refusing to use it"),
            ));
        };
        let token_server = match (realm_url.host_str(), realm_url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            _ => realm.to_string(),
        };
        let mut scopes = vec![scope.to_string()];
        if let Some(asked) = challenge.param("scope") {
            scopes.extend(
                asked
                    .split(' ')
                    .filter(|s| !s.is_empty() && *s != scope)
                    .map(str::to_string),
            );
        }
        let service = challenge.param("service");

        let identity_token = self
            .credentials
            .as_ref()
            .and_then(|c| c.identity_token.as_deref());
        let builder = if let Some(refresh_token) = identity_token {
            let joined = scopes.join(" ");
            let mut form = vec![
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
                ("client_id", "docker-buildkit"),
                ("scope", joined.as_str()),
            ];
            if let Some(service) = service {
                form.push(("service", service));
            }
            http.post(realm_url).form(&form)
        } else {
            let mut query: Vec<(&str, &str)> = Vec::new();
            if let Some(service) = service {
                query.push(("service", service));
            }
            query.extend(scopes.iter().map(|s| ("scope", s.as_str())));
            let builder = http.get(realm_url).query(&query);
            match self.basic_authorization() {
                Some(basic) => basic.apply(builder),
                None => builder,
            }
        };
        let resp = builder.send().await.map_err(|e| self.transport_error(e))?;
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(self.unauthorized());
        }
        if !status.is_success() {
            let detail = error_detail(self, resp).await;
            return Err(RegistryError::Protocol {
                server: self.server.clone(),
                status: status.as_u16(),
                message: format!("its token server {token_server} refused a token: {detail}"),
            });
        }
        #[derive(Deserialize)]
        struct TokenResponse {
            #[serde(default)]
            token: Option<String>,
            #[serde(default)]
            access_token: Option<String>,
        }
        let body = read_body(self, resp, MAX_SMALL_BODY_BYTES, "a token answer").await?;
        let parsed: Option<TokenResponse> = serde_json::from_slice(&body).ok();
        parsed
            .and_then(|t| {
                t.token
                    .filter(|t| !t.is_empty())
                    .or(t.access_token.filter(|t| !t.is_empty()))
            })
            .ok_or_else(|| {
                self.protocol(
                    status,
                    format!("its token server {token_server} answered without a token"),
                )
            })
    }
}

/// One `WWW-Authenticate` challenge: a lowercased scheme and its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Challenge {
    scheme: String,
    params: Vec<(String, String)>,
}

impl Challenge {
    /// A parameter by case-insensitive name.
    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Parses a `WWW-Authenticate` value (RFC 7235): one or more challenges, each a scheme
/// followed by comma-separated `name=value` or `name="quoted, \"value\""` parameters.
/// Anything unparsable is skipped rather than failing.
fn parse_challenges(header: &str) -> Vec<Challenge> {
    let chars: Vec<char> = header.chars().collect();
    let mut pos = 0;
    let mut challenges: Vec<Challenge> = Vec::new();
    let is_token_char = |c: char| !c.is_whitespace() && !matches!(c, ',' | '=' | '"');
    let skip_ws = |pos: &mut usize| {
        while *pos < chars.len() && chars[*pos].is_whitespace() {
            *pos += 1;
        }
    };
    loop {
        while pos < chars.len() && (chars[pos].is_whitespace() || chars[pos] == ',') {
            pos += 1;
        }
        if pos >= chars.len() {
            break;
        }
        let start = pos;
        while pos < chars.len() && is_token_char(chars[pos]) {
            pos += 1;
        }
        let token: String = chars[start..pos].iter().collect();
        if token.is_empty() {
            // A stray `=` or `"`: skip it.
            pos += 1;
            continue;
        }
        let mut after = pos;
        skip_ws(&mut after);
        if after < chars.len() && chars[after] == '=' {
            // `name=value`: a parameter of the current challenge.
            pos = after + 1;
            skip_ws(&mut pos);
            let value = if pos < chars.len() && chars[pos] == '"' {
                pos += 1;
                let mut value = String::new();
                while pos < chars.len() && chars[pos] != '"' {
                    if chars[pos] == '\\' && pos + 1 < chars.len() {
                        pos += 1;
                    }
                    value.push(chars[pos]);
                    pos += 1;
                }
                pos += 1; // closing quote
                value
            } else {
                let start = pos;
                while pos < chars.len() && chars[pos] != ',' && !chars[pos].is_whitespace() {
                    pos += 1;
                }
                chars[start..pos].iter().collect()
            };
            if let Some(current) = challenges.last_mut() {
                current.params.push((token.to_ascii_lowercase(), value));
            }
        } else {
            challenges.push(Challenge {
                scheme: token.to_ascii_lowercase(),
                params: Vec::new(),
            });
        }
    }
    challenges
}

#[cfg(test)]
mod tests {
    use super::*;

    // ----- challenge parser -----

    fn challenge(scheme: &str, params: &[(&str, &str)]) -> Challenge {
        Challenge {
            scheme: scheme.into(),
            params: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn parses_bearer_challenge() {
        let got = parse_challenges(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull""#,
        );
        assert_eq!(
            got,
            vec![challenge(
                "bearer",
                &[
                    ("realm", "https://auth.docker.io/token"),
                    ("service", "registry.docker.io"),
                    ("scope", "repository:library/alpine:pull"),
                ]
            )]
        );
    }

    #[test]
    fn parses_commas_spaces_and_escapes_inside_quotes() {
        let got = parse_challenges(
            r#"BEARER  realm = "https://x/token?a=1,b=2" , scope="repository:a:pull,push repository:b:pull", error="say \"hi\"""#,
        );
        assert_eq!(
            got,
            vec![challenge(
                "bearer",
                &[
                    ("realm", "https://x/token?a=1,b=2"),
                    ("scope", "repository:a:pull,push repository:b:pull"),
                    ("error", r#"say "hi""#),
                ]
            )]
        );
        assert_eq!(got[0].param("REALM"), Some("https://x/token?a=1,b=2"));
    }

    #[test]
    fn parses_several_challenges_and_bare_values() {
        let got = parse_challenges(
            r#"Basic realm="Registry Realm", Bearer realm=https://t/token,service=svc, Negotiate"#,
        );
        assert_eq!(
            got,
            vec![
                challenge("basic", &[("realm", "Registry Realm")]),
                challenge(
                    "bearer",
                    &[("realm", "https://t/token"), ("service", "svc")]
                ),
                challenge("negotiate", &[]),
            ]
        );
    }

    #[test]
    fn parser_survives_garbage() {
        for input in [
            "",
            ",,,",
            "=",
            "\"",
            "Bearer realm=\"unterminated",
            "Bearer ,=,\"x",
        ] {
            let _ = parse_challenges(input);
        }
        assert_eq!(
            parse_challenges("Bearer realm=\"unterminated"),
            vec![challenge("bearer", &[("realm", "unterminated")])]
        );
        assert_eq!(parse_challenges("basic"), vec![challenge("basic", &[])]);
    }
}
