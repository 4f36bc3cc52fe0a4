//! Turns BuildKit's status stream into the plain progress lines `docker build
//! --progress=plain` prints: `#5 [2/3] RUN make`, the step's output prefixed `#5 `,
//! `#5 DONE 0.2s`, `#5 CACHED`, `#5 ERROR: …`.
//!
//! Vertexes are numbered in the order they start, as docker does; a vertex re-sent as its
//! state changes prints only what is new. Keeps the tail of the log (a bounded number of
//! lines and bytes, however much a build prints) for a failure report, and notices what must
//! not pass silently (a cache import refused by the registry).
//! Not for: sending lines anywhere (the caller does).

use std::collections::{HashMap, VecDeque};

use bollard::moby::buildkit::v1::StatusResponse;

use super::error::{DaemonText, classify};

/// How BuildKit names the step that imports a cache source.
const CACHE_IMPORT: &str = "importing cache manifest from ";

/// How BuildKit names a cache export's step (`exporting cache to registry`, …).
const CACHE_EXPORT: &str = "exporting cache";

/// The failure report keeps at most this many of the last lines …
const TAIL_LINES: usize = 5_000;
/// … and at most this many bytes of them.
const TAIL_BYTES: usize = 2 * 1024 * 1024;
/// A line longer than this is cut (a step may print megabytes without a newline).
const MAX_LINE: usize = 16 * 1024;

#[derive(Default)]
struct VertexState {
    number: usize,
    name: String,
    announced: bool,
    finished: bool,
    partial: String,
}

/// Plain-progress renderer for one build.
#[derive(Default)]
pub struct ProgressPrinter {
    vertexes: HashMap<String, VertexState>,
    next: usize,
    tail: VecDeque<String>,
    tail_bytes: usize,
    dropped: usize,
    failed_step: Option<String>,
    warnings: Vec<String>,
    /// The cache exports that failed (`step: error`): a failed build with no `ignoreError`,
    /// a warning after one that went well.
    failed_cache_exports: Vec<String>,
}

impl ProgressPrinter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Renders one status message; returns the new lines.
    pub fn handle(&mut self, status: &StatusResponse) -> Vec<String> {
        let mut out = Vec::new();
        for v in &status.vertexes {
            let seen = self.vertexes.contains_key(&v.digest);
            if !seen && v.started.is_none() && !v.cached && v.completed.is_none() {
                // Not started yet: docker does not show pending steps.
                continue;
            }
            let number = match self.vertexes.get(&v.digest) {
                Some(s) => s.number,
                None => {
                    self.next += 1;
                    self.vertexes.insert(
                        v.digest.clone(),
                        VertexState {
                            number: self.next,
                            name: v.name.clone(),
                            ..VertexState::default()
                        },
                    );
                    self.next
                }
            };
            let state = self.vertexes.get_mut(&v.digest).expect("inserted above");
            if !state.announced {
                state.announced = true;
                out.push(format!("#{number} {}", v.name));
            }
            if state.finished {
                continue;
            }
            if v.cached {
                state.finished = true;
                out.push(format!("#{number} CACHED"));
            } else if !v.error.is_empty() {
                state.finished = true;
                flush_partial(number, state, &mut out);
                let cache_source = v.name.strip_prefix(CACHE_IMPORT);
                match cache_source {
                    // The image's own tag before its first push: nothing to import yet, and
                    // nothing wrong.
                    Some(source) if v.error.trim_end().ends_with("not found") => {
                        out.push(format!("#{number} no cache at {source} yet: first build"));
                    }
                    Some(_) => {
                        out.push(format!("#{number} ERROR: {}", v.error));
                        self.warnings.push(format!(
                            "the build cache could not be imported ({}): {}",
                            v.name, v.error
                        ));
                    }
                    None => {
                        out.push(format!("#{number} ERROR: {}", v.error));
                        if v.name.starts_with(CACHE_EXPORT) {
                            self.failed_cache_exports
                                .push(format!("{}: {}", v.name, v.error));
                        }
                        if !v.error.contains("context canceled") && self.failed_step.is_none() {
                            self.failed_step = Some(v.name.clone());
                        }
                    }
                }
            } else if let (Some(start), Some(end)) = (&v.started, &v.completed) {
                state.finished = true;
                flush_partial(number, state, &mut out);
                let secs =
                    (end.seconds - start.seconds) as f64 + f64::from(end.nanos - start.nanos) / 1e9;
                out.push(format!("#{number} DONE {:.1}s", secs.max(0.0)));
            }
        }
        for s in &status.statuses {
            if s.completed.is_none() {
                continue;
            }
            if let Some(state) = self.vertexes.get(&s.vertex) {
                let size = if s.total > 0 {
                    format!(" {}", human_bytes(s.total))
                } else if s.current > 0 {
                    format!(" {}", human_bytes(s.current))
                } else {
                    String::new()
                };
                out.push(format!("#{} {}{size} done", state.number, s.id));
            }
        }
        for l in &status.logs {
            let Some(state) = self.vertexes.get_mut(&l.vertex) else {
                continue;
            };
            state.partial.push_str(&String::from_utf8_lossy(&l.msg));
            if !state.partial.contains('\n') && state.partial.len() > MAX_LINE {
                // No newline in sight: show what there is rather than hold it all.
                state.partial.push('\n');
            }
            while let Some(i) = state.partial.find('\n') {
                let line: String = state.partial.drain(..=i).collect();
                let line = cut(line.trim_end_matches(['\n', '\r']));
                out.push(format!("#{} {line}", state.number));
                if classify(&line) == DaemonText::Unauthorized
                    && state.name.starts_with(CACHE_IMPORT)
                {
                    self.warnings.push(format!(
                        "the build cache could not be imported ({}): {line}",
                        state.name
                    ));
                }
            }
        }
        for w in &status.warnings {
            out.push(format!("WARNING: {}", String::from_utf8_lossy(&w.short)));
        }
        for line in &out {
            self.keep(line);
        }
        out
    }

    fn keep(&mut self, line: &str) {
        self.tail_bytes += line.len();
        self.tail.push_back(line.to_string());
        while self.tail.len() > TAIL_LINES || self.tail_bytes > TAIL_BYTES {
            let Some(old) = self.tail.pop_front() else {
                break;
            };
            self.tail_bytes -= old.len();
            self.dropped += 1;
        }
    }

    /// The log for a failure report: the last lines rendered (all of them for any ordinary
    /// build), after a note of how many earlier ones were not kept.
    pub fn log(&self) -> String {
        let mut text = String::with_capacity(self.tail_bytes + self.tail.len() + 64);
        if self.dropped > 0 {
            text.push_str(&format!(
                "… {} earlier lines not kept; the last {} follow\n",
                self.dropped,
                self.tail.len()
            ));
        }
        for (i, line) in self.tail.iter().enumerate() {
            if i > 0 {
                text.push('\n');
            }
            text.push_str(line);
        }
        text
    }

    /// The name of the first step that failed, if one did.
    pub fn failed_step(&self) -> Option<&str> {
        self.failed_step.as_deref()
    }

    /// The cache exports that failed, each `step: error` (taken once).
    pub fn take_failed_cache_exports(&mut self) -> Vec<String> {
        std::mem::take(&mut self.failed_cache_exports)
    }

    /// Problems that did not fail the build but must be shown (taken once).
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }
}

fn flush_partial(number: usize, state: &mut VertexState, out: &mut Vec<String>) {
    if !state.partial.is_empty() {
        out.push(format!("#{number} {}", cut(state.partial.trim_end())));
        state.partial.clear();
    }
}

/// `line`, cut to [`MAX_LINE`] bytes (at a character boundary) with a note of the cut.
fn cut(line: &str) -> String {
    if line.len() <= MAX_LINE {
        return line.to_string();
    }
    let mut end = MAX_LINE;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… [{} more bytes]", &line[..end], line.len() - end)
}

fn human_bytes(n: i64) -> String {
    let n = n as f64;
    if n < 1024.0 {
        format!("{n}B")
    } else if n < 1024.0 * 1024.0 {
        format!("{:.2}kB", n / 1024.0)
    } else {
        format!("{:.2}MB", n / (1024.0 * 1024.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::moby::buildkit::v1::{Vertex, VertexLog};

    fn started(v: &mut Vertex, seconds: i64, nanos: i32) {
        let t = v.started.get_or_insert_with(Default::default);
        t.seconds = seconds;
        t.nanos = nanos;
    }

    fn completed(v: &mut Vertex, seconds: i64, nanos: i32) {
        let t = v.completed.get_or_insert_with(Default::default);
        t.seconds = seconds;
        t.nanos = nanos;
    }

    fn vertex(digest: &str, name: &str) -> Vertex {
        Vertex {
            digest: digest.into(),
            name: name.into(),
            ..Vertex::default()
        }
    }

    #[test]
    fn renders_docker_plain_progress() {
        let mut p = ProgressPrinter::new();
        let mut run = vertex("sha256:b", "[2/2] RUN echo hi");
        let mut from = vertex("sha256:a", "[1/2] FROM base");
        started(&mut from, 10, 0);
        let out = p.handle(&StatusResponse {
            vertexes: vec![from.clone(), run.clone()],
            ..Default::default()
        });
        assert_eq!(
            out,
            vec!["#1 [1/2] FROM base"],
            "pending steps are not shown"
        );
        completed(&mut from, 10, 200_000_000);
        started(&mut run, 10, 300_000_000);
        let out = p.handle(&StatusResponse {
            vertexes: vec![from.clone(), run.clone()],
            logs: vec![VertexLog {
                vertex: "sha256:b".into(),
                msg: b"hi\npart".to_vec(),
                ..Default::default()
            }],
            ..Default::default()
        });
        assert_eq!(out, vec!["#1 DONE 0.2s", "#2 [2/2] RUN echo hi", "#2 hi"]);
        completed(&mut run, 11, 0);
        let out = p.handle(&StatusResponse {
            vertexes: vec![from, run],
            ..Default::default()
        });
        assert_eq!(out, vec!["#2 part", "#2 DONE 0.7s"]);
        assert_eq!(p.log().lines().count(), 6);
        assert_eq!(p.failed_step(), None);
    }

    #[test]
    fn cached_and_failed_steps() {
        let mut p = ProgressPrinter::new();
        let mut a = vertex("a", "[1/3] COPY . /");
        a.cached = true;
        let mut b = vertex("b", "[2/3] RUN exit 3");
        started(&mut b, 1, 0);
        b.error =
            "process \"/bin/sh -c exit 3\" did not complete successfully: exit code: 3".into();
        let out = p.handle(&StatusResponse {
            vertexes: vec![a.clone(), b.clone()],
            ..Default::default()
        });
        assert_eq!(out[0], "#1 [1/3] COPY . /");
        assert_eq!(out[1], "#1 CACHED");
        assert_eq!(out[2], "#2 [2/3] RUN exit 3");
        assert!(out[3].starts_with("#2 ERROR: process"), "{}", out[3]);
        assert_eq!(p.failed_step(), Some("[2/3] RUN exit 3"));
        // Re-sent vertexes print nothing new.
        assert!(
            p.handle(&StatusResponse {
                vertexes: vec![a, b],
                ..Default::default()
            })
            .is_empty()
        );
    }

    #[test]
    fn the_log_keeps_a_bounded_tail() {
        let mut p = ProgressPrinter::new();
        let mut v = vertex("v", "[1/1] RUN yes");
        started(&mut v, 1, 0);
        p.handle(&StatusResponse {
            vertexes: vec![v],
            ..Default::default()
        });
        // 50 MB of output in 64 KiB messages, lines of 100 bytes and one huge line.
        let chunk = format!("{}\n", "y".repeat(99)).repeat(655);
        for _ in 0..800 {
            p.handle(&StatusResponse {
                logs: vec![VertexLog {
                    vertex: "v".into(),
                    msg: chunk.clone().into_bytes(),
                    ..Default::default()
                }],
                ..Default::default()
            });
        }
        let out = p.handle(&StatusResponse {
            logs: vec![VertexLog {
                vertex: "v".into(),
                msg: "z".repeat(MAX_LINE * 3).into_bytes(),
                ..Default::default()
            }],
            ..Default::default()
        });
        assert!(
            out.iter().all(|l| l.len() < MAX_LINE + 64),
            "long lines are cut"
        );
        let log = p.log();
        assert!(log.len() <= TAIL_BYTES + 1024, "{} bytes kept", log.len());
        assert!(log.starts_with("… "), "the cut is said");
        assert!(log.lines().count() <= TAIL_LINES + 1);
        assert!(log.ends_with("more bytes]"), "the newest line is kept");
    }

    #[test]
    fn a_missing_cache_source_is_a_plain_note() {
        let mut p = ProgressPrinter::new();
        let mut v = vertex(
            "c",
            "importing cache manifest from 127.0.0.1:5000/app:latest",
        );
        started(&mut v, 1, 0);
        v.error = "127.0.0.1:5000/app:latest: not found".into();
        let out = p.handle(&StatusResponse {
            vertexes: vec![v],
            ..Default::default()
        });
        assert_eq!(
            out,
            [
                "#1 importing cache manifest from 127.0.0.1:5000/app:latest",
                "#1 no cache at 127.0.0.1:5000/app:latest yet: first build"
            ]
        );
        assert!(p.take_warnings().is_empty());
        assert_eq!(p.failed_step(), None);
    }

    #[test]
    fn refused_cache_import_is_a_warning() {
        let mut p = ProgressPrinter::new();
        let mut v = vertex(
            "c",
            "importing cache manifest from 127.0.0.1:5000/app:latest",
        );
        started(&mut v, 1, 0);
        v.error = "failed to authorize: failed to fetch anonymous token: unexpected status: 401 Unauthorized".into();
        p.handle(&StatusResponse {
            vertexes: vec![v],
            ..Default::default()
        });
        let w = p.take_warnings();
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("401 Unauthorized"));
        assert_eq!(
            p.failed_step(),
            None,
            "a refused cache import does not fail the build"
        );
        assert!(p.take_warnings().is_empty());
    }
}
