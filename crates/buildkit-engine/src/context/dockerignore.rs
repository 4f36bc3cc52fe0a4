//! `.dockerignore` parsing and matching with Docker's semantics.
//!
//! This is for deciding whether a context-relative path is part of the build
//! context, exactly as `docker build` decides it: patterns are anchored at
//! the context root and must match the whole path, the last matching pattern
//! wins, and a `!` pattern re-includes. It is not a gitignore implementation
//! (no "match at any depth", no `[!...]` negation) and it does not touch the
//! file system: finding and reading the ignore file is `mod.rs`'s job,
//! walking is `walk.rs`'s.
//!
//! There are two rules, [`IgnoreDialect`]s, because Docker changed its own:
//! what `docker build` sends differs between the docker CLI 20.10's BuildKit
//! client and buildx (every `docker build` of Docker 23 and later), both
//! measured by building contexts and listing the image
//! (`tests/dockerignore_oracle.rs`).
//!
//! **Classic (20.10)**: the docker CLI 20.10's BuildKit client
//! (`DOCKER_BUILDKIT=1 docker build`: the old fsutil walk with docker 20.10's
//! `fileutils.PatternMatcher`), against dockerd 20.10. Its rule has two parts:
//! - A path is *matched* (moby's `Matches`) when the last pattern that
//!   matches either the path itself or the one ancestor of the path that
//!   has as many components as the pattern (`*` has one, `**/x` two) is not
//!   an exception. Only that one ancestor is tried: with `**` then
//!   `!**/deep`, `deep` is re-included but `deep/h` is not (its depth-2
//!   ancestor does not exist).
//! - The walk skips a matched directory whole unless the text of some
//!   exception pattern, plus `/`, begins with the directory's path plus `/`
//!   (`!a/b/c` walks into `a` and `a/b`; `!**/keep`, `!*/x/keep` or
//!   `!a/*/keep` never walk into an excluded `a`). A matched directory that
//!   is walked into is sent like any other (BuildKit creates it even if
//!   nothing inside is included); a matched file is never sent.
//!
//! The 20.10 CLI's own legacy builder agrees with this; the legacy builder
//! of newer CLIs (`DOCKER_BUILDKIT=0` with the 28.x CLI) is a third rule we
//! do not follow (moby/patternmatcher's `MatchesOrParentMatches` with the
//! walk-into rule above).
//!
//! **Modern**: buildx v0.38 (fsutil's `filterFS` with moby/patternmatcher
//! 0.6's `MatchesUsingParentResults`), through a standalone buildkitd or
//! dockerd's BuildKit alike (the filter runs in the client's FileSync).
//! - Per pattern, a path matches when the pattern matches the path or the
//!   pattern was recorded as matching its parent directory; the last
//!   matching pattern decides, as above. The record is lazy, as in
//!   patternmatcher: a pattern that could not change the result at a
//!   directory (an exception while nothing matched yet, an inclusion while
//!   already matched) is not tried there and is recorded as not matching.
//!   So `*` then `!**/node_modules` keeps all of `node_modules/`, and
//!   `build/node_modules/m.js`; but `a/b` then `!a` drops `a/b/f` (`!a` was
//!   skipped at `a`), and `a`, `!a/x`, `a` keeps `a/x` (the second `a` was
//!   skipped at `a`, and is only tried on `a/x` itself).
//! - A pattern that starts with `**` and has no other wildcard is a suffix
//!   match: `**.log` matches `a/b/x.log` (Classic: only `.log`, `a/.log`).
//! - The walk skips a matched directory unless an exception, without a
//!   trailing `/**` or `/*`, plus `/`, begins with the directory's path plus
//!   `/`, as above; but as soon as any exception has a wildcard (`*?[]^\`)
//!   left, every matched directory is walked into. A matched directory is
//!   sent only as the parent of something sent (never empty); an unreadable
//!   one (permission denied) is skipped.
//!
//! Known, deliberate differences from moby in both dialects (moby translates
//! patterns to Go regular expressions): `\x` always means the literal
//! character `x` (moby gives `\d`, `\w`, `\t`, ... their regex meaning), `^`
//! outside a class is literal (moby emits a regex anchor when the pattern
//! has a wildcard), and `*`/`?` inside `[...]` are literal (moby produces a
//! garbled regex). Regex operators other than `.` and `$` (`+`, `(`, `{`,
//! `|`) are literal, as in Modern (the 20.10 matcher passes them to the
//! regex engine: measured, `a+b` excludes `ab` and `aab` there, not `a+b`).
//! Everything else, including moby's quirks (`a**b` is `a(.*/)?b`; `[!a]`
//! is the class `{'!', 'a'}`; `[^a]` can match `/`), is reproduced.

use std::fmt;

/// Whose `.dockerignore` rule to follow (see the module docs): the builds
/// they make from the same context can hold different files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IgnoreDialect {
    /// The docker CLI 20.10's BuildKit client, for dockerd 20.10 (API 1.41)
    /// and older. The default: the rule the provider always had.
    #[default]
    Classic20_10,
    /// buildx (modern fsutil and moby/patternmatcher), which is what
    /// `docker build` runs from Docker 23 (API 1.42) on, and what a
    /// standalone buildkitd gets from its clients.
    Modern,
}

impl IgnoreDialect {
    /// A short name for messages and logs.
    pub fn name(self) -> &'static str {
        match self {
            IgnoreDialect::Classic20_10 => "classic (docker 20.10)",
            IgnoreDialect::Modern => "modern (buildx)",
        }
    }
}

/// A parsed `.dockerignore` file, with the [`IgnoreDialect`] it is applied
/// in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DockerIgnore {
    patterns: Vec<Pattern>,
    /// The line of the ignore file each pattern is on (1-based), for messages.
    lines: Vec<usize>,
    dialect: IgnoreDialect,
    /// Modern only: some exception still has a wildcard once a trailing
    /// `/**` or `/*` is cut off, so every matched directory is walked into
    /// (fsutil's `onlyPrefixExcludeExceptions` is false).
    walk_all: bool,
}

/// A line of an ignore file that Docker would reject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError {
    /// 1-based line number in the ignore file.
    pub line: usize,
    /// The line as written (trimmed).
    pub pattern: String,
    /// What is wrong with it.
    pub reason: PatternFlaw,
}

/// What makes Docker reject an ignore-file line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PatternFlaw {
    #[error("`!` must be followed by a pattern")]
    BareBang,
    #[error("the pattern ends with an unfinished `\\` escape")]
    UnfinishedEscape,
    #[error("unterminated character class (missing `]`)")]
    UnterminatedClass,
    #[error("character class is empty or has an unescaped `]` (write `\\]` for a literal `]`)")]
    EmptyClass,
    #[error("character class has a misplaced `-` (write `\\-` for a literal `-`)")]
    MisplacedDash,
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}: invalid pattern `{}`: {}",
            self.line, self.pattern, self.reason
        )
    }
}

impl std::error::Error for PatternError {}

/// One cleaned pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    /// The cleaned pattern text, without the leading `!`.
    text: String,
    /// `true` for `!pattern` lines (re-include).
    exception: bool,
    tokens: Vec<Token>,
    /// Set when the pattern has no wildcard at all (the common case), so
    /// matching is a plain string comparison.
    literal: Option<String>,
    /// Literal text every match must start / end with (a cheap pre-check
    /// before running the automaton).
    prefix: String,
    suffix: String,
    /// The longest run of literal characters, which every match contains.
    needle: String,
    /// The number of `/`-separated components of `text` (moby's
    /// `len(pattern.dirs)`): the depth of the one ancestor of a path that
    /// the pattern is also tried on.
    depth: usize,
    /// Modern only: for a pattern that starts with `**` and has no other
    /// wildcard, the rest of its text, which patternmatcher matches as a
    /// plain suffix (`**.log`: any path ending in `.log`).
    suffix_match: Option<String>,
    /// Modern only: `text` without a trailing `/**`, then without a
    /// trailing `/*` (fsutil's `patternWithoutTrailingGlob`), for the
    /// walk-into rule.
    walk_prefix: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// A literal character.
    Literal(char),
    /// `?`: one character other than `/`.
    AnyChar,
    /// `*`: any run of characters other than `/`.
    Star,
    /// Any string at all, `/` included (a trailing `**`).
    AnyString,
    /// A non-trailing `**`: nothing, or any string ending in `/`.
    AnyDirs,
    /// `[...]`: one character in (or, negated, not in) the ranges. Like
    /// moby's regex translation, this can match `/`.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

impl DockerIgnore {
    /// Parses ignore-file text leniently: lines Docker would reject (see
    /// [`DockerIgnore::parse_strict`]) are skipped.
    pub fn parse(text: &str) -> DockerIgnore {
        let mut patterns = Vec::new();
        let mut lines = Vec::new();
        for (line, parsed) in parse_lines(text) {
            if let Ok(p) = parsed {
                patterns.push(p);
                lines.push(line);
            }
        }
        DockerIgnore::from_patterns(patterns, lines)
    }

    fn from_patterns(patterns: Vec<Pattern>, lines: Vec<usize>) -> DockerIgnore {
        let walk_all = patterns
            .iter()
            .any(|p| p.exception && p.walk_prefix.contains(['*', '[', ']', '?', '^', '\\']));
        DockerIgnore {
            patterns,
            lines,
            dialect: IgnoreDialect::default(),
            walk_all,
        }
    }

    /// The same patterns, applied in `dialect` ([`IgnoreDialect::Classic20_10`]
    /// after parsing).
    pub fn with_dialect(mut self, dialect: IgnoreDialect) -> DockerIgnore {
        self.dialect = dialect;
        self
    }

    /// The dialect the patterns are applied in.
    pub fn dialect(&self) -> IgnoreDialect {
        self.dialect
    }

    /// Parses ignore-file text, failing on the first line Docker would
    /// reject: a bare `!`, a trailing `\`, or a malformed `[...]` class.
    pub fn parse_strict(text: &str) -> Result<DockerIgnore, PatternError> {
        let mut patterns = Vec::new();
        let mut lines = Vec::new();
        for (line, parsed) in parse_lines(text) {
            match parsed {
                Ok(p) => {
                    patterns.push(p);
                    lines.push(line);
                }
                Err((pattern, reason)) => {
                    return Err(PatternError {
                        line,
                        pattern,
                        reason,
                    });
                }
            }
        }
        Ok(DockerIgnore::from_patterns(patterns, lines))
    }

    /// `true` if there are no patterns (nothing is excluded).
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// The cleaned patterns in file order, as `(is_exception, pattern)`.
    pub fn patterns(&self) -> impl Iterator<Item = (bool, &str)> {
        self.patterns.iter().map(|p| (p.exception, p.text.as_str()))
    }

    /// The pattern that leaves `rel_path` out, for a message: the last pattern that matches
    /// the path's shallowest ancestor (or the path) decided by an exclusion, as
    /// `(line in the ignore file, pattern as written less the cleaning)`. `None` when no
    /// exclusion matches.
    pub fn excluded_by(&self, rel_path: &str) -> Option<(usize, String)> {
        let path = rel_path.trim_matches('/');
        let mut candidates: Vec<&str> = parents(path).collect();
        candidates.push(path);
        for c in candidates {
            let last = self
                .patterns
                .iter()
                .enumerate()
                .rev()
                .find(|(_, p)| match self.dialect {
                    IgnoreDialect::Classic20_10 => p.matches(c),
                    IgnoreDialect::Modern => p.modern_matches(c),
                });
            if let Some((i, p)) = last
                && !p.exception
            {
                return Some((self.lines.get(i).copied().unwrap_or(0), p.text.clone()));
            }
        }
        None
    }

    /// Whether `rel_path` (relative to the context root, `/`-separated) is
    /// left out of the build context when it is a file or a symlink: see
    /// [`DockerIgnore::includes`]. The root itself (`""` or `"."`) is never
    /// excluded.
    pub fn is_excluded(&self, rel_path: &str) -> bool {
        !self.includes(rel_path, false)
    }

    /// Whether Docker's walk of the context sends `rel_path` (relative to
    /// the context root, `/`-separated), a directory when `is_dir`, on its
    /// own account: every directory on the way is walked into (not matched,
    /// or walked into although matched), and the path itself is not matched
    /// (Classic also sends a matched directory it walks into). What the walk
    /// sends is these paths plus their parent directories: in Modern a
    /// matched directory is sent only as the parent of something sent. See
    /// the module docs.
    pub fn includes(&self, rel_path: &str, is_dir: bool) -> bool {
        let path = rel_path.trim_end_matches('/');
        let path = path.strip_prefix("./").unwrap_or(path);
        if path.is_empty() || path == "." {
            return true;
        }
        let mut state = Vec::new();
        for (i, dir) in parents(path).enumerate() {
            let (matched, next) = self.match_dir(&state, dir, i + 1);
            if matched && !self.walks_into_excluded(dir) {
                return false;
            }
            state = next;
        }
        if is_dir {
            let depth = path.split('/').count();
            let (matched, _) = self.match_dir(&state, path, depth);
            !matched
                || (self.dialect == IgnoreDialect::Classic20_10 && self.walks_into_excluded(path))
        } else {
            !self.matched_in(&state, path)
        }
    }

    /// moby's (20.10) `PatternMatcher.Matches`: the last pattern that
    /// matches the path, or the ancestor of the path with as many components
    /// as the pattern, decides; it excludes unless it is an exception.
    /// (The walker gets the same answer from [`Self::matched_in`].)
    #[cfg(test)]
    fn is_matched(&self, path: &str) -> bool {
        let depth = path.split('/').count();
        for p in self.patterns.iter().rev() {
            if p.matches(path) || (p.depth < depth && p.matches(ancestor(path, p.depth))) {
                return !p.exception;
            }
        }
        false
    }

    /// Whether the walk goes into directory `dir` although it is matched.
    ///
    /// Classic: some exception pattern's text plus `/` begins with `dir` plus
    /// `/` (the same plain text comparison in fsutil's walk and in the
    /// legacy CLI's tar writer; wildcards in the exception are not
    /// expanded). Modern: the same with the exception's text less a trailing
    /// `/**` or `/*`, unless some exception has a wildcard left: then always.
    pub(crate) fn walks_into_excluded(&self, dir: &str) -> bool {
        let begins = |text: &str| {
            text.strip_prefix(dir)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        };
        match self.dialect {
            IgnoreDialect::Classic20_10 => {
                self.patterns.iter().any(|p| p.exception && begins(&p.text))
            }
            IgnoreDialect::Modern => {
                self.walk_all
                    || self
                        .patterns
                        .iter()
                        .any(|p| p.exception && begins(&p.walk_prefix))
            }
        }
    }

    /// Whether a matched directory that the walk goes into is sent even when
    /// nothing under it is (Classic), rather than only as the parent of
    /// something sent (Modern).
    pub(crate) fn sends_walked_excluded_dirs(&self) -> bool {
        self.dialect == IgnoreDialect::Classic20_10
    }

    /// Whether a matched directory that the walk goes into but cannot list
    /// for lack of permission is skipped (Modern: fsutil ignores the error)
    /// rather than an error (Classic).
    pub(crate) fn skips_unlistable_excluded_dirs(&self) -> bool {
        self.dialect == IgnoreDialect::Modern
    }

    /// Whether directory `dir`, `depth` components deep, is matched, and the
    /// state for matching its children. `parent` is the state of the
    /// directory holding `dir` (an empty slice for the root). The walker
    /// carries these states down so that each path is matched once, not
    /// once per parent.
    pub(crate) fn match_dir(&self, parent: &[bool], dir: &str, depth: usize) -> (bool, Vec<bool>) {
        match self.dialect {
            IgnoreDialect::Classic20_10 => (
                self.matched_in(parent, dir),
                self.classic_dir_state(parent, dir, depth),
            ),
            IgnoreDialect::Modern => self.modern_match(parent, dir),
        }
    }

    /// Whether `path`, in the directory whose state is `parent` (see
    /// [`Self::match_dir`]), is matched.
    pub(crate) fn matched_in(&self, parent: &[bool], path: &str) -> bool {
        match self.dialect {
            IgnoreDialect::Classic20_10 => {
                for (i, p) in self.patterns.iter().enumerate().rev() {
                    if parent.get(i).copied().unwrap_or(false) || p.matches(path) {
                        return !p.exception;
                    }
                }
                false
            }
            IgnoreDialect::Modern => self.modern_match(parent, path).0,
        }
    }

    /// Classic state of directory `dir`: per pattern, whether the pattern
    /// matches the ancestor of a child that moby's parent check tries (the
    /// child's ancestor with as many components as the pattern).
    fn classic_dir_state(&self, parent: &[bool], dir: &str, depth: usize) -> Vec<bool> {
        self.patterns
            .iter()
            .enumerate()
            .map(|(i, p)| match p.depth.cmp(&depth) {
                std::cmp::Ordering::Less => parent.get(i).copied().unwrap_or(false),
                std::cmp::Ordering::Equal => p.matches(dir),
                std::cmp::Ordering::Greater => false,
            })
            .collect()
    }

    /// patternmatcher 0.6's `MatchesUsingParentResults`: whether `path` is
    /// matched, and per pattern whether it counts as matching `path` for
    /// the children (the state). A pattern matches when the parent's state
    /// says so or it matches `path` itself; it is not tried (and recorded as
    /// not matching) when it could not change the result. Without a parent
    /// state (`parent` empty) every ancestor is tried instead, as
    /// `MatchesOrParentMatches` does.
    fn modern_match(&self, parent: &[bool], path: &str) -> (bool, Vec<bool>) {
        let mut matched = false;
        let mut state = vec![false; self.patterns.len()];
        for (i, p) in self.patterns.iter().enumerate() {
            let mut hit = parent.get(i).copied().unwrap_or(false);
            if !hit {
                if p.exception != matched {
                    continue;
                }
                hit = p.modern_matches(path)
                    || (parent.is_empty() && parents(path).any(|dir| p.modern_matches(dir)));
            }
            state[i] = hit;
            if hit {
                matched = !p.exception;
            }
        }
        (matched, state)
    }
}

/// The first `depth` components of `path` (all of it if it has fewer).
#[cfg(test)]
fn ancestor(path: &str, depth: usize) -> &str {
    match depth
        .checked_sub(1)
        .and_then(|n| path.match_indices('/').nth(n))
    {
        Some((i, _)) => &path[..i],
        None => path,
    }
}

/// Parent directories of a relative path, shortest first (`a/b/c` gives
/// `a`, `a/b`).
fn parents(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/').map(move |(i, _)| &path[..i])
}

type LineResult = Result<Pattern, (String, PatternFlaw)>;

/// Parses the lines of an ignore file the way the docker CLI reads it,
/// yielding `(1-based line number, pattern or (line, reason))`, skipping
/// comments and blank lines.
fn parse_lines(text: &str) -> impl Iterator<Item = (usize, LineResult)> {
    text.lines().enumerate().filter_map(|(index, raw)| {
        let raw = if index == 0 {
            raw.strip_prefix('\u{feff}').unwrap_or(raw)
        } else {
            raw
        };
        // Only a `#` in the very first column starts a comment.
        if raw.starts_with('#') {
            return None;
        }
        let line = raw.trim();
        if line.is_empty() {
            return None;
        }
        Some((index + 1, parse_line(line)))
    })
}

fn parse_line(line: &str) -> LineResult {
    let (exception, body) = match line.strip_prefix('!') {
        Some(rest) => (true, rest.trim()),
        None => (false, line),
    };
    let fail = |reason: PatternFlaw| Err((line.to_owned(), reason));
    if body.is_empty() {
        return fail(PatternFlaw::BareBang);
    }
    let mut text = go_clean(body);
    if text.len() > 1
        && let Some(rest) = text.strip_prefix('/')
    {
        text = rest.to_owned();
    }
    if exception && text == "/" {
        // moby cleans "!" + "/" to "!" and rejects it.
        return fail(PatternFlaw::BareBang);
    }
    match compile(&text) {
        Ok(tokens) => {
            let as_literal = |t: &Token| match t {
                Token::Literal(c) => Some(*c),
                _ => None,
            };
            let literal = tokens.iter().map(as_literal).collect::<Option<String>>();
            let prefix: String = tokens.iter().map_while(as_literal).collect();
            let mut suffix: Vec<char> = tokens.iter().rev().map_while(as_literal).collect();
            suffix.reverse();
            let needle = tokens
                .split(|t| as_literal(t).is_none())
                .map(|run| run.iter().filter_map(as_literal).collect::<String>())
                .max_by_key(String::len)
                .unwrap_or_default();
            let suffix_match = text.strip_prefix("**").and_then(|rest| {
                (!rest.contains(['*', '?', '[', ']', '\\'])).then(|| rest.to_owned())
            });
            let walk_prefix = text.strip_suffix("/**").unwrap_or(&text);
            let walk_prefix = walk_prefix
                .strip_suffix("/*")
                .unwrap_or(walk_prefix)
                .to_owned();
            Ok(Pattern {
                depth: text.split('/').count(),
                suffix_match,
                walk_prefix,
                text,
                exception,
                tokens,
                literal,
                prefix,
                suffix: suffix.into_iter().collect(),
                needle,
            })
        }
        Err(reason) => fail(reason),
    }
}

/// Lexical path cleaning like Go's `filepath.Clean` on Unix: collapses
/// repeated `/`, drops `.` segments, resolves `..` against earlier
/// segments (dropping it at a rooted start), strips a trailing `/`.
fn go_clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                if segments.last().is_some_and(|last| *last != "..") {
                    segments.pop();
                } else if !rooted {
                    segments.push("..");
                }
            }
            other => segments.push(other),
        }
    }
    let joined = segments.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_owned(),
        (false, false) => joined,
    }
}

/// Turns a cleaned pattern into tokens, rejecting what Go's
/// `filepath.Match` rejects.
fn compile(pattern: &str) -> Result<Vec<Token>, PatternFlaw> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut tokens = Vec::new();
    // The 20.10 matcher reads `**foo` as `(.*/)?foo`, and so do these
    // tokens; patternmatcher 0.6 matches a pattern that starts with `**` and
    // has no other wildcard with `HasSuffix` (see `Pattern::suffix_match`).
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' if chars.get(i) == Some(&'*') => {
                i += 1;
                // `**/` is read as `**`.
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                if i == chars.len() {
                    tokens.push(Token::AnyString);
                } else {
                    tokens.push(Token::AnyDirs);
                }
            }
            '*' => tokens.push(Token::Star),
            '?' => tokens.push(Token::AnyChar),
            '\\' => match chars.get(i) {
                Some(escaped) => {
                    tokens.push(Token::Literal(*escaped));
                    i += 1;
                }
                None => return Err(PatternFlaw::UnfinishedEscape),
            },
            '[' => {
                let (class, next) = compile_class(&chars, i)?;
                tokens.push(class);
                i = next;
            }
            other => tokens.push(Token::Literal(other)),
        }
    }
    Ok(tokens)
}

/// Parses a `[...]` class starting just after the `[`, with Go
/// `filepath.Match` syntax (only `^` negates; `]` and `-` must be escaped
/// unless they close the class or form a range). Returns the token and the
/// index after the closing `]`.
fn compile_class(chars: &[char], mut i: usize) -> Result<(Token, usize), PatternFlaw> {
    let unterminated = || PatternFlaw::UnterminatedClass;
    let negated = chars.get(i) == Some(&'^');
    if negated {
        i += 1;
    }
    let mut ranges = Vec::new();
    loop {
        match chars.get(i) {
            None => return Err(unterminated()),
            Some(']') if !ranges.is_empty() => {
                return Ok((Token::Class { negated, ranges }, i + 1));
            }
            Some(_) => {}
        }
        let lo = class_char(chars, &mut i)?;
        let mut hi = lo;
        if chars.get(i) == Some(&'-') {
            i += 1;
            hi = class_char(chars, &mut i)?;
        }
        if chars.get(i).is_none() {
            return Err(unterminated());
        }
        ranges.push((lo, hi));
    }
}

/// One possibly escaped character of a class.
fn class_char(chars: &[char], i: &mut usize) -> Result<char, PatternFlaw> {
    match chars.get(*i) {
        None => Err(PatternFlaw::UnterminatedClass),
        Some(']') => Err(PatternFlaw::EmptyClass),
        Some('-') => Err(PatternFlaw::MisplacedDash),
        Some('\\') => match chars.get(*i + 1) {
            Some(c) => {
                *i += 2;
                Ok(*c)
            }
            None => Err(PatternFlaw::UnterminatedClass),
        },
        Some(c) => {
            *i += 1;
            Ok(*c)
        }
    }
}

/// NFA states: `k` is "about to match token k" (`k == tokens.len()` is the
/// accepting state); `k + n + 1` is "inside the `AnyDirs` token k, which
/// has consumed something not yet ending in `/`".
struct States {
    on: Vec<bool>,
    n: usize,
}

impl States {
    fn new(n: usize) -> States {
        States {
            on: vec![false; 2 * (n + 1)],
            n,
        }
    }

    /// Adds "at token k", plus the states reachable by letting zero-width
    /// tokens match nothing.
    fn enter(&mut self, tokens: &[Token], mut k: usize) {
        loop {
            self.on[k] = true;
            match tokens.get(k) {
                Some(Token::Star | Token::AnyString | Token::AnyDirs) => k += 1,
                _ => return,
            }
        }
    }

    fn enter_inside(&mut self, k: usize) {
        self.on[k + self.n + 1] = true;
    }

    fn is_empty(&self) -> bool {
        !self.on.iter().any(|s| *s)
    }

    fn clear(&mut self) {
        self.on.iter_mut().for_each(|s| *s = false);
    }
}

impl Pattern {
    /// Whether the pattern matches the whole of `path` in patternmatcher
    /// 0.6 (Modern): as [`Self::matches`], except for a `**` suffix match.
    fn modern_matches(&self, path: &str) -> bool {
        match &self.suffix_match {
            Some(suffix) => {
                path.ends_with(suffix.as_str())
                    || suffix.strip_prefix('/').is_some_and(|s| s == path)
            }
            None => self.matches(path),
        }
    }

    /// Whether the pattern matches the whole of `path`.
    fn matches(&self, path: &str) -> bool {
        if let Some(literal) = &self.literal {
            return literal == path;
        }
        if !path.starts_with(&self.prefix)
            || !path.ends_with(&self.suffix)
            || !path.contains(&self.needle)
        {
            return false;
        }
        self.run(path.chars()).on[self.tokens.len()]
    }

    /// Runs the NFA over `input` and returns the final state set.
    fn run(&self, input: impl Iterator<Item = char>) -> States {
        let tokens = &self.tokens;
        let n = tokens.len();
        let mut current = States::new(n);
        let mut next = States::new(n);
        current.enter(tokens, 0);
        for c in input {
            next.clear();
            for k in 0..n {
                if current.on[k] {
                    step(tokens, k, c, &mut next);
                }
                if current.on[k + n + 1] {
                    next.enter_inside(k);
                    if c == '/' {
                        next.enter(tokens, k + 1);
                    }
                }
            }
            std::mem::swap(&mut current, &mut next);
            if current.is_empty() {
                break;
            }
        }
        current
    }
}

/// Transitions out of "at token k" on character `c`.
fn step(tokens: &[Token], k: usize, c: char, next: &mut States) {
    match &tokens[k] {
        Token::Literal(l) => {
            if *l == c {
                next.enter(tokens, k + 1);
            }
        }
        Token::AnyChar => {
            if c != '/' {
                next.enter(tokens, k + 1);
            }
        }
        Token::Class { negated, ranges } => {
            let inside = ranges.iter().any(|(lo, hi)| *lo <= c && c <= *hi);
            if inside != *negated {
                next.enter(tokens, k + 1);
            }
        }
        Token::Star => {
            if c != '/' {
                next.enter(tokens, k);
            }
        }
        Token::AnyString => next.enter(tokens, k),
        Token::AnyDirs => {
            next.enter_inside(k);
            if c == '/' {
                next.enter(tokens, k + 1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn excluded(patterns: &str, path: &str) -> bool {
        DockerIgnore::parse_strict(patterns)
            .unwrap_or_else(|e| panic!("{patterns:?}: {e}"))
            .is_excluded(path)
    }

    #[test]
    fn go_clean_matches_go() {
        let cases = [
            ("", "."),
            ("a//b", "a/b"),
            ("./a", "a"),
            ("a/./b/", "a/b"),
            ("a/../b", "b"),
            ("../a", "../a"),
            ("a/../../b", "../b"),
            ("/../a", "/a"),
            ("/", "/"),
            ("//a", "/a"),
            (".", "."),
            ("a/..", "."),
        ];
        for (input, want) in cases {
            assert_eq!(go_clean(input), want, "clean({input:?})");
        }
    }

    #[test]
    fn pattern_table() {
        // (patterns, path, excluded)
        let cases: &[(&str, &str, bool)] = &[
            ("*.log", "x.log", true),
            ("*.log", "a/x.log", false),
            ("a/*.log", "a/x.log", true),
            ("a/*", "a/b/c", true), // parent `a/b` matches
            ("**/x", "x", true),
            ("**/x", "a/b/x", true),
            ("**/x", "a/bx", false),
            ("a/**", "a", false),
            ("a/**", "a/b", true),
            ("a/**", "ab", false),
            ("a/**/b", "a/b", true),
            ("a/**/b", "a/x/y/b", true),
            ("a/**/b", "a/x/yb", false),
            ("**", "anything/at/all", true),
            // `**.log` is `(.*/)?\.log` for the 20.10 client, not newer
            // moby's suffix match.
            ("**.log", "x.log", false),
            ("**.log", "a/b/x.log", false),
            ("**.log", ".log", true),
            ("**.log", "a/.log", true),
            ("**/*.log", "a/b/x.log", true),
            ("a**b", "a/x/b", true),
            ("a**b", "axb", false), // moby: `a(.*/)?b`
            ("?.txt", "a.txt", true),
            ("?.txt", "ab.txt", false),
            ("a?b", "a/b", false),
            ("[a-c].txt", "b.txt", true),
            ("[a-c].txt", "d.txt", false),
            ("[^a].txt", "b.txt", true),
            ("[^a].txt", "a.txt", false),
            ("a[^x]b", "a/b", true), // negated class can match `/` in moby
            ("[!a].txt", "!.txt", true),
            ("[!a].txt", "a.txt", true),
            ("[!a].txt", "b.txt", false),
            ("[\\]]", "]", true),
            ("[a\\-z]", "-", true),
            ("[a\\-z]", "b", false),
            ("\\*.txt", "*.txt", true),
            ("\\*.txt", "a.txt", false),
            ("foo", "foo/bar/baz", true),
            ("foo", "a/foo", false),
            ("/foo", "foo", true),
            ("./foo", "foo", true),
            ("foo/", "foo", true),
            ("a/../b", "b", true),
            (".", "a", false),
            ("*", "a/b", true),
            ("é*", "éa", true),
            ("a*a", "a", false),
            ("a*a", "aba", true),
            ("**/build/**", "x/build/y", true),
            ("**/build/**", "x/build", false),
            ("**/build/**", "x/rebuild/y", false),
            ("!a", "a", false),
            ("a\n!a/b", "a/b/c", false),
            ("a\n!a/b", "a/c", true),
            ("!a\na", "a/b", true),
            ("*.txt\n!k*.txt\nkeep2.txt", "keep1.txt", false),
            ("*.txt\n!k*.txt\nkeep2.txt", "keep2.txt", true),
            // Only the ancestor as deep as the pattern is tried (measured:
            // the 20.10 BuildKit client; newer CLIs try every ancestor).
            ("*\n!**/node_modules", "node_modules", false),
            ("*\n!**/node_modules", "node_modules/r.js", true),
            ("**\n!**/deep", "deep", false),
            ("**\n!**/deep", "deep/h", true),
            ("**\n!**/deep", "x/deep/f", true), // `x` is not walked into
            ("x\n!x/**/deep", "x/deep", false),
            ("x\n!x/**/deep", "x/deep/f", true),
            ("a/b\n!a/b/c", "a/b/c/d/f", false),
            ("a/*\n!a/b/**", "a/b/c/d/f", false),
            // An excluded directory is walked into only when an exception
            // begins with its path (measured: both docker builders).
            ("*\n!**/node_modules", "build/node_modules/m.js", true),
            ("**\n!**/deep", "x/y/deep/g", true),
            ("a\n!a/b/c", "a/b/c/d/f", false),
            ("a\n!a/b/c", "a/b/f", true),
            ("*\n!a/b/c", "a/b/c/f", false),
            ("a\n!/a/b/c", "a/b/c/f", false),
            ("a\n!./a/b/c/", "a/b/c/f", false),
            ("a\n!**/keep", "a/keep", true),
            ("a\n!a/*/keep", "a/x/keep", true),
            ("*/x\n!*/x/keep", "a/x/keep", true),
            ("*\n!a/**/keep", "a/keep", false),
            ("*\n!a/**/keep", "a/x/keep", true),
            ("a\n!a/b/*.txt", "a/b/x.txt", false),
            ("a\n!ab/c", "a/c", true),
            (
                "**/node_modules\n!**/node_modules/keep",
                "w/node_modules/keep/k",
                true,
            ),
        ];
        for (patterns, path, want) in cases {
            assert_eq!(
                excluded(patterns, path),
                *want,
                "patterns {patterns:?} on {path:?}"
            );
        }
    }

    /// The per-file rule where the dialects differ, each as measured
    /// (tests/dockerignore_oracle.rs): `(patterns, path, excluded in
    /// Classic, excluded in Modern)`.
    #[test]
    fn dialects_differ() {
        let cases: &[(&str, &str, bool, bool)] = &[
            // Every ancestor counts in Modern, not just the one as deep as
            // the pattern.
            ("*\n!**/node_modules", "node_modules/r.js", true, false),
            (
                "*\n!**/node_modules",
                "build/node_modules/m.js",
                true,
                false,
            ),
            ("**\n!**/deep", "deep/h", true, false),
            ("**\n!**/deep", "x/y/deep/g", true, false),
            ("x\n!x/**/deep", "x/deep/f", true, false),
            ("**/build\n!build/keep", "build/x", false, true),
            // A wildcard exception makes Modern walk into every excluded dir.
            ("*/x\n!*/x/keep", "b/x/keep", true, false),
            ("a\n!a/*/keep", "a/x/keep", true, false),
            ("*/\n!*/keep", "b/keep/x", true, false),
            (
                "**/node_modules\n!**/node_modules/keep",
                "w/node_modules/keep/k",
                true,
                false,
            ),
            // Modern does not try a pattern where it could not change the
            // result, and then never on the parent again.
            ("a\n!a/x\na", "a/x", true, false),
            ("a\n!a/x\na", "a/y", true, true),
            ("a/b\n!a", "a/b/f", false, true),
            ("a/b\n!a", "a/c", false, false),
            ("**/*.txt\n!a", "a/x.txt", false, true),
            ("a/b/*\n!a/*", "a/b/f", false, true),
            ("a/b/*\n!a/*", "a/e", false, false),
            // `**` then no other wildcard: a suffix in Modern.
            ("**.log", "x.log", false, true),
            ("**.log", "a/b/x.log", false, true),
            ("**.log", "a/.log", true, true),
            ("**.log", "xlog", false, false),
            ("**foo/bar", "xfoo/bar", false, true),
            ("**foo/bar", "a/foo/bar", true, true),
            ("**foo/bar", "a/xfoo/bar/c", false, true),
            ("**/deep", "a/deep", true, true),
            ("**/deep", "deep", true, true),
            ("**/deep", "adeep", false, false),
            ("**", "a/b", true, true),
            // The same in both.
            ("a\n!a/b/c", "a/b/c/d/f", false, false),
            ("a\n!a/b/c", "a/b/f", true, true),
            ("a\n!a/b\na/b/c\n!a/b/c/d", "a/b/c/d/f", false, false),
            ("a\n!a/b\na/b/c\n!a/b/c/d", "a/b/c/e", true, true),
            ("a\n!*.keep", "a/x.keep", true, true),
            ("a+b", "a+b", true, true),
            ("a+b", "ab", false, false),
        ];
        for (patterns, path, classic, modern) in cases {
            let ig = DockerIgnore::parse_strict(patterns).expect("parse");
            assert_eq!(
                ig.is_excluded(path),
                *classic,
                "Classic: {patterns:?} on {path}"
            );
            let ig = ig.with_dialect(IgnoreDialect::Modern);
            assert_eq!(
                ig.is_excluded(path),
                *modern,
                "Modern: {patterns:?} on {path}"
            );
        }
    }

    #[test]
    fn modern_walk_into_rule() {
        let modern = |text: &str| DockerIgnore::parse(text).with_dialect(IgnoreDialect::Modern);
        // Without a wildcard the exception's text, less a trailing `/**` or
        // `/*`, must begin with the dir.
        let ig = modern("a\n!a/b/**\nc\n!c/d/*\ne\n!/e/f/");
        for (dir, walked) in [
            ("a", true),
            ("a/b", true),
            ("a/x", false),
            ("c", true),
            ("c/d", true),
            ("c/x", false),
            ("e", true),
            ("e/f", true),
            ("x", false),
        ] {
            assert_eq!(ig.walks_into_excluded(dir), walked, "{dir}");
        }
        // Any wildcard left in any exception: every dir.
        for text in [
            "a\n!x*",
            "a\n!**/k",
            "a\n!x/[ab]",
            "a\n!x?",
            "a\n!a/*/k",
            "a\n!\\k",
        ] {
            assert!(modern(text).walks_into_excluded("a"), "{text:?}");
        }
        // No exception at all: none.
        assert!(!modern("a\nb/**").walks_into_excluded("a"));
        // A matched dir walked into is not sent for itself in Modern.
        let ig = modern("a\n!a/b/missing");
        assert!(!ig.includes("a", true) && !ig.includes("a/b", true));
        assert!(DockerIgnore::parse("a\n!a/b/missing").includes("a/b", true));
        assert_eq!(ig.dialect(), IgnoreDialect::Modern);
        assert_eq!(
            DockerIgnore::parse("a").dialect(),
            IgnoreDialect::Classic20_10
        );
    }

    #[test]
    fn parsing_rules() {
        let ig = DockerIgnore::parse(
            "\u{feff}# comment\n  #not-a-comment  \n\n! keep \n/abs\n./dot/\r\nx//y/../z\n",
        );
        let got: Vec<(bool, &str)> = ig.patterns().collect();
        assert_eq!(
            got,
            vec![
                (false, "#not-a-comment"),
                (true, "keep"),
                (false, "abs"),
                (false, "dot"),
                (false, "x/z"),
            ]
        );
        // A BOM only counts on the first line; on later lines it is part of
        // the pattern text.
        let ig = DockerIgnore::parse("a\n\u{feff}b");
        assert!(ig.is_excluded("\u{feff}b"));
        assert!(!ig.is_excluded("b"));
    }

    #[test]
    fn strict_parse_rejects_what_docker_rejects() {
        for (text, line) in [
            ("ok\n!", 2),
            ("! ", 1),
            ("!/", 1),
            ("a\\", 1),
            ("[abc", 1),
            ("[]", 1),
            ("[]a]", 1),
            ("[-a]", 1),
            ("[a-]", 1),
            ("x\ny\n[a\\", 3),
        ] {
            let err = DockerIgnore::parse_strict(text).expect_err(text);
            assert_eq!(err.line, line, "{text:?}: {err}");
        }
        // The lenient parser drops the bad lines and keeps the rest.
        let ig = DockerIgnore::parse("[abc\nkeep-me");
        assert_eq!(ig.patterns().count(), 1);
        assert!(ig.is_excluded("keep-me"));
    }

    #[test]
    fn walks_into_excluded_dirs_only_on_an_exception_prefix() {
        let ig = DockerIgnore::parse(
            "a\n!a/b/c\n*/x\n!*/x/keep\n!/q/r\n!./s/t/\nn\n!n\n!**/keep\nu\nu/v",
        );
        for (dir, walked) in [
            ("a", true),
            ("a/b", true),
            ("a/b/c", true),
            ("a/b/c/d", false),
            ("a/x", false),
            ("ab", false),
            ("b/x", false),
            // The exception's text is compared as text: only a directory
            // literally named `*` begins it.
            ("*", true),
            ("q", true),
            ("q/r", true),
            ("s/t", true),
            ("n", true),
            ("u", false),
            ("keep", false),
        ] {
            assert_eq!(ig.walks_into_excluded(dir), walked, "{dir}");
        }
        assert!(ig.includes("a", true), "walked into, so sent");
        assert!(!ig.includes("a", false), "a file named `a` is excluded");
        assert!(ig.includes("a/b", true));
        assert!(!ig.includes("a/b/f", false));
        assert!(ig.includes("a/b/c/d/f", false));
        assert!(!ig.includes("a/x", true));
        assert!(!ig.includes("b/x/keep", false));
        assert!(ig.includes("", true) && ig.includes(".", true));
        // Without exceptions nothing excluded is walked into.
        let ig = DockerIgnore::parse("a\na/b");
        assert!(!ig.walks_into_excluded("a"));
        assert!(!ig.includes("a/b/c", false));
    }

    #[test]
    fn ancestor_as_deep_as_the_pattern() {
        assert_eq!(ancestor("a/b/c", 1), "a");
        assert_eq!(ancestor("a/b/c", 2), "a/b");
        assert_eq!(ancestor("a/b/c", 3), "a/b/c");
        assert_eq!(ancestor("a/b/c", 7), "a/b/c");
        let depths: Vec<usize> = DockerIgnore::parse("*\n**/x\n!a/**/b\n/c/d\n./e/")
            .patterns
            .iter()
            .map(|p| p.depth)
            .collect();
        assert_eq!(depths, [1, 2, 3, 2, 1]);
    }

    #[test]
    fn walker_state_agrees_with_the_per_path_rule() {
        let paths = [
            "a",
            "a/b",
            "a/b/c",
            "a/b/c/d",
            "a/b/c/d/e/f",
            "a/b/d",
            "a/x",
            "x.tmp",
            "keep.tmp",
            "q/keep.tmp",
            "node_modules",
            "node_modules/r.js",
            "b/node_modules/m.js",
            "deep/h",
            "x/deep/f",
            "x/y/deep/g",
        ];
        for patterns in [
            "a\n!a/b\na/b/c\n**/*.tmp\n!keep.tmp",
            "*\n!**/node_modules",
            "**\n!**/deep\n!x/**",
            "a/*\n!a/b/**\n*/*/c\n!*/*/c/d/e",
        ] {
            let ig = DockerIgnore::parse(patterns);
            for path in paths {
                let mut state = Vec::new();
                for (i, dir) in parents(path).enumerate() {
                    state = ig.match_dir(&state, dir, i + 1).1;
                }
                assert_eq!(
                    ig.matched_in(&state, path),
                    ig.is_matched(path),
                    "{patterns:?} on {path}"
                );
            }
        }
    }
}
