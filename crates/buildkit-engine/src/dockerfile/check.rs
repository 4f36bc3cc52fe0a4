//! The checks (see the module docs of `dockerfile`). Failures in a stage are reported only
//! when the stage is certainly built: the target and what it reaches through names the
//! checker could resolve. Parse errors count anywhere, as in BuildKit.

use std::collections::{BTreeMap, BTreeSet};

use super::lex::{Var, expand};
use super::parse::{Instruction, ParseError, parse, whitespace_words, words};
use super::{CheckOptions, ContextView, Finding, Input, Report, Subject};

const INSTRUCTIONS: [&str; 18] = [
    "add",
    "arg",
    "cmd",
    "copy",
    "entrypoint",
    "env",
    "expose",
    "from",
    "healthcheck",
    "label",
    "maintainer",
    "onbuild",
    "run",
    "shell",
    "stopsignal",
    "user",
    "volume",
    "workdir",
];

/// Args BuildKit sets itself: declaring them without a value gives a value we do not know.
const AUTOMATIC_ARGS: [&str; 9] = [
    "TARGETPLATFORM",
    "TARGETOS",
    "TARGETARCH",
    "TARGETVARIANT",
    "BUILDPLATFORM",
    "BUILDOS",
    "BUILDARCH",
    "BUILDVARIANT",
    "TARGETSTAGE",
];

/// Build args BuildKit reads without an `ARG` (never "unused").
fn predefined_arg(name: &str) -> bool {
    let proxy = [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "FTP_PROXY",
        "NO_PROXY",
        "ALL_PROXY",
    ];
    proxy.iter().any(|p| p.eq_ignore_ascii_case(name))
        || name.starts_with("BUILDKIT_")
        || name == "SOURCE_DATE_EPOCH"
        || AUTOMATIC_ARGS.contains(&name)
}

/// The syntax directives that name the built-in frontend (or a release of it: the same
/// rules, which only ever grew).
fn builtin_syntax(s: &str) -> bool {
    let s = s.split_whitespace().next().unwrap_or("");
    let s = s.split('@').next().unwrap_or(s);
    let s = s.strip_prefix("docker.io/").unwrap_or(s);
    match s.strip_prefix("docker/dockerfile") {
        Some("") => true,
        Some(tag) => tag.strip_prefix(':').is_some_and(|t| {
            t == "latest"
                || t.split('.')
                    .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        }),
        None => false,
    }
}

struct Out {
    findings: Vec<Finding>,
}

impl Out {
    fn push(&mut self, failure: bool, subject: Subject, line: Option<usize>, message: String) {
        self.findings.push(Finding {
            failure,
            subject,
            line,
            message,
        });
    }
}

/// Checks `text` against the context (`None`: sources are not checked) and the options.
pub fn check(text: &str, ctx: Option<&ContextView<'_>>, opts: &CheckOptions) -> Report {
    let mut out = Out {
        findings: Vec::new(),
    };
    let parsed = match parse(text) {
        Ok(p) => p,
        Err(ParseError { line, message }) => {
            let line = (line > 0).then_some(line);
            // A syntax directive comes before anything the built-in parser refuses.
            out.push(true, Subject::Dockerfile, line, message);
            return Report {
                findings: out.findings,
                unchecked: None,
            };
        }
    };
    if let Some(s) = &parsed.syntax
        && !builtin_syntax(s)
    {
        return unchecked(format!(
            "the Dockerfile names its own frontend (`# syntax={s}`): it is not checked in preview"
        ));
    }
    if let Input::Given(args) = &opts.build_args
        && args.contains_key("BUILDKIT_SYNTAX")
    {
        return unchecked(
            "the build arg BUILDKIT_SYNTAX names another frontend: the Dockerfile is not checked in preview"
                .to_owned(),
        );
    }
    if !instructions_valid(&parsed.instructions, parsed.escape, &mut out) {
        return Report {
            findings: out.findings,
            unchecked: None,
        };
    }
    let mut model = Model::new(&parsed.instructions, parsed.escape, opts, ctx);
    model.run(&mut out);
    Report {
        findings: out.findings,
        unchecked: None,
    }
}

fn unchecked(why: String) -> Report {
    Report {
        findings: Vec::new(),
        unchecked: Some(why),
    }
}

/// The checks of BuildKit's instruction parser, over every instruction; false when one
/// failed (then nothing else is checked: BuildKit stops there too).
fn instructions_valid(all: &[Instruction], escape: char, out: &mut Out) -> bool {
    let before = out.findings.len();
    let mut fail = |i: &Instruction, msg: String| {
        out.push(true, Subject::Dockerfile, Some(i.line), msg);
    };
    let mut stages = 0;
    for i in all {
        if let Some(msg) = instruction_error(i, escape) {
            fail(i, msg);
            break;
        }
        if i.cmd == "from" {
            stages += 1;
        } else if stages == 0 && i.cmd != "arg" {
            fail(i, "no build stage in current context".to_owned());
            break;
        }
    }
    if out.findings.len() == before && stages == 0 {
        out.push(
            true,
            Subject::Dockerfile,
            None,
            "dockerfile contains no stages to build".to_owned(),
        );
    }
    out.findings.len() == before
}

/// The flags an instruction takes in today's BuildKit (`None`: not checked).
fn known_flags(cmd: &str) -> Option<&'static [&'static str]> {
    Some(match cmd {
        "copy" => &["chown", "from", "chmod", "link", "exclude", "parents"],
        "add" => &[
            "chown",
            "chmod",
            "link",
            "keep-git-dir",
            "checksum",
            "unpack",
            "exclude",
        ],
        "from" => &["platform"],
        "cmd" | "entrypoint" | "workdir" | "onbuild" | "shell" => &[],
        "healthcheck" => &[
            "interval",
            "timeout",
            "start-period",
            "start-interval",
            "retries",
        ],
        _ => return None,
    })
}

fn instruction_error(i: &Instruction, escape: char) -> Option<String> {
    let upper = i.cmd.to_ascii_uppercase();
    if !INSTRUCTIONS.contains(&i.cmd.as_str()) {
        return Some(format!("unknown instruction: {upper}"));
    }
    if let Some(known) = known_flags(&i.cmd) {
        for f in &i.flags {
            let name = f.trim_start_matches('-');
            let name = name.split('=').next().unwrap_or(name);
            if !known.contains(&name) {
                return Some(format!("unknown flag: {name}"));
            }
        }
    }
    let empty = i.rest.is_empty();
    let list = || match &i.json {
        Some(j) => j.clone(),
        None => whitespace_words(&i.rest),
    };
    match i.cmd.as_str() {
        "from" => {
            let args = whitespace_words(&i.rest);
            match args.len() {
                1 => None,
                3 if args[1].eq_ignore_ascii_case("as") => {
                    let name = args[2].to_ascii_lowercase();
                    let mut c = name.chars();
                    let ok = c.next().is_some_and(|c| c.is_ascii_lowercase())
                        && c.all(|c| {
                            c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c)
                        });
                    (!ok).then(|| {
                        format!(
                            "invalid name for build stage: \"{}\", name can't start with a number or contain symbols",
                            args[2]
                        )
                    })
                }
                _ => Some("FROM requires either one or three arguments".to_owned()),
            }
        }
        "copy" | "add" => (list().len() < 2).then(|| {
            format!(
                "{upper} requires at least two arguments, but only one was provided. Destination could not be determined"
            )
        }),
        "workdir" | "user" | "maintainer" | "stopsignal" if empty => {
            Some(format!("{upper} requires exactly one argument"))
        }
        "expose" | "arg" | "onbuild" | "healthcheck" | "env" | "label" | "volume" | "shell"
            if empty =>
        {
            Some(format!("{upper} requires at least one argument"))
        }
        "volume" if list().iter().any(|v| v.trim().is_empty()) => {
            Some("VOLUME specified can not be an empty string".to_owned())
        }
        "env" | "label" => name_value_error(&upper, &i.rest, escape),
        "arg" => words(&i.rest, escape)
            .iter()
            .any(|w| w.starts_with('='))
            .then(|| "ARG names can not be blank".to_owned()),
        "onbuild" => match i.trigger.as_ref().map(|t| t.cmd.as_str()) {
            Some("onbuild") => Some("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".to_owned()),
            Some(t @ ("from" | "maintainer")) => Some(format!(
                "{} isn't allowed as an ONBUILD trigger",
                t.to_ascii_uppercase()
            )),
            _ => None,
        },
        _ => None,
    }
}

/// BuildKit's `parseNameVal` for ENV and LABEL.
fn name_value_error(upper: &str, rest: &str, escape: char) -> Option<String> {
    let ws = words(rest, escape);
    let first = ws.first()?;
    if !first.contains('=') {
        return (whitespace_words(rest).len() < 2)
            .then(|| format!("{upper} must have two arguments"));
    }
    ws.iter()
        .find(|w| !w.contains('='))
        .map(|w| format!("Syntax error - can't find = in \"{w}\". Must be of the form: name=value"))
}

/// Where a stage starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Root {
    Scratch,
    /// An image, a named context, or a name we could not resolve: its environment is unknown.
    Opaque,
}

#[derive(Debug, Clone)]
struct Stage {
    name: Option<String>,
    line: usize,
    body: Vec<usize>,
    base_raw: String,
    /// Earlier stage this one is `FROM`.
    parent: Option<usize>,
    root: Root,
    /// Replaced by a named context of the same name.
    replaced: bool,
    env: BTreeMap<String, Var>,
    /// Stages it certainly needs.
    deps: BTreeSet<usize>,
    /// Failures, reported when the stage is certainly built.
    pending: Vec<(Subject, usize, String)>,
    /// Warnings, reported when the stage is certainly built.
    pending_warnings: Vec<(Subject, usize, String)>,
}

struct Model<'a> {
    ins: &'a [Instruction],
    escape: char,
    opts: &'a CheckOptions,
    ctx: Option<&'a ContextView<'a>>,
    stages: Vec<Stage>,
    /// Global (meta) args.
    meta: BTreeMap<String, Var>,
    declared_args: BTreeSet<String>,
    mounted_secrets: BTreeSet<String>,
    /// Some mount's id could not be known: "never mounted" cannot be said.
    secrets_uncertain: bool,
    /// Some stage reference could not be resolved: reachability is only a lower bound.
    edges_uncertain: bool,
}

fn build_arg(opts: &CheckOptions, name: &str) -> Option<Var> {
    match &opts.build_args {
        Input::Given(m) => m.get(name).map(|v| match v {
            Some(v) => Var::Set(v.clone()),
            None => Var::Unknown,
        }),
        Input::Unset => None,
        Input::Unknown => Some(Var::Unknown),
    }
}

impl<'a> Model<'a> {
    fn new(
        ins: &'a [Instruction],
        escape: char,
        opts: &'a CheckOptions,
        ctx: Option<&'a ContextView<'a>>,
    ) -> Self {
        Model {
            ins,
            escape,
            opts,
            ctx,
            stages: Vec::new(),
            meta: BTreeMap::new(),
            declared_args: BTreeSet::new(),
            mounted_secrets: BTreeSet::new(),
            secrets_uncertain: false,
            edges_uncertain: false,
        }
    }

    fn find_stage(&self, name: &str, before: usize) -> Option<usize> {
        let lower = name.to_ascii_lowercase();
        self.stages[..before.min(self.stages.len())]
            .iter()
            .rposition(|s| s.name.as_deref() == Some(lower.as_str()))
    }

    fn run(&mut self, out: &mut Out) {
        let escape = self.escape;
        // Stages and meta args.
        for (k, i) in self.ins.iter().enumerate() {
            if i.cmd == "from" {
                let args = whitespace_words(&i.rest);
                self.stages.push(Stage {
                    name: args.get(2).map(|n| n.to_ascii_lowercase()),
                    line: i.line,
                    body: Vec::new(),
                    base_raw: args[0].clone(),
                    parent: None,
                    root: Root::Opaque,
                    replaced: false,
                    env: BTreeMap::new(),
                    deps: BTreeSet::new(),
                    pending: Vec::new(),
                    pending_warnings: Vec::new(),
                });
            } else if let Some(s) = self.stages.last_mut() {
                s.body.push(k);
            } else {
                // A global ARG.
                for w in words(&i.rest, escape) {
                    let (key, default) = match w.split_once('=') {
                        Some((k, v)) => (k.to_owned(), Some(v.to_owned())),
                        None => (w.clone(), None),
                    };
                    self.declared_args.insert(key.clone());
                    let meta = self.meta.clone();
                    let value = build_arg(self.opts, &key).unwrap_or_else(|| match default {
                        Some(d) => meta_expand(&d, escape, &meta),
                        None if AUTOMATIC_ARGS.contains(&key.as_str()) => Var::Unknown,
                        None => Var::Unset,
                    });
                    self.meta.insert(key, value);
                }
            }
        }
        for n in 0..self.stages.len() {
            self.stage(n);
        }
        self.conclude(out);
    }

    /// Resolves stage `n`'s base and walks its instructions.
    fn stage(&mut self, n: usize) {
        let escape = self.escape;
        let (base_raw, line) = (self.stages[n].base_raw.clone(), self.stages[n].line);
        if let Some(name) = &self.stages[n].name
            && self.opts.named_contexts.contains(name)
        {
            self.stages[n].replaced = true;
            return;
        }
        let meta = self.meta.clone();
        let base = match meta_expand(&base_raw, escape, &meta) {
            Var::Set(b) => Some(b),
            Var::Unset => Some(String::new()),
            Var::Unknown => None,
        };
        match base {
            None => self.edges_uncertain = true,
            Some(b) if b.is_empty() => self.stages[n].pending.push((
                Subject::Dockerfile,
                line,
                format!("base name ({base_raw}) should not be blank"),
            )),
            Some(b) => {
                if let Some(p) = self.find_stage(&b, n) {
                    self.stages[n].parent = Some(p);
                    self.stages[n].deps.insert(p);
                    self.stages[n].root = self.stages[p].root;
                    self.stages[n].env = self.stages[p].env.clone();
                } else if b.eq_ignore_ascii_case("scratch") {
                    self.stages[n].root = Root::Scratch;
                } else if self.opts.named_contexts.contains(&b) {
                    self.stages[n].root = Root::Opaque;
                } else if let Some(later) = self.find_stage(&b, self.stages.len())
                    && later >= n
                {
                    let later_line = self.stages[later].line;
                    self.stages[n].pending_warnings.push((
                        Subject::Dockerfile,
                        line,
                        format!(
                            "`FROM {b}` names a stage defined later (line {later_line}): BuildKit reads it as the image `{b}`, not that stage"
                        ),
                    ));
                }
            }
        }
        let mut args: BTreeMap<String, Var> = BTreeMap::new();
        // The ONBUILD triggers of a parent stage run first, in this stage.
        if let Some(p) = self.stages[n].parent {
            let ins = self.ins;
            for k in self.stages[p].body.clone() {
                if let Some(t) = &ins[k].trigger
                    && matches!(t.cmd.as_str(), "copy" | "add" | "run")
                {
                    match t.cmd.as_str() {
                        "run" => self.run_mounts(n, &args, t),
                        _ => self.copy(n, &args, t),
                    }
                }
            }
        }
        let body = self.stages[n].body.clone();
        for k in body {
            let i = &self.ins[k];
            match i.cmd.as_str() {
                "arg" => {
                    for w in words(&i.rest, escape) {
                        let (key, default) = match w.split_once('=') {
                            Some((k, v)) => (k.to_owned(), Some(v.to_owned())),
                            None => (w.clone(), None),
                        };
                        self.declared_args.insert(key.clone());
                        let value = match build_arg(self.opts, &key) {
                            Some(v) => v,
                            None => match default {
                                Some(d) => {
                                    self.expand_in(n, &args, &d).map_or(Var::Unknown, Var::Set)
                                }
                                None if AUTOMATIC_ARGS.contains(&key.as_str()) => Var::Unknown,
                                None => self.meta.get(&key).cloned().unwrap_or(Var::Unset),
                            },
                        };
                        args.insert(key, value);
                    }
                }
                "env" => {
                    for (key, value) in env_pairs(&i.rest, escape) {
                        let v = self
                            .expand_in(n, &args, &value)
                            .map_or(Var::Unknown, Var::Set);
                        self.stages[n].env.insert(key, v);
                    }
                }
                "copy" | "add" => self.copy(n, &args, i),
                "run" => self.run_mounts(n, &args, i),
                _ => {}
            }
        }
    }

    fn lookup(&self, n: usize, args: &BTreeMap<String, Var>, name: &str) -> Var {
        let s = &self.stages[n];
        if let Some(v) = s.env.get(name) {
            return v.clone();
        }
        match s.root {
            // The image's own environment may set any name (and beats an ARG).
            Root::Opaque => Var::Unknown,
            Root::Scratch if name == "PATH" => Var::Unknown,
            Root::Scratch => args.get(name).cloned().unwrap_or(Var::Unset),
        }
    }

    fn expand_in(&self, n: usize, args: &BTreeMap<String, Var>, word: &str) -> Option<String> {
        expand(word, self.escape, &|name| self.lookup(n, args, name))
    }

    /// A `--from`/`from=` reference from stage `n`: a dependency, a failure, or a warning.
    fn reference(&mut self, n: usize, line: usize, what: &str, from: &str, sources: &[String]) {
        if from.find('$').is_some_and(|i| i + 1 < from.len()) {
            self.stages[n].pending.push((
                Subject::Dockerfile,
                line,
                format!("{what}: variable expansion is not supported for --from; define a stage with `FROM ${{...}} AS name` using a global ARG instead"),
            ));
            return;
        }
        if let Ok(index) = from.parse::<usize>() {
            if index >= self.stages.len() {
                self.stages[n].pending.push((
                    Subject::Dockerfile,
                    line,
                    format!("{what}: invalid stage index {index}"),
                ));
            } else if index == n {
                self.stages[n].pending.push((
                    Subject::Dockerfile,
                    line,
                    format!("{what}: circular dependency: stage {index} is the stage itself"),
                ));
            } else if index < n {
                self.stages[n].deps.insert(index);
            } else if let Some(msg) = self.forward(index, sources) {
                self.stages[n]
                    .pending
                    .push((Subject::Dockerfile, line, format!("{what}: {msg}")));
            } else {
                self.edges_uncertain = true;
                self.stages[n].pending_warnings.push((
                    Subject::Dockerfile,
                    line,
                    format!("{what}: stage {index} is defined later; BuildKit copies only from stages defined before"),
                ));
            }
            return;
        }
        if self.opts.named_contexts.contains(from) {
            return;
        }
        let lower = from.to_ascii_lowercase();
        if let Some(p) = self.find_stage(from, n) {
            self.stages[n].deps.insert(p);
        } else if self.stages[n].name.as_deref() == Some(lower.as_str()) {
            self.stages[n].pending.push((
                Subject::Dockerfile,
                line,
                format!("{what}: circular dependency: `{from}` is the stage itself"),
            ));
        } else if let Some(later) = self.find_stage(from, self.stages.len()) {
            let later_line = self.stages[later].line;
            if let Some(msg) = self.forward(later, sources) {
                self.stages[n]
                    .pending
                    .push((Subject::Dockerfile, line, format!("{what}: {msg}")));
                return;
            }
            self.edges_uncertain = true;
            self.stages[n].pending_warnings.push((
                Subject::Dockerfile,
                line,
                format!(
                    "{what}: `{from}` is a stage defined later (line {later_line}); BuildKit copies only from stages defined before"
                ),
            ));
        } else {
            let names = self.stage_names();
            self.stages[n].pending_warnings.push((
                Subject::Dockerfile,
                line,
                format!(
                    "{what}: `{from}` is not a stage of this Dockerfile ({}), so BuildKit pulls it as an image",
                    if names.is_empty() { "it has no named stages".to_owned() } else { format!("its stages: {}", names.join(", ")) }
                ),
            ));
        }
    }

    /// A `--from` naming stage `later`, defined after the current one, that fails on every
    /// BuildKit: today's refuses any forward reference; dockerd 20.10 copies from the later
    /// stage's base, so it fails only when that is `scratch` and a named path is copied.
    fn forward(&self, later: usize, sources: &[String]) -> Option<String> {
        let base = &self.stages[later].base_raw;
        let scratch = matches!(meta_expand(base, self.escape, &self.meta), Var::Set(b) if b.eq_ignore_ascii_case("scratch"));
        let named = sources
            .iter()
            .find(|s| !s.contains(['$', '*', '?', '[']) && !clean(s).is_empty())?;
        scratch.then(|| {
            format!(
                "stage `{}` (line {}) is defined later: BuildKit copies only from stages defined before (and dockerd 20.10 copies from its base, `scratch`, which has no `{named}`)",
                self.stages[later].name.clone().unwrap_or_else(|| later.to_string()),
                self.stages[later].line
            )
        })
    }

    fn stage_names(&self) -> Vec<String> {
        self.stages.iter().filter_map(|s| s.name.clone()).collect()
    }

    fn copy(&mut self, n: usize, args: &BTreeMap<String, Var>, i: &Instruction) {
        let upper = i.cmd.to_ascii_uppercase();
        let mut from = None;
        for f in &i.flags {
            let (name, value) = f
                .trim_start_matches('-')
                .split_once('=')
                .unwrap_or((f.trim_start_matches('-'), ""));
            match name {
                "from" => from = Some(value.to_owned()),
                // The `/./` pivots and patterns of --parents are not modelled.
                "parents" if value != "false" => return,
                _ => {}
            }
        }
        let mut list = match &i.json {
            Some(j) => j.clone(),
            None => whitespace_words(&i.rest),
        };
        list.pop();
        if let Some(from) = from {
            self.reference(n, i.line, &format!("{upper} --from={from}"), &from, &list);
            return;
        }
        for src in list {
            let heredoc = src
                .trim_start_matches(|c: char| c.is_ascii_digit())
                .starts_with("<<");
            if heredoc && !i.heredocs.is_empty() {
                continue;
            }
            // Remote sources (ADD fetches them; COPY refuses them with its own error).
            if src.contains("://") || src.starts_with("git@") {
                continue;
            }
            let Some(path) = self.expand_in(n, args, &src) else {
                continue;
            };
            self.source(n, i.line, &format!("{upper} {src}"), &path);
        }
    }

    /// A source from the main context: present, or a pending failure.
    fn source(&mut self, n: usize, line: usize, what: &str, path: &str) {
        let Some(ctx) = self.ctx else { return };
        let wildcard = path.contains(['*', '?', '[']);
        let rel = clean(path);
        if wildcard {
            if !matches_any(ctx, &rel) {
                self.stages[n].pending_warnings.push((
                    Subject::Dockerfile,
                    line,
                    format!("{what}: `{path}` matches nothing in the build context (BuildKit copies nothing)"),
                ));
            }
            return;
        }
        if ctx.symlinks.binary_search(&rel).is_ok() {
            // BuildKit follows a symlink source: its target must be in the context.
            if let Ok(target) = std::fs::read_link(ctx.root.join(&rel)) {
                let target = target.to_string_lossy();
                let resolved = match (target.starts_with('/'), rel.rsplit_once('/')) {
                    (true, _) | (false, None) => clean(&target),
                    (false, Some((dir, _))) => clean(&format!("{dir}/{target}")),
                };
                if !resolved.is_empty()
                    && !present(ctx, &resolved)
                    && !through_symlink(ctx, &resolved)
                {
                    self.stages[n].pending.push((
                        Subject::Dockerfile,
                        line,
                        format!("{what}: `{rel}` is a symlink to `{target}`, which is not in the build context"),
                    ));
                }
            }
            return;
        }
        if rel.is_empty() || present(ctx, &rel) || through_symlink(ctx, &rel) {
            return;
        }
        let why = match ctx.ignore.excluded_by(&rel) {
            Some((l, pattern)) if ctx.root.join(&rel).symlink_metadata().is_ok() => format!(
                "it is excluded by `{pattern}` on line {l} of {}",
                ctx.ignore_file.unwrap_or(".dockerignore")
            ),
            _ if ctx.root.join(&rel).symlink_metadata().is_ok() => {
                "it is left out of the context the builder is sent".to_owned()
            }
            _ => format!("there is no such file in `{}`", ctx.root.display()),
        };
        self.stages[n].pending.push((
            Subject::Dockerfile,
            line,
            format!("{what}: `{rel}` is not in the build context: {why}"),
        ));
    }

    fn run_mounts(&mut self, n: usize, args: &BTreeMap<String, Var>, i: &Instruction) {
        for f in &i.flags {
            let Some(spec) = f.strip_prefix("--mount=") else {
                continue;
            };
            let mut fields = BTreeMap::new();
            for field in spec.split(',') {
                let (k, v) = field.split_once('=').unwrap_or((field, "true"));
                let v = self.expand_in(n, args, v);
                fields.insert(k.trim().to_ascii_lowercase(), v);
            }
            let known = |k: &str| fields.get(k).cloned();
            let ty = match known("type") {
                Some(Some(t)) => t.to_ascii_lowercase(),
                Some(None) => continue,
                None => "bind".to_owned(),
            };
            let required = matches!(known("required"), Some(Some(v)) if v.eq_ignore_ascii_case("true") || v == "1");
            let first =
                |keys: &[&str]| -> Option<Option<String>> { keys.iter().find_map(|k| known(k)) };
            let what = format!("RUN --mount={spec}");
            match ty.as_str() {
                "secret" => {
                    let id = match first(&["id"]).or_else(|| first(&["source", "src"])) {
                        Some(id) => id,
                        None => match first(&["target", "dst", "destination"]) {
                            Some(Some(t)) => Some(t.rsplit('/').next().unwrap_or("").to_owned()),
                            Some(None) => None,
                            None => continue,
                        },
                    };
                    let Some(id) = id else {
                        self.secrets_uncertain = true;
                        continue;
                    };
                    self.mounted_secrets.insert(id.clone());
                    let given = match &self.opts.secrets {
                        Input::Given(s) => s.contains(&id),
                        Input::Unset => false,
                        Input::Unknown => true,
                    };
                    if required && !given {
                        self.stages[n].pending.push((
                            Subject::Secrets,
                            i.line,
                            format!("{what}: the secret `{id}` is required, and `secrets` does not give it"),
                        ));
                    }
                }
                "ssh" => {
                    let Some(id) = first(&["id"]).unwrap_or(Some("default".to_owned())) else {
                        continue;
                    };
                    let given = match &self.opts.ssh {
                        Input::Given(s) => s.contains(&id),
                        Input::Unset => false,
                        Input::Unknown => true,
                    };
                    if !given {
                        let entry = (
                            Subject::Ssh,
                            i.line,
                            if required {
                                format!(
                                    "{what}: the SSH agent `{id}` is required, and `ssh` has no entry with id `{id}`"
                                )
                            } else {
                                format!(
                                    "{what}: `ssh` has no entry with id `{id}`: the RUN runs without an SSH agent"
                                )
                            },
                        );
                        if required {
                            self.stages[n].pending.push(entry);
                        } else {
                            self.stages[n].pending_warnings.push(entry);
                        }
                    }
                }
                "bind" | "cache" => match first(&["from"]) {
                    Some(Some(from)) => self.reference(n, i.line, &what, &from, &[]),
                    Some(None) => self.edges_uncertain = true,
                    None if ty == "bind" => {
                        if let Some(Some(src)) = first(&["source", "src"]) {
                            self.source(n, i.line, &what, &src);
                        }
                    }
                    None => {}
                },
                _ => {}
            }
        }
    }

    fn conclude(&mut self, out: &mut Out) {
        let last = self.stages.len() - 1;
        let target = match &self.opts.target {
            Input::Given(t) => match self.find_stage(t, self.stages.len()) {
                Some(s) => Some(s),
                None => {
                    let names = self.stage_names();
                    out.push(
                        true,
                        Subject::Target,
                        None,
                        format!(
                            "target stage \"{t}\" is not a stage of the Dockerfile ({})",
                            if names.is_empty() {
                                "it has no named stages".to_owned()
                            } else {
                                format!("its stages: {}", names.join(", "))
                            }
                        ),
                    );
                    return;
                }
            },
            Input::Unset => Some(last),
            Input::Unknown => None,
        };
        let mut reachable = BTreeSet::new();
        if let Some(t) = target {
            let mut todo = vec![t];
            while let Some(s) = todo.pop() {
                if reachable.insert(s) {
                    todo.extend(self.stages[s].deps.iter().copied());
                }
            }
        }
        for s in &reachable {
            let st = &self.stages[*s];
            if st.replaced {
                continue;
            }
            for (subject, line, msg) in &st.pending {
                out.push(true, *subject, Some(*line), msg.clone());
            }
            for (subject, line, msg) in &st.pending_warnings {
                out.push(false, *subject, Some(*line), msg.clone());
            }
        }
        if let (Some(t), false) = (target, self.edges_uncertain) {
            for (k, s) in self.stages.iter().enumerate() {
                if !reachable.contains(&k) {
                    let name = s.name.clone().unwrap_or_else(|| format!("{k}"));
                    let tname = self.stages[t]
                        .name
                        .clone()
                        .unwrap_or_else(|| format!("{t}"));
                    out.push(
                        false,
                        Subject::Dockerfile,
                        Some(s.line),
                        format!("stage `{name}` is never used by the target stage `{tname}`: BuildKit skips it"),
                    );
                }
            }
        }
        if let Input::Given(given) = &self.opts.build_args {
            let unused: Vec<&String> = given
                .keys()
                .filter(|k| !self.declared_args.contains(*k) && !predefined_arg(k))
                .collect();
            if !unused.is_empty() {
                out.push(
                    false,
                    Subject::BuildArgs,
                    None,
                    format!(
                        "build arg{} {} never declared by an ARG in the Dockerfile: BuildKit ignores {}",
                        if unused.len() == 1 { "" } else { "s" },
                        unused.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
                            + if unused.len() == 1 { " is" } else { " are" },
                        if unused.len() == 1 { "it" } else { "them" }
                    ),
                );
            }
        }
        if let (Input::Given(given), false) = (&self.opts.secrets, self.secrets_uncertain) {
            let unused: Vec<String> = given
                .iter()
                .filter(|id| !self.mounted_secrets.contains(*id))
                .map(|id| format!("`{id}`"))
                .collect();
            if !unused.is_empty() {
                out.push(
                    false,
                    Subject::Secrets,
                    None,
                    format!(
                        "secret{} {} never mounted by a `RUN --mount=type=secret` in the Dockerfile",
                        if unused.len() == 1 { "" } else { "s" },
                        unused.join(", ") + if unused.len() == 1 { " is" } else { " are" }
                    ),
                );
            }
        }
    }
}

/// A global ARG default or a FROM base, expanded with the meta args only (undeclared names
/// are empty there, as in BuildKit).
fn meta_expand(word: &str, escape: char, meta: &BTreeMap<String, Var>) -> Var {
    match expand(word, escape, &|name| match meta.get(name) {
        Some(v) => v.clone(),
        None if AUTOMATIC_ARGS.contains(&name) => Var::Unknown,
        None => Var::Unset,
    }) {
        Some(v) => Var::Set(v),
        None => Var::Unknown,
    }
}

/// ENV's pairs (the `key value` and the `key=value ...` forms).
fn env_pairs(rest: &str, escape: char) -> Vec<(String, String)> {
    let ws = words(rest, escape);
    match ws.first() {
        Some(first) if !first.contains('=') => {
            let mut parts = rest.splitn(2, [' ', '\t']);
            let key = parts.next().unwrap_or("").to_owned();
            let value = parts.next().unwrap_or("").trim_start().to_owned();
            vec![(key, value)]
        }
        _ => ws
            .iter()
            .filter_map(|w| w.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
            .collect(),
    }
}

/// `path` cleaned within the context root (`..` stops at the root), without a leading `/`.
fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    parts.join("/")
}

fn listed(listing: &[(String, String)], path: &str) -> bool {
    let at = listing.partition_point(|(p, _)| p.as_str() < path);
    match listing.get(at) {
        Some((p, _)) if p == path => true,
        _ => {
            let prefix = format!("{path}/");
            let at = listing.partition_point(|(p, _)| p.as_str() < prefix.as_str());
            listing.get(at).is_some_and(|(p, _)| p.starts_with(&prefix))
        }
    }
}

fn present(ctx: &ContextView<'_>, path: &str) -> bool {
    ctx.listings.iter().any(|l| listed(l, path))
}

/// True when a directory on the way to `path` is a symlink: BuildKit follows it, we do not.
fn through_symlink(ctx: &ContextView<'_>, path: &str) -> bool {
    path.match_indices('/')
        .map(|(i, _)| &path[..i])
        .chain(std::iter::once(path))
        .any(|dir| {
            ctx.symlinks
                .binary_search_by(|s| s.as_str().cmp(dir))
                .is_ok()
        })
}

/// Whether a wildcard source matches any path (Go's `filepath.Match`, component-wise).
fn matches_any(ctx: &ContextView<'_>, pattern: &str) -> bool {
    let depth = pattern.split('/').count();
    ctx.listings.iter().any(|l| {
        l.iter().any(|(p, _)| {
            let pc: Vec<&str> = p.split('/').collect();
            pc.len() >= depth
                && pattern
                    .split('/')
                    .zip(&pc)
                    .all(|(pat, name)| glob(pat.as_bytes(), name.as_bytes()).unwrap_or(true))
        })
    })
}

/// One component of Go's `filepath.Match` (`None`: a malformed pattern).
fn glob(p: &[u8], s: &[u8]) -> Option<bool> {
    match p.first() {
        None => Some(s.is_empty()),
        Some(b'*') => {
            for k in 0..=s.len() {
                if glob(&p[1..], &s[k..])? {
                    return Some(true);
                }
            }
            Some(false)
        }
        Some(b'?') => Some(!s.is_empty() && glob(&p[1..], &s[1..])?),
        Some(b'[') => {
            let end = p.iter().skip(1).position(|b| *b == b']')? + 1;
            let class = &p[1..end];
            let (neg, class) = match class.first() {
                Some(b'^') => (true, &class[1..]),
                _ => (false, class),
            };
            let Some(c) = s.first() else {
                return Some(false);
            };
            let mut hit = false;
            let mut k = 0;
            while k < class.len() {
                if k + 2 < class.len() && class[k + 1] == b'-' {
                    hit |= class[k] <= *c && *c <= class[k + 2];
                    k += 3;
                } else {
                    hit |= class[k] == *c;
                    k += 1;
                }
            }
            Some(hit != neg && glob(&p[end + 1..], &s[1..])?)
        }
        Some(b'\\') if p.len() > 1 => Some(s.first() == Some(&p[1]) && glob(&p[2..], &s[1..])?),
        Some(c) => Some(s.first() == Some(c) && glob(&p[1..], &s[1..])?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_is_go_filepath_match_per_component() {
        assert_eq!(glob(b"*.txt", b"a.txt"), Some(true));
        assert_eq!(glob(b"a?c", b"abc"), Some(true));
        assert_eq!(glob(b"[a-c]x", b"bx"), Some(true));
        assert_eq!(glob(b"[^a-c]x", b"bx"), Some(false));
        assert_eq!(glob(b"*.txt", b"a.yaml"), Some(false));
    }

    #[test]
    fn clean_stays_in_the_root() {
        assert_eq!(clean("../a.txt"), "a.txt");
        assert_eq!(clean("/./dir//b/../c"), "dir/c");
        assert_eq!(clean("."), "");
    }

    #[test]
    fn syntax_directives_of_the_builtin_frontend() {
        assert!(builtin_syntax("docker/dockerfile:1"));
        assert!(builtin_syntax("docker.io/docker/dockerfile:1.7@sha256:abc"));
        assert!(!builtin_syntax("docker/dockerfile:1-labs"));
        assert!(!builtin_syntax("example.com/frontend:1"));
    }
}

#[cfg(test)]
mod findings {
    use std::path::Path;

    use super::*;
    use crate::context::DockerIgnore;

    fn run(
        df: &str,
        files: &[&str],
        ignore: &str,
        opts: CheckOptions,
    ) -> Vec<(bool, Subject, String)> {
        let listing: Vec<(String, String)> = files
            .iter()
            .map(|f| (f.to_string(), String::new()))
            .collect();
        let listings = [listing.as_slice()];
        let ignore = DockerIgnore::parse(ignore);
        let view = ContextView {
            root: Path::new("/nonexistent-context"),
            listings: &listings,
            symlinks: &[],
            ignore: &ignore,
            ignore_file: Some(".dockerignore"),
        };
        check(df, Some(&view), &opts)
            .findings
            .into_iter()
            .map(|f| (f.failure, f.subject, f.message))
            .collect()
    }

    fn failures(df: &str, files: &[&str], opts: CheckOptions) -> Vec<String> {
        run(df, files, "", opts)
            .into_iter()
            .filter(|f| f.0)
            .map(|f| f.2)
            .collect()
    }

    #[test]
    fn a_missing_source_fails_only_in_a_stage_the_target_reaches() {
        let df = "FROM scratch AS a\nCOPY missing.txt /\nFROM scratch\nCOPY a.txt /\n";
        assert!(failures(df, &["a.txt"], CheckOptions::default()).is_empty());
        let f = failures(
            df,
            &["a.txt"],
            CheckOptions {
                target: Input::Given("A".into()),
                ..Default::default()
            },
        );
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(
            f[0].contains("`missing.txt` is not in the build context"),
            "{f:?}"
        );
    }

    #[test]
    fn sources_expand_args_and_env_as_buildkit_does() {
        let df = "FROM scratch\nARG F=a.txt\nENV D=dir\nCOPY ${F} $D/b.txt ${NOPE}a.txt /\n";
        assert!(failures(df, &["a.txt", "dir", "dir/b.txt"], CheckOptions::default()).is_empty());
        let with = CheckOptions {
            build_args: Input::Given([("F".to_owned(), Some("c.txt".to_owned()))].into()),
            ..Default::default()
        };
        assert_eq!(failures(df, &["a.txt", "dir", "dir/b.txt"], with).len(), 1);
        // An unknown value: nothing is said about that source.
        let unknown = CheckOptions {
            build_args: Input::Given([("F".to_owned(), None)].into()),
            ..Default::default()
        };
        assert!(failures(df, &["a.txt", "dir", "dir/b.txt"], unknown).is_empty());
        // An image base may set any variable: not checked.
        let image = "FROM busybox\nCOPY ${X}missing /\n";
        assert!(failures(image, &[], CheckOptions::default()).is_empty());
        assert_eq!(
            failures(
                "FROM busybox\nCOPY missing /\n",
                &[],
                CheckOptions::default()
            )
            .len(),
            1
        );
    }

    #[test]
    fn an_excluded_source_names_the_pattern() {
        let r = run(
            "FROM scratch\nCOPY config.yaml /\n",
            &["a.txt"],
            "# c\n\n*.yaml\n",
            CheckOptions::default(),
        );
        // The root does not exist here, so the file is not on disk either: no pattern claimed.
        assert!(r[0].2.contains("there is no such file"), "{r:?}");
        let ig = DockerIgnore::parse("# c\n\n*.yaml\n!keep.yaml\n");
        assert_eq!(
            ig.excluded_by("config.yaml"),
            Some((3, "*.yaml".to_owned()))
        );
        assert_eq!(ig.excluded_by("keep.yaml"), None);
    }

    #[test]
    fn targets_stages_and_references() {
        let df = "FROM scratch AS Build\nCOPY a.txt /\nFROM scratch\nCOPY --from=build /a.txt /\nCOPY --from=0 /a.txt /b\n";
        assert!(failures(df, &["a.txt"], CheckOptions::default()).is_empty());
        let f = failures(
            df,
            &["a.txt"],
            CheckOptions {
                target: Input::Given("relase".into()),
                ..Default::default()
            },
        );
        assert!(
            f[0].contains("target stage \"relase\"") && f[0].contains("build"),
            "{f:?}"
        );
        assert!(
            failures(
                df,
                &["a.txt"],
                CheckOptions {
                    target: Input::Unknown,
                    ..Default::default()
                }
            )
            .is_empty()
        );
        assert_eq!(
            failures(
                "FROM scratch\nCOPY --from=5 /a /\n",
                &[],
                CheckOptions::default()
            )
            .len(),
            1
        );
        assert_eq!(
            failures(
                "FROM scratch AS a\nCOPY --from=a /a /\n",
                &[],
                CheckOptions::default()
            )
            .len(),
            1
        );
        assert_eq!(
            failures(
                "FROM scratch\nARG X=a\nCOPY --from=$X /a /\n",
                &[],
                CheckOptions::default()
            )
            .len(),
            1
        );
        // A later stage, an image: warnings only.
        let later = run(
            "FROM scratch AS first\nCOPY --from=later /a /\nFROM busybox AS later\n",
            &[],
            "",
            CheckOptions {
                target: Input::Given("first".into()),
                ..Default::default()
            },
        );
        assert!(later.iter().all(|f| !f.0), "{later:?}");
        // From a later `scratch` stage no BuildKit can copy a named path.
        let f = failures(
            "FROM scratch AS first\nCOPY --from=later /a /\nFROM scratch AS later\n",
            &[],
            CheckOptions {
                target: Input::Given("first".into()),
                ..Default::default()
            },
        );
        assert_eq!(f.len(), 1, "{f:?}");
    }

    #[test]
    fn secrets_and_ssh() {
        let df =
            "FROM busybox\nRUN --mount=type=secret,id=tok,required=true --mount=type=ssh true\n";
        let f = run(df, &[], "", CheckOptions::default());
        assert!(f.iter().any(|f| f.0 && f.1 == Subject::Secrets), "{f:?}");
        assert!(f.iter().any(|f| !f.0 && f.1 == Subject::Ssh), "{f:?}");
        let given = CheckOptions {
            secrets: Input::Given(["tok".to_owned(), "extra".to_owned()].into()),
            ssh: Input::Given(["default".to_owned()].into()),
            build_args: Input::Given(
                [
                    ("UNUSED".to_owned(), Some("1".to_owned())),
                    ("HTTP_PROXY".to_owned(), Some("x".to_owned())),
                ]
                .into(),
            ),
            ..Default::default()
        };
        let f = run(df, &[], "", given);
        assert!(f.iter().all(|f| !f.0), "{f:?}");
        assert!(
            f.iter()
                .any(|f| f.1 == Subject::Secrets && f.2.contains("`extra`")),
            "{f:?}"
        );
        assert!(
            f.iter().any(|f| f.1 == Subject::BuildArgs
                && f.2.contains("`UNUSED`")
                && !f.2.contains("HTTP_PROXY")),
            "{f:?}"
        );
    }

    #[test]
    fn parse_errors_anywhere_and_unchecked_frontends() {
        let f = failures(
            "FROM scratch AS a\nFOO bar\nFROM scratch\n",
            &[],
            CheckOptions::default(),
        );
        assert_eq!(f, vec!["unknown instruction: FOO"]);
        assert_eq!(
            failures("LABEL a=b\nFROM scratch\n", &[], CheckOptions::default()),
            vec!["no build stage in current context"]
        );
        assert_eq!(
            failures("FROM scratch\nCMD --help\n", &[], CheckOptions::default()),
            vec!["unknown flag: help"]
        );
        assert!(
            failures(
                "FROM scratch\nCOPY --link --chmod=644 a /\nCMD\n",
                &["a"],
                CheckOptions::default()
            )
            .is_empty()
        );
        let r = check(
            "# syntax=example.com/fe:1\nFROM scratch\nNOPE\n",
            None,
            &CheckOptions::default(),
        );
        assert!(r.findings.is_empty() && r.unchecked.is_some());
    }
}
