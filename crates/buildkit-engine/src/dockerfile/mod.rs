//! The Dockerfile checked against its build context without a build (issue 20): what
//! BuildKit's Dockerfile frontend would refuse, found in milliseconds from the Dockerfile
//! text and the context's file list the hash already made.
//!
//! A failure is reported only where both of the BuildKits we know (Docker Engine 20.10's and
//! today's standalone buildkitd) fail the build: parse errors, a target that is not a stage,
//! a COPY/ADD (or bind mount) source missing from the filtered context, a required secret or
//! SSH agent not given, a `--from` that cannot name anything. What BuildKit tolerates is a
//! warning. Whatever the checker cannot be sure of (an unknown value, a stage reached only
//! through an unknown name, a frontend other than the built-in one) is left unchecked,
//! never guessed: see `check.rs`.

mod check;
mod lex;
mod parse;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::context::DockerIgnore;

pub use check::check;

/// An input of the check, as far as it is known (in preview some are not).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Input<T> {
    Given(T),
    #[default]
    Unset,
    Unknown,
}

/// What the build is asked for, beside the Dockerfile.
#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    pub target: Input<String>,
    /// Build args; a value of `None` is unknown.
    pub build_args: Input<BTreeMap<String, Option<String>>>,
    /// The ids of the secrets given.
    pub secrets: Input<BTreeSet<String>>,
    /// The ids of the SSH agents given.
    pub ssh: Input<BTreeSet<String>>,
    /// The names of the named build contexts.
    pub named_contexts: BTreeSet<String>,
}

/// The filtered build context, as the hash listed it.
#[derive(Debug, Clone, Copy)]
pub struct ContextView<'a> {
    pub root: &'a Path,
    /// Every path the context sends, sorted, one listing per `.dockerignore` dialect the
    /// builders use (a path counts as present when any listing has it).
    pub listings: &'a [&'a [(String, String)]],
    /// The paths of the symlinks among them.
    pub symlinks: &'a [String],
    pub ignore: &'a DockerIgnore,
    /// The ignore file's name in the context, when there is one.
    pub ignore_file: Option<&'a str>,
}

/// What a finding is about: the caller names the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    Dockerfile,
    Target,
    Secrets,
    Ssh,
    BuildArgs,
}

/// One thing the check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// A failure (the build would fail) or a warning (BuildKit tolerates it).
    pub failure: bool,
    pub subject: Subject,
    /// The Dockerfile line (1-based) it is about.
    pub line: Option<usize>,
    pub message: String,
}

/// The outcome of [`check`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub findings: Vec<Finding>,
    /// Set when the Dockerfile was passed through unchecked, and why.
    pub unchecked: Option<String>,
}
