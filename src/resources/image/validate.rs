//! Every check of the inputs that needs no Docker and no file system, one function per input
//! ([`validate`] takes [`ImageArgs`] apart field by field, so a new input must be listed here
//! too, with its check or as having none); and `check_ssh`, the one that needs the file
//! system, which Check runs. Unknown values (preview) are not checked.

use std::path::Path;

use crate::credentials::normalize_server;
use crate::docker;
use crate::docker::session::ssh::{PathKind, path_kind, paths_of};
use crate::grammar::{AddHost, AddHostError, SecretId};
use crate::path::PropertyPath;
use crate::platform::{Platform, PlatformError};
use crate::reference::{Reference, validate_registry};
use crate::resource::{CheckFailure, Inputs, Unknown};

use super::args::{
    CacheFromEntry, CacheTo, DEFAULT_SSH_ID, ImageArgs, MAX_SECRET_BYTES, Registry,
    TarballFormatInput,
};
use super::plan::ssh_forward;

/// Every check that needs no Docker, input by input.
pub(super) fn validate(news: &Inputs<ImageArgs>) -> Vec<CheckFailure> {
    let ImageArgs {
        name,
        tags,
        context,
        dockerfile,
        dockerfile_inline,
        build_contexts: _,
        platforms,
        build_args,
        // Any string, any stage name: BuildKit says which stages there are.
        target: _,
        // Any strings (the kit checks the types).
        labels: _,
        cache_from,
        cache_to,
        // Booleans: nothing to check on their own (`push` and `index` with `platforms`).
        inline_cache: _,
        no_cache: _,
        pull: _,
        network,
        secrets: _,
        ssh: _,
        add_hosts,
        push: _,
        registry,
        triggers: _,
        index: _,
        skip_if_pushed: _,
        // An enum: serde takes only its values; where it can be made is Check's question.
        provenance: _,
        exports: _,
        // Computed by Check, whatever the user sends.
        context_hash: _,
    } = &news.args;
    let known = |p: &str| !news.is_unknown(p);
    let mut f = Vec::new();
    if known("name") {
        f.extend(validate_name(name));
    }
    if known("tags") {
        f.extend(validate_tags(name, tags.as_deref().unwrap_or_default()));
    }
    f.extend(validate_dockerfile(
        news,
        dockerfile.as_deref(),
        dockerfile_inline.as_deref(),
    ));
    if known("platforms") {
        f.extend(validate_platforms(
            news,
            platforms.as_deref().unwrap_or_default(),
        ));
    }
    if let Some(n) = network
        && known("network")
    {
        f.extend(validate_network(n));
    }
    f.extend(validate_secrets(news));
    f.extend(validate_ssh(news));
    f.extend(validate_add_hosts(
        news,
        add_hosts.as_deref().unwrap_or_default(),
    ));
    if known("buildArgs") {
        f.extend(validate_build_args(
            build_args.iter().flat_map(|m| m.keys()),
        ));
    }
    f.extend(validate_cache_from(
        news,
        cache_from.as_deref().unwrap_or_default(),
    ));
    f.extend(validate_cache_to(
        news,
        cache_to.as_deref().unwrap_or_default(),
    ));
    if let Some(r) = registry
        && known("registry")
    {
        f.extend(validate_registry_input(r));
    }
    if known("context") {
        f.extend(validate_context(context.as_deref()));
    }
    f.extend(validate_build_contexts(news));
    f.extend(validate_exports(news));
    f
}

/// `exports`: each entry one of `tarball`, `local`, `load` or `cacheOnly`; a tarball or a
/// directory has a path, none twice, and a directory is no file; a `docker` tarball holds one platform
/// (BuildKit's docker exporter writes no index); cache-only is alone, and not pushed.
fn validate_exports<'a>(news: &'a Inputs<ImageArgs>) -> Vec<CheckFailure> {
    let mut f = Vec::new();
    let mut paths: Vec<&str> = Vec::new();
    let several = news.args.platforms.as_ref().is_some_and(|p| p.len() > 1) || news.args.index;
    let entries = news.args.exports.as_deref().unwrap_or_default();
    for (i, e) in entries.iter().enumerate() {
        let entry = PropertyPath::key("exports").at(i);
        if unknown_at(news, &entry) {
            continue;
        }
        let kinds = [
            e.tarball.is_some(),
            e.local.is_some(),
            e.load == Some(true),
            e.cache_only == Some(true),
        ];
        match kinds.iter().filter(|k| **k).count() {
            1 => {}
            0 => {
                f.push(CheckFailure::new(
                    &entry,
                    "an export needs one of `tarball {path, format}`, `local {dest}`, `load: true` or `cacheOnly: true`",
                ));
                continue;
            }
            _ => {
                f.push(CheckFailure::new(
                    &entry,
                    "set exactly one of `tarball`, `local`, `load: true` or `cacheOnly: true` in an export",
                ));
                continue;
            }
        }
        if e.cache_only == Some(true) {
            if entries.len() > 1 {
                f.push(CheckFailure::new(
                    entry.clone().field("cacheOnly"),
                    "`cacheOnly: true` exports nothing but the cache: it cannot be listed with other exports",
                ));
            }
            if news.args.push && !news.is_unknown("push") {
                f.push(CheckFailure::new(
                    entry.clone().field("cacheOnly"),
                    "`cacheOnly: true` exports nothing but the cache, and a push exports the image: set `push: false` with it",
                ));
            }
            continue;
        }
        // A tarball's file or a directory: given, and no other export's.
        let mut claim = |path: PropertyPath, value: &'a str, what: &str| {
            if value.is_empty() {
                f.push(CheckFailure::new(&path, what));
            } else if paths.contains(&value) {
                f.push(CheckFailure::new(
                    &path,
                    format!("{value:?} is the path of an earlier export: give each export its own"),
                ));
            } else {
                paths.push(value);
            }
        };
        if let Some(l) = &e.local {
            claim(
                entry.clone().field("local").field("dest"),
                &l.dest,
                "a local export needs the directory to write (relative to the program's directory)",
            );
            continue;
        }
        let Some(t) = &e.tarball else {
            continue;
        };
        claim(
            entry.clone().field("tarball").field("path"),
            &t.path,
            "a tarball export needs the file to write (relative to the program's directory)",
        );
        if several && t.format != Some(TarballFormatInput::Oci) {
            f.push(CheckFailure::new(
                entry.clone().field("tarball").field("format"),
                "a docker tarball holds one platform (BuildKit's docker exporter writes no index): use `format: oci` for several platforms or an index",
            ));
        }
    }
    f
}

/// `name`: a repository to push to (a tag may be given), never a digest.
fn validate_name(name: &str) -> Vec<CheckFailure> {
    match Reference::parse(name) {
        Ok(r) if r.digest.is_some() => vec![CheckFailure::new(
            "name",
            format!(
                "{name:?} has a digest: name the repository (and tag) to push to, e.g. {}",
                r.repository()
            ),
        )],
        Ok(_) => vec![],
        Err(e) => vec![CheckFailure::new("name", e.to_string())],
    }
}

/// `tags`: each a bare tag or a full reference. Bare tags are checked against any valid name
/// (the name's own failure is [`validate_name`]'s).
fn validate_tags(name: &str, tags: &[String]) -> Vec<CheckFailure> {
    let name = Reference::parse(name).unwrap_or_else(|_| Reference {
        registry: None,
        path: "x".into(),
        tag: None,
        digest: None,
    });
    tags.iter()
        .enumerate()
        .filter_map(|(i, t)| {
            name.resolve_tag(t)
                .err()
                .map(|e| CheckFailure::new(PropertyPath::key("tags").at(i), e.to_string()))
        })
        .collect()
}

/// `dockerfile` and `dockerfileInline`: one or the other; a path relative to the context; a
/// text that is not empty.
fn validate_dockerfile(
    news: &Inputs<ImageArgs>,
    dockerfile: Option<&str>,
    inline: Option<&str>,
) -> Vec<CheckFailure> {
    let known = |p: &str| !news.is_unknown(p);
    let mut f = Vec::new();
    if dockerfile.is_some() && inline.is_some() {
        f.push(CheckFailure::new(
            "dockerfileInline",
            "set either `dockerfile` or `dockerfileInline`, not both",
        ));
    }
    if let Some(text) = inline
        && known("dockerfileInline")
        && text.trim().is_empty()
    {
        f.push(CheckFailure::new(
            "dockerfileInline",
            "the inline Dockerfile is empty: give its text (e.g. \"FROM alpine\"), or leave dockerfileInline out to build from a Dockerfile in the context",
        ));
    }
    if let Some(d) = dockerfile
        && known("dockerfile")
        && (d.is_empty() || Path::new(d).is_absolute())
    {
        f.push(CheckFailure::new(
            "dockerfile",
            format!("{d:?} must be a path relative to the context directory"),
        ));
    }
    f
}

/// `platforms`: each a [`Platform`], none twice; with `index` or several platforms, what
/// they need (`platforms` given, `push`).
fn validate_platforms(news: &Inputs<ImageArgs>, platforms: &[String]) -> Vec<CheckFailure> {
    let a = &news.args;
    let mut f = Vec::new();
    for (i, p) in platforms.iter().enumerate() {
        if let Err(e) = validate_platform(p) {
            f.push(CheckFailure::new(
                PropertyPath::key("platforms").at(i),
                e.to_string(),
            ));
        }
    }
    if a.index && platforms.is_empty() {
        f.push(CheckFailure::new(
            "index",
            "an index needs `platforms`: name the platform(s) it lists, e.g. [\"linux/amd64\"]",
        ));
    }
    if (platforms.len() > 1 || a.index) && !a.push && !news.is_unknown("push") {
        f.push(CheckFailure::new(
            "push",
            "several platforms need `push: true`: the Docker daemon cannot keep a multi-platform image locally",
        ));
    }
    for (i, p) in platforms.iter().enumerate() {
        if platforms[..i].contains(p) {
            f.push(CheckFailure::new(
                PropertyPath::key("platforms").at(i),
                format!("{p:?} is listed twice"),
            ));
        }
    }
    f
}

/// `network`: one of BuildKit's modes for `RUN` steps.
fn validate_network(n: &str) -> Vec<CheckFailure> {
    if matches!(n, "default" | "host" | "none") {
        return vec![];
    }
    vec![CheckFailure::new(
        "network",
        format!("{n:?} is not a network mode: use \"default\", \"host\" or \"none\""),
    )]
}

/// `addHosts`: each an [`AddHost`]; unknown entries are not checked.
fn validate_add_hosts(news: &Inputs<ImageArgs>, hosts: &[String]) -> Vec<CheckFailure> {
    let mut f = Vec::new();
    for (i, h) in hosts.iter().enumerate() {
        let path = PropertyPath::key("addHosts").at(i);
        if !unknown_at(news, &path)
            && let Err(e) = validate_add_host(h)
        {
            f.push(CheckFailure::new(path, e.to_string()));
        }
    }
    f
}

/// `buildArgs`: names Docker accepts for `--build-arg NAME=value`.
fn validate_build_args<'a>(names: impl Iterator<Item = &'a String>) -> Vec<CheckFailure> {
    names
        .filter(|k| k.is_empty() || k.contains('=') || k.chars().any(char::is_whitespace))
        .map(|k| {
            CheckFailure::new(
                "buildArgs",
                format!("{k:?} is not a valid build argument name"),
            )
        })
        .collect()
}

/// `cacheFrom`: each an image reference, or `registry {ref}` with one.
fn validate_cache_from(
    news: &Inputs<ImageArgs>,
    cache_from: &[CacheFromEntry],
) -> Vec<CheckFailure> {
    let mut f = Vec::new();
    for (i, c) in cache_from.iter().enumerate() {
        let entry = PropertyPath::key("cacheFrom").at(i);
        if unknown_at(news, &entry) {
            continue;
        }
        let t = match c {
            CacheFromEntry::Image(r) => {
                if let Err(e) = Reference::parse(r) {
                    f.push(CheckFailure::new(&entry, e.to_string()));
                }
                continue;
            }
            CacheFromEntry::Typed(t) => t,
        };
        match (&t.registry, &t.local) {
            (Some(r), None) => {
                if let Err(e) = Reference::parse(&r.reference) {
                    f.push(CheckFailure::new(
                        entry.field("registry").field("ref"),
                        e.to_string(),
                    ));
                }
            }
            (None, Some(l)) => {
                if l.src.is_empty() {
                    f.push(CheckFailure::new(
                        entry.field("local").field("src"),
                        "a local cache import needs its directory (relative to the program's directory)",
                    ));
                }
            }
            (Some(_), Some(_)) => f.push(CheckFailure::new(
                &entry,
                "set exactly one of `registry` or `local` in a cache import",
            )),
            (None, None) => f.push(CheckFailure::new(
                &entry,
                "set `registry {ref}` or `local {src}` (or give an image reference)",
            )),
        }
    }
    f
}

/// `cacheTo`: each entry one kind of cache, with values BuildKit takes. Entries with unknown
/// values are not checked.
fn validate_cache_to(news: &Inputs<ImageArgs>, entries: &[CacheTo]) -> Vec<CheckFailure> {
    let mut f = Vec::new();
    let one_of = |allowed: &[&str], v: &str| allowed.contains(&v);
    for (i, c) in entries.iter().enumerate() {
        let entry = PropertyPath::key("cacheTo").at(i);
        if unknown_at(news, &entry) {
            continue;
        }
        let kinds = [
            c.registry.is_some(),
            c.local.is_some(),
            c.inline.is_some(),
            c.disabled == Some(true),
        ];
        if kinds.iter().filter(|k| **k).count() != 1 {
            f.push(CheckFailure::new(
                &entry,
                "set exactly one of `registry`, `local`, `inline` or `disabled: true`",
            ));
            continue;
        }
        let mode = |m: &Option<String>, at: PropertyPath, f: &mut Vec<CheckFailure>| {
            if let Some(m) = m
                && !one_of(&["min", "max"], m)
            {
                f.push(CheckFailure::new(
                    at,
                    format!("{m:?} is not a cache mode: use \"min\" or \"max\""),
                ));
            }
        };
        let compression = |z: &Option<String>, at: PropertyPath, f: &mut Vec<CheckFailure>| {
            if let Some(z) = z
                && !one_of(&["gzip", "estargz", "zstd", "uncompressed"], z)
            {
                f.push(CheckFailure::new(
                    at,
                    format!("{z:?} is not a compression: use gzip, estargz, zstd or uncompressed"),
                ));
            }
        };
        if let Some(r) = &c.registry {
            let at = entry.clone().field("registry");
            if let Err(e) = Reference::parse(&r.reference) {
                f.push(CheckFailure::new(at.clone().field("ref"), e.to_string()));
            }
            mode(&r.mode, at.clone().field("mode"), &mut f);
            compression(&r.compression, at.field("compression"), &mut f);
        }
        if let Some(l) = &c.local {
            let at = entry.clone().field("local");
            if l.dest.is_empty() {
                f.push(CheckFailure::new(
                    at.clone().field("dest"),
                    "a local cache export needs its directory (relative to the program's directory)",
                ));
            }
            mode(&l.mode, at.clone().field("mode"), &mut f);
            compression(&l.compression, at.field("compression"), &mut f);
        }
    }
    if entries.iter().any(|c| c.disabled == Some(true)) && entries.len() > 1 {
        f.push(CheckFailure::new(
            "cacheTo",
            "`disabled: true` exports no cache: it cannot be listed with other entries",
        ));
    }
    f
}

/// `registry`: a server that names a registry host, and a username with a password or
/// neither.
fn validate_registry_input(r: &Registry) -> Vec<CheckFailure> {
    let mut f = Vec::new();
    // Credentials are used for the host `normalize_server` makes of `server`: a server that
    // makes none (e.g. "https://") or an invalid one would never match, leaving them
    // silently unused.
    let host = normalize_server(&r.server);
    if r.server.trim().is_empty() {
        f.push(CheckFailure::new(
            PropertyPath::key("registry").field("server"),
            "the registry server must not be empty",
        ));
    } else if host.is_empty() {
        f.push(CheckFailure::new(
            PropertyPath::key("registry").field("server"),
            format!(
                "{:?} names no registry host: give the host the credentials are for, e.g. ghcr.io or 127.0.0.1:5000",
                r.server
            ),
        ));
    } else if let Err(e) = validate_registry(&host) {
        f.push(CheckFailure::new(
            PropertyPath::key("registry").field("server"),
            format!(
                "{:?} is not a registry host ({e}): give e.g. ghcr.io or 127.0.0.1:5000",
                r.server
            ),
        ));
    }
    if r.username.is_some() != r.password.is_some() {
        f.push(CheckFailure::new(
            PropertyPath::key("registry").field(if r.password.is_none() {
                "password"
            } else {
                "username"
            }),
            "give both `username` and `password`, or neither",
        ));
    }
    f
}

/// `context`: not empty (the file system's checks are the hash's).
fn validate_context(context: Option<&str>) -> Vec<CheckFailure> {
    if context == Some("") {
        return vec![CheckFailure::new(
            "context",
            "the context directory must not be empty (use \".\")",
        )];
    }
    vec![]
}

/// `buildContexts`: each name one `FROM`/`COPY --from` can use, each value a directory or
/// `docker-image://<ref>`. Whether a directory is there is the hash's question (see
/// `hash::named_digests`).
fn validate_build_contexts(news: &Inputs<ImageArgs>) -> Vec<CheckFailure> {
    let mut f = Vec::new();
    let map = PropertyPath::key("buildContexts");
    if news.unknown(&map) == Unknown::Whole {
        return f;
    }
    for (name, value) in news.args.build_contexts.iter().flatten() {
        let path = map.clone().field(name);
        if name.is_empty() {
            f.push(CheckFailure::new(
                "buildContexts",
                "a named context needs a name: the one `FROM <name>` or `COPY --from=<name>` uses",
            ));
            continue;
        }
        if let Some(c) = name
            .chars()
            .find(|c| !c.is_ascii_graphic() || matches!(c, '=' | ','))
        {
            f.push(CheckFailure::new(
                &path,
                format!(
                    "{name:?} cannot name a build context: it has {c:?} (a name is what `FROM` or `COPY --from` spells, without spaces, `=` or `,`)"
                ),
            ));
            continue;
        }
        if news.unknown(&path).any() {
            continue;
        }
        if let Some(reason) = named_context_problem(value) {
            f.push(CheckFailure::new(&path, reason));
        }
    }
    f
}

/// What is wrong with a named context's value, if anything, as far as the value alone
/// tells (whether a directory or a layout is there is the hash's question).
fn named_context_problem(value: &str) -> Option<String> {
    const KINDS: &str = "a directory (relative to the program's directory), `docker-image://<ref>`, `oci-layout://<dir>[:<tag>][@<digest>]`, a Git URL (`https://host/repo.git#<ref>:<subdir>`, `git@host:repo.git`) or an HTTP(S) URL of a file";
    if value.is_empty() {
        return Some(format!("give {KINDS}"));
    }
    if let Some(r) = value.strip_prefix(docker::NAMED_IMAGE_SCHEME) {
        return Reference::parse(r).err().map(|e| e.to_string());
    }
    if let Some(rest) = value.strip_prefix(docker::NAMED_OCI_LAYOUT_SCHEME) {
        let r = docker::OciLayoutRef::parse(rest, std::path::Path::new(""));
        if r.dir.as_os_str().is_empty() {
            return Some(format!(
                "{value:?} names no directory: give `oci-layout://<dir>[:<tag>][@<digest>]`"
            ));
        }
        if let Some((_, d)) = rest.rsplit_once('@')
            && r.digest.is_none()
            && d.contains(':')
        {
            return Some(format!(
                "{d:?} is not an image digest (`sha256:` and 64 lowercase hex digits)"
            ));
        }
        if let Err(e) = crate::reference::validate_tag(&r.tag) {
            return Some(format!("{:?} is not a tag: {e}", r.tag));
        }
        return None;
    }
    if docker::plan::is_remote(value) {
        if let Some(rest) = value.strip_prefix("git@") {
            return match rest.split_once(':') {
                Some((host, repo)) if !host.is_empty() && !repo.is_empty() => None,
                _ => Some(format!(
                    "{value:?} is not a Git address: give `git@<host>:<repository>`"
                )),
            };
        }
        let (_, rest) = value.split_once("://").unwrap_or(("", value));
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        if host.is_empty() || host.contains(char::is_whitespace) {
            return Some(format!("{value:?} names no host"));
        }
        return None;
    }
    if let Some((scheme, _)) = value.split_once("://") {
        return Some(format!(
            "{scheme}:// contexts are not supported (BuildKit's Dockerfile frontend does not take them): give {KINDS}"
        ));
    }
    None
}

/// The ids and sizes of `secrets`. No reason quotes a value. The ids are checked when the map
/// is known, each value when it is.
fn validate_secrets(news: &Inputs<ImageArgs>) -> Vec<CheckFailure> {
    let mut f = Vec::new();
    let map = PropertyPath::key("secrets");
    if news.unknown(&map) == Unknown::Whole {
        return f;
    }
    for (id, value) in news.args.secrets.iter().flatten() {
        let path = map.clone().field(id);
        match id.parse::<SecretId>() {
            Ok(_) => {}
            Err(e) if id.is_empty() => f.push(CheckFailure::new("secrets", e.to_string())),
            Err(e) => f.push(CheckFailure::new(&path, e.to_string())),
        }
        if !news.unknown(&path).any() && value.len() > MAX_SECRET_BYTES {
            f.push(CheckFailure::new(
                &path,
                format!(
                    "the value is {} bytes, more than BuildKit's limit of 500 KiB ({MAX_SECRET_BYTES} bytes) for a build secret",
                    value.len()
                ),
            ));
        }
    }
    f
}

/// The ids of `ssh`: none empty, none twice (an entry without one is `default`). Its paths
/// need the file system: see [`check_ssh`].
fn validate_ssh(news: &Inputs<ImageArgs>) -> Vec<CheckFailure> {
    let mut f = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for (i, s) in news.args.ssh.iter().flatten().enumerate() {
        let path = PropertyPath::key("ssh").at(i).field("id");
        if unknown_at(news, &path) {
            continue;
        }
        let id = s.id.as_deref().unwrap_or(DEFAULT_SSH_ID);
        if id.is_empty() {
            f.push(CheckFailure::new(
                &path,
                format!("the id must not be empty: give the id `RUN --mount=type=ssh,id=<id>` names, or leave it out for {DEFAULT_SSH_ID:?}"),
            ));
        } else if seen.contains(&id) {
            f.push(CheckFailure::new(
                &path,
                format!(
                    "{id:?} is the id of an earlier entry{}: each id names one agent, so give each entry its own (several key files can share one entry's `paths`)",
                    if s.id.is_none() {
                        " (an entry without an id has the id \"default\")"
                    } else {
                        ""
                    }
                ),
            ));
        } else {
            seen.push(id);
        }
    }
    f
}

/// Checks `host:ip` (as `docker build --add-host`, see [`AddHost`]).
pub fn validate_add_host(entry: &str) -> std::result::Result<(), AddHostError> {
    entry.parse::<AddHost>().map(|_| ())
}

/// Checks `os/arch[/variant]` (see [`Platform`]).
pub fn validate_platform(p: &str) -> std::result::Result<(), PlatformError> {
    p.parse::<Platform>().map(|_| ())
}

/// The checks of `exports` that need the file system: a tarball's directory exists, and its
/// path is not a directory; a local export's directory is not a file.
pub(super) fn check_exports(program_dir: &Path, news: &Inputs<ImageArgs>) -> Vec<CheckFailure> {
    let mut f = Vec::new();
    for (i, e) in news.args.exports.iter().flatten().enumerate() {
        if let Some(l) = e.local.as_ref().filter(|l| !l.dest.is_empty()) {
            let path = PropertyPath::key("exports")
                .at(i)
                .field("local")
                .field("dest");
            let dir = program_dir.join(&l.dest);
            if !unknown_at(news, &path) && dir.exists() && !dir.is_dir() {
                f.push(CheckFailure::new(
                    &path,
                    format!(
                        "{} is a file: a local export writes a directory",
                        dir.display()
                    ),
                ));
            }
            continue;
        }
        let path = PropertyPath::key("exports")
            .at(i)
            .field("tarball")
            .field("path");
        let Some(t) = e.tarball.as_ref().filter(|t| !t.path.is_empty()) else {
            continue;
        };
        if unknown_at(news, &path) {
            continue;
        }
        let file = program_dir.join(&t.path);
        if file.is_dir() {
            f.push(CheckFailure::new(
                &path,
                format!(
                    "{} is a directory: give the tarball's file name",
                    file.display()
                ),
            ));
        } else if let Some(dir) = file.parent()
            && !dir.is_dir()
        {
            f.push(CheckFailure::new(
                &path,
                format!("the directory {} does not exist", dir.display()),
            ));
        }
    }
    f
}

/// True when the value at `path`, anything inside it or what holds it is unknown (preview).
pub(super) fn unknown_at(news: &Inputs<ImageArgs>, path: &PropertyPath) -> bool {
    news.unknown(path).any()
}

/// The checks of `ssh` that need the file system or the provider's environment (so not in
/// [`validate`](super::validate::validate)): each path is an agent socket or a key file; an entry without paths needs
/// the provider's `SSH_AUTH_SOCK` to be an agent. Entries with unknown values are not checked.
pub(super) fn check_ssh(program_dir: &Path, news: &Inputs<ImageArgs>) -> Vec<CheckFailure> {
    let mut f = Vec::new();
    for (i, s) in news.args.ssh.iter().flatten().enumerate() {
        let entry = PropertyPath::key("ssh").at(i);
        if unknown_at(news, &entry) {
            continue;
        }
        let forward = ssh_forward(program_dir, s);
        if forward.paths.is_empty() {
            let problem = match paths_of(&forward) {
                // It says how to fix it.
                Err(e) => Some(e.to_string()),
                Ok(agents) => agents
                    .iter()
                    .find_map(|p| match path_kind(p) {
                        Ok(PathKind::Socket) => None,
                        Ok(PathKind::KeyFile) => Some(format!("{} is not a socket", p.display())),
                        Err(e) => Some(e.to_string()),
                    })
                    .map(|e| format!("the provider's SSH_AUTH_SOCK names no running ssh agent ({e}): start one with `eval $(ssh-agent)` and `ssh-add` before running pulumi, or list key files in `paths`")),
            };
            if let Some(reason) = problem {
                f.push(CheckFailure::new(&entry, reason));
            }
            continue;
        }
        for (j, p) in forward.paths.iter().enumerate() {
            if let Err(e) = path_kind(p) {
                f.push(CheckFailure::new(
                    entry.clone().field("paths").at(j),
                    format!("{e}: give an ssh agent's socket or a private key file"),
                ));
            }
        }
    }
    f
}
