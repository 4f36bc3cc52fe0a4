//! The `Image` resource's unit tests: validation, the plan, the hash.

use std::path::{Path, PathBuf};

use super::hash::*;
use super::plan::*;
use super::validate::*;
use super::*;
use crate::context;
use crate::docker::SshForward;
use crate::rpc::codec::{PropertyPath, Seg};

/// A context for a program in `/prog`.
fn test_ctx() -> Ctx<ProviderConfig> {
    Ctx::detached(ProviderConfig::default(), "/prog")
}

/// The context hash before dialects existed, for a context and `args`.
fn hash_before_dialects(dir: &Path, args: &ImageArgs) -> String {
    let digest = open_context(dir, args).unwrap().hash().unwrap();
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(b"docker-buildkit context v1\0");
    h.update(digest.hash.as_bytes());
    h.update(b"\0");
    h.update(super::super::inputs::hashed_json(args).as_bytes());
    format!("{:032x}", h.digest128())
}

#[test]
fn the_dialect_changes_the_hash_only_through_the_files() {
    use context::IgnoreDialect::{Classic20_10, Modern};
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for (path, text) in [
        ("Dockerfile", "FROM scratch\nCOPY . /ctx/\n"),
        (".dockerignore", "*\n!Dockerfile\n!**/node_modules\n"),
        ("node_modules/r.js", "r"),
    ] {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let args = ImageArgs {
        name: "reg.io/app".into(),
        ..ImageArgs::default()
    };
    let hash = |dialects: &[context::IgnoreDialect]| {
        compute_hash(root, &args, dialects, &Default::default())
            .unwrap()
            .hash
    };
    // Classic (dockerd 20.10, or no answer): the hash every existing stack has.
    let before = hash_before_dialects(root, &args);
    assert_eq!(hash(&[Classic20_10]), before);
    assert_eq!(hash(&[]), before);
    // Modern keeps node_modules/r.js, which Classic drops: another hash, and a fleet
    // with both dialects sees changes either would.
    let modern = hash(&[Modern]);
    assert_ne!(modern, before);
    let both = hash(&[Classic20_10, Modern]);
    assert!(both != before && both != modern);
    assert_eq!(hash(&[Classic20_10, Modern, Classic20_10]), both);
    // Where the dialects select the same files, the dialect leaves no trace.
    std::fs::write(root.join(".dockerignore"), "*.log\n").unwrap();
    let before = hash_before_dialects(root, &args);
    assert_eq!(hash(&[Modern]), before);
    assert_eq!(hash(&[Classic20_10, Modern]), before);
}

#[test]
fn the_plan_resolves_tags_against_the_name() {
    let ctx = test_ctx();
    let args = ImageArgs {
        name: "reg.io/team/app:v1".into(),
        tags: Some(vec!["v2".into(), "reg.io/other:x".into(), "v1".into()]),
        context: Some("app".into()),
        network: Some("default".into()),
        context_hash: Some("0123456789abcdef0123".into()),
        registry: Some(Registry {
            server: "reg.io".into(),
            username: Some("u".into()),
            password: None,
        }),
        ..ImageArgs::default()
    };
    let plan = build_plan(&ctx, &args, false).unwrap();
    let tags: Vec<String> = plan.push_tags.iter().map(|r| r.to_string()).collect();
    assert_eq!(
        tags,
        vec!["reg.io/team/app:v1", "reg.io/team/app:v2", "reg.io/other:x"]
    );
    assert_eq!(plan.local_tag(), "reg.io/team/app:v1");
    assert_eq!(plan.context_dir, Path::new("/prog/app"));
    assert_eq!(
        plan.network, None,
        "the daemon's default is no network option"
    );
    assert!(
        plan.login.is_none(),
        "a username without a password is no login"
    );
    assert_eq!(plan.context_tag.as_deref(), Some("ctx-0123456789abcdef"));
    let no_cache = ImageArgs {
        no_cache: true,
        ..args.clone()
    };
    assert_eq!(
        build_plan(&ctx, &no_cache, false).unwrap().context_tag,
        None
    );
    assert_eq!(
        build_plan(&ctx, &args, true).unwrap().context_tag,
        None,
        "a secret hash is never published"
    );
}

#[test]
fn the_plan_carries_secrets_ssh_hosts_and_pull() {
    let ctx = test_ctx();
    let args = ImageArgs {
        name: "reg.io/team/app".into(),
        context: Some(".".into()),
        secrets: Some([("npmrc".to_string(), "tok".to_string())].into()),
        ssh: Some(vec![
            SshInput::default(),
            SshInput {
                id: Some("deploy".into()),
                paths: Some(vec!["keys/id_ed25519".into(), "/abs/agent.sock".into()]),
            },
        ]),
        add_hosts: Some(vec!["db:10.0.0.2".into()]),
        pull: true,
        ..ImageArgs::default()
    };
    let plan = build_plan(&ctx, &args, false).unwrap();
    assert_eq!(plan.secrets.0["npmrc"], "tok");
    assert_eq!(
        plan.ssh,
        vec![
            SshForward {
                id: "default".into(),
                paths: vec![],
            },
            SshForward {
                id: "deploy".into(),
                paths: vec![
                    PathBuf::from("/prog/keys/id_ed25519"),
                    PathBuf::from("/abs/agent.sock")
                ],
            },
        ]
    );
    assert_eq!(plan.add_hosts, vec!["db:10.0.0.2"]);
    assert!(plan.pull);
    let none = build_plan(
        &ctx,
        &ImageArgs {
            name: "a/b".into(),
            ..ImageArgs::default()
        },
        false,
    )
    .unwrap();
    assert!(none.secrets.0.is_empty() && none.ssh.is_empty() && none.add_hosts.is_empty());
    assert!(!none.pull);
}

#[test]
fn extra_hosts_are_host_colon_ip() {
    for good in [
        "db:10.0.0.2",
        "db.internal:192.168.1.1",
        "v6:2001:db8::1",
        "v6:::1",
        "gw:host-gateway",
    ] {
        validate_add_host(good).unwrap();
    }
    for bad in [
        "db",
        ":10.0.0.2",
        "db:",
        "db:10.0.0",
        "db:[::1]",
        "my host:10.0.0.2",
        "db=10.0.0.2",
        "db:example.com",
    ] {
        let e = validate_add_host(bad).expect_err(bad).to_string();
        assert!(e.contains("host:ip"), "{e}");
    }
}

fn props(i: &Inputs<ImageArgs>) -> Vec<String> {
    validate(i)
        .into_iter()
        .map(|f| f.property.to_string())
        .collect()
}

#[test]
fn secrets_are_checked_without_quoting_a_value() {
    let big = "s".repeat(MAX_SECRET_BYTES + 1);
    let args = ImageArgs {
        name: "a/b".into(),
        secrets: Some(
            [
                ("".to_string(), "v".to_string()),
                ("ok.id_-1".to_string(), "s".repeat(MAX_SECRET_BYTES)),
                ("a b".to_string(), "v".to_string()),
                ("big".to_string(), big.clone()),
            ]
            .into(),
        ),
        ..ImageArgs::default()
    };
    let f = validate(&inputs(args.clone()));
    let names: Vec<String> = f.iter().map(|f| f.property.to_string()).collect();
    assert_eq!(names, vec!["secrets", "secrets[\"a b\"]", "secrets.big"]);
    assert!(f[2].reason.contains("500 KiB"), "{}", f[2].reason);
    assert!(f.iter().all(|f| !f.reason.contains("sss")));
    // A value not known yet is not judged; the ids still are.
    let mut i = inputs(args.clone());
    i.unknowns.insert(PropertyPath::keys(&["secrets", "big"]));
    assert_eq!(props(&i), vec!["secrets", "secrets[\"a b\"]"]);
    // The whole map unknown: nothing is.
    let mut i = inputs(args);
    i.unknowns.insert(PropertyPath::keys(&["secrets"]));
    assert!(props(&i).is_empty());
}

#[test]
fn ssh_ids_are_unique_and_not_empty() {
    let entry = |id: Option<&str>| SshInput {
        id: id.map(str::to_string),
        paths: None,
    };
    let args = ImageArgs {
        name: "a/b".into(),
        ssh: Some(vec![
            entry(None),
            entry(Some("git")),
            entry(Some("default")),
            entry(Some("")),
            entry(Some("git")),
        ]),
        ..ImageArgs::default()
    };
    let i = inputs(args.clone());
    assert_eq!(props(&i), vec!["ssh[2].id", "ssh[3].id", "ssh[4].id"]);
    let mut i = inputs(args);
    i.unknowns.insert(
        PropertyPath::keys(&["ssh"])
            .child(Seg::Index(3))
            .child(Seg::Key("id".into())),
    );
    assert_eq!(props(&i), vec!["ssh[2].id", "ssh[4].id"]);
}

#[test]
fn ssh_paths_must_be_sockets_or_key_files() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("id_ed25519"), "key").expect("write");
    std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
    let _agent =
        std::os::unix::net::UnixListener::bind(dir.path().join("agent.sock")).expect("socket");
    let paths = |ps: &[&str]| SshInput {
        id: None,
        paths: Some(ps.iter().map(|p| p.to_string()).collect()),
    };
    let abs = dir.path().join("agent.sock").display().to_string();
    let args = ImageArgs {
        name: "a/b".into(),
        ssh: Some(vec![
            paths(&["id_ed25519", "missing"]),
            SshInput {
                id: Some("a".into()),
                ..paths(&[&abs])
            },
            SshInput {
                id: Some("b".into()),
                ..paths(&["sub"])
            },
        ]),
        ..ImageArgs::default()
    };
    let f = check_ssh(dir.path(), &inputs(args.clone()));
    let names: Vec<String> = f.iter().map(|f| f.property.to_string()).collect();
    assert_eq!(names, vec!["ssh[0].paths[1]", "ssh[2].paths[0]"], "{f:?}");
    assert!(f[0].reason.contains("missing"), "{}", f[0].reason);
    // Unknown entries are not checked.
    let mut i = inputs(args);
    i.unknowns.insert(
        PropertyPath::keys(&["ssh"])
            .child(Seg::Index(2))
            .child(Seg::Key("paths".into())),
    );
    assert_eq!(check_ssh(dir.path(), &i).len(), 1);
}

#[test]
fn platforms_are_os_arch_variant() {
    for good in [
        "linux/amd64",
        "linux/arm64",
        "linux/arm/v7",
        "windows/amd64",
    ] {
        validate_platform(good).unwrap();
    }
    for bad in [
        "linux",
        "linux/",
        "/amd64",
        "Linux/amd64",
        "linux/arm/v7/x",
        "",
    ] {
        assert!(validate_platform(bad).is_err(), "{bad}");
    }
}

fn inputs(args: ImageArgs) -> Inputs<ImageArgs> {
    Inputs {
        args,
        unknowns: Default::default(),
        secrets: Default::default(),
    }
}

#[test]
fn validation_names_each_property() {
    let args = ImageArgs {
        name: "Bad Name".into(),
        tags: Some(vec!["ok".into(), "-bad".into()]),
        dockerfile: Some("Dockerfile".into()),
        dockerfile_inline: Some("FROM scratch".into()),
        platforms: Some(vec!["linux".into()]),
        network: Some("bridge0".into()),
        registry: Some(Registry {
            server: "".into(),
            username: Some("u".into()),
            password: None,
        }),
        context: Some(String::new()),
        ..ImageArgs::default()
    };
    let f = validate(&inputs(args));
    let props: Vec<String> = f.iter().map(|f| f.property.to_string()).collect();
    assert_eq!(
        props,
        vec![
            "name",
            "tags[1]",
            "dockerfileInline",
            "platforms[0]",
            "network",
            "registry.server",
            "registry.password",
            "context"
        ]
    );
}

#[test]
fn validation_catches_what_only_up_would_trip_on() {
    let base = ImageArgs {
        name: "a/b".into(),
        context: Some(".".into()),
        ..ImageArgs::default()
    };
    let props = |args: ImageArgs| -> Vec<String> {
        validate(&inputs(args))
            .into_iter()
            .map(|f| f.property.to_string())
            .collect()
    };
    assert_eq!(props(base.clone()), Vec::<String>::new());
    let bad = [
        ImageArgs {
            dockerfile_inline: Some(" \n".into()),
            ..base.clone()
        },
        ImageArgs {
            name: "[:5000/app".into(),
            ..base.clone()
        },
        ImageArgs {
            name: format!("a/b@sha256:{}", "0".repeat(64)),
            ..base.clone()
        },
    ];
    for (args, want) in bad.into_iter().zip(["dockerfileInline", "name", "name"]) {
        assert_eq!(props(args), vec![want]);
    }
    for (server, ok) in [
        ("https://", false),
        ("http:///v2/", false),
        ("https://reg istry", false),
        ("https://[::1", false),
        ("ghcr.io", true),
        ("https://123.dkr.ecr.us-east-1.amazonaws.com", true),
        ("https://index.docker.io/v1/", true),
        ("[::1]:5000", true),
    ] {
        let args = ImageArgs {
            registry: Some(Registry {
                server: server.into(),
                username: Some("u".into()),
                password: Some("p".into()),
            }),
            ..base.clone()
        };
        let want: Vec<String> = if ok {
            vec![]
        } else {
            vec!["registry.server".into()]
        };
        assert_eq!(props(args), want, "{server}");
    }
}

#[test]
fn a_dockerfile_the_os_refuses_is_reported_under_dockerfile() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\n").expect("write");
    let with = |dockerfile: &str| ImageArgs {
        name: "a/b".into(),
        dockerfile: Some(dockerfile.into()),
        ..ImageArgs::default()
    };
    for bad in ["Docker\0file", "sub\0dir/Dockerfile", "missing"] {
        let f = open_context(dir.path(), &with(bad)).expect_err(bad);
        assert_eq!(f.property, "dockerfile", "{bad}: {}", f.reason);
    }
    // A context directory that does not exist is the context's fault.
    let f = open_context(&dir.path().join("nope"), &with("Dockerfile")).expect_err("root");
    assert_eq!(f.property, "context");
}

#[test]
fn unknown_values_are_not_validated() {
    let mut i = inputs(ImageArgs {
        name: String::new(),
        context: Some(".".into()),
        ..ImageArgs::default()
    });
    i.unknowns
        .insert(crate::path::PropertyPath::keys(&["name"]));
    assert!(validate(&i).is_empty());
}

#[test]
fn named_contexts_are_hashed_each_with_its_own_dockerignore_and_diffed_by_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for (path, text) in [
        (
            "app/Dockerfile",
            "FROM scratch\nCOPY --from=assets . /assets/\n",
        ),
        ("app/.dockerignore", "*.txt\n"),
        ("assets/.dockerignore", "*.log\n"),
        (
            "assets/notes.txt",
            "kept: the main context's *.txt does not apply here",
        ),
        (
            "assets/debug.log",
            "excluded by the named context's own file",
        ),
    ] {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let app = root.join("app");
    let args = ImageArgs {
        name: "reg.io/app".into(),
        build_contexts: Some([("assets".to_string(), "assets".to_string())].into()),
        ..ImageArgs::default()
    };
    let named = named_contexts(root, args.build_contexts.as_ref());
    assert_eq!(
        named,
        [(
            "assets".to_string(),
            docker::NamedContext::Local(root.join("assets"))
        )]
        .into()
    );
    let digest = |named: &std::collections::BTreeMap<String, docker::NamedContext>| {
        compute_hash(&app, &args, &[], named).unwrap()
    };
    let without = ImageArgs {
        build_contexts: None,
        ..args.clone()
    };
    // No named contexts: the hash every existing stack has.
    assert_eq!(
        compute_hash(&app, &without, &[], &Default::default())
            .unwrap()
            .hash,
        hash_before_dialects(&app, &without)
    );
    let before = digest(&named);
    assert_ne!(before.hash, hash_before_dialects(&app, &without));
    let paths: Vec<&str> = before.files.iter().map(|(p, _)| p.as_str()).collect();
    assert!(paths.contains(&"[context assets] notes.txt"), "{paths:?}");
    assert!(!paths.iter().any(|p| p.contains("debug.log")), "{paths:?}");

    // A file its own .dockerignore excludes changes nothing; one it keeps changes the hash
    // and shows in the diff by file.
    std::fs::write(root.join("assets/debug.log"), "more").unwrap();
    assert_eq!(digest(&named).hash, before.hash);
    std::fs::write(root.join("assets/notes.txt"), "edited").unwrap();
    let after = digest(&named);
    assert_ne!(after.hash, before.hash);
    assert_eq!(
        context::changed_paths(&before.files, &after.files),
        ["[context assets] notes.txt"]
    );

    // The name is part of the image (the Dockerfile spells it); an image reference is
    // hashed as its text.
    let renamed: std::collections::BTreeMap<_, _> = [(
        "other".to_string(),
        docker::NamedContext::Local(root.join("assets")),
    )]
    .into();
    assert_ne!(digest(&renamed).hash, after.hash);
    let image = |r: &str| -> std::collections::BTreeMap<_, _> {
        [("assets".to_string(), docker::NamedContext::Image(r.into()))].into()
    };
    assert_ne!(
        digest(&image("reg.io/a:1")).hash,
        digest(&image("reg.io/a:2")).hash
    );

    // A directory that is not there is a failure on its entry.
    let gone: std::collections::BTreeMap<_, _> = [(
        "assets".to_string(),
        docker::NamedContext::Local(root.join("nope")),
    )]
    .into();
    let f = compute_hash(&app, &args, &[], &gone).unwrap_err();
    assert_eq!(f.property.to_string(), "buildContexts.assets");
    assert!(f.reason.contains("nope"), "{}", f.reason);
}

#[test]
fn named_contexts_are_validated_by_name_and_value() {
    let args = ImageArgs {
        name: "a/b".into(),
        build_contexts: Some(
            [
                ("", "dir"),
                ("a b", "dir"),
                ("ok", "dir"),
                ("img", "docker-image://reg.io/base:1"),
                ("badimg", "docker-image://Bad Ref"),
                ("git", "https://github.com/x/y.git#main:sub"),
                ("scp", "git@github.com:x/y.git"),
                ("file", "https://example.com/a.tar.gz"),
                ("oci", "oci-layout://layouts/app:1.2@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"),
                ("sftp", "sftp://host/x"),
                ("nohost", "https:///x.git"),
                ("empty", ""),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ),
        ..ImageArgs::default()
    };
    assert_eq!(
        props(&inputs(args.clone())),
        [
            "buildContexts",
            "buildContexts[\"a b\"]",
            "buildContexts.badimg",
            "buildContexts.empty",
            "buildContexts.nohost",
            "buildContexts.sftp",
        ]
    );
    let f = validate(&inputs(args.clone()));
    assert!(
        f.iter()
            .any(|f| f.reason.contains("sftp:// contexts are not supported")),
        "{f:?}"
    );
    let mut i = inputs(args);
    i.unknowns.insert(PropertyPath::keys(&["buildContexts"]));
    assert!(props(&i).is_empty());
}
