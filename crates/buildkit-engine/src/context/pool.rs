//! The one worker pool of the context code: the walk lists directories on
//! it and the hash reads files on it.
//!
//! This is for running many small file-system tasks on every core and
//! stopping at the first failure: a shared stack of tasks (a task may add
//! more, as a directory listing adds its subdirectories) served by the
//! calling thread plus helpers, each with its own [`Worker`] state, until
//! the stack is empty and no task is running. Of the errors seen, the one
//! with the smallest key is returned (keys are paths or indices in path
//! order), so which error is reported depends little on scheduling. It is
//! not for long-lived or asynchronous work: every call starts and joins its
//! own scoped threads.

use std::sync::{Condvar, Mutex, MutexGuard};

use super::ContextError;

/// Upper bound on threads (more only helps on network file systems).
pub(crate) const MAX_THREADS: usize = 16;

/// One thread's state and what it does with a task.
pub(crate) trait Worker: Send {
    type Task: Send;
    /// Orders errors: the smallest key seen wins.
    type Key: Ord + Send;

    /// Does one task; tasks pushed to `more` are added to the stack.
    fn work(
        &mut self,
        task: Self::Task,
        more: &mut Vec<Self::Task>,
    ) -> Result<(), (Self::Key, ContextError)>;

    /// Called on the worker's thread once every task is done (not after a
    /// failure).
    fn finish(&mut self) {}
}

/// Runs `tasks` (the last one first) and the tasks they add on `threads`
/// threads at most, the calling thread included, each with a worker from
/// `make`. Returns the workers of the threads that ran, or the error with
/// the smallest key; once a task has failed no new task is started.
pub(crate) fn run<W: Worker>(
    name: &str,
    threads: usize,
    tasks: Vec<W::Task>,
    make: impl Fn() -> W + Sync,
) -> Result<Vec<W>, ContextError> {
    let pool = Pool {
        state: Mutex::new(State {
            tasks,
            busy: 0,
            waiting: 0,
            error: None,
        }),
        changed: Condvar::new(),
    };
    let threads = threads.clamp(1, MAX_THREADS);
    let mut workers = Vec::with_capacity(threads);
    std::thread::scope(|scope| {
        let helpers: Vec<_> = (1..threads)
            .map_while(|n| {
                std::thread::Builder::new()
                    .name(format!("{name}-{n}"))
                    .spawn_scoped(scope, || pool.serve(make()))
                    .ok()
            })
            .collect();
        workers.push(pool.serve(make()));
        for helper in helpers {
            match helper.join() {
                Ok(worker) => workers.push(worker),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
    });
    let state = pool.state.into_inner().unwrap_or_else(|e| e.into_inner());
    match state.error {
        Some((_, error)) => Err(error),
        None => Ok(workers),
    }
}

struct Pool<T, K> {
    state: Mutex<State<T, K>>,
    /// Signalled when tasks are added, the last running task ends, or a
    /// task fails (only if some thread is waiting).
    changed: Condvar,
}

struct State<T, K> {
    tasks: Vec<T>,
    /// Tasks running right now.
    busy: usize,
    /// Threads waiting for `changed`.
    waiting: usize,
    error: Option<(K, ContextError)>,
}

impl<T, K> Pool<T, K> {
    fn lock(&self) -> MutexGuard<'_, State<T, K>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wake(&self, state: &State<T, K>) {
        if state.waiting > 0 {
            self.changed.notify_all();
        }
    }

    /// One thread: takes tasks until there are none left and none running
    /// (which could add more), or a task failed.
    fn serve<W: Worker<Task = T, Key = K>>(&self, mut worker: W) -> W
    where
        K: Ord,
    {
        let mut more = Vec::new();
        let mut state = self.lock();
        loop {
            if state.error.is_some() {
                return worker;
            }
            let Some(task) = state.tasks.pop() else {
                if state.busy == 0 {
                    self.wake(&state);
                    drop(state);
                    worker.finish();
                    return worker;
                }
                state.waiting += 1;
                state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
                state.waiting -= 1;
                continue;
            };
            state.busy += 1;
            drop(state);
            let running = Running(self);
            let result = worker.work(task, &mut more);
            state = running.end();
            match result {
                Ok(()) if more.is_empty() && state.busy > 0 => continue,
                Ok(()) => state.tasks.append(&mut more),
                Err((key, error)) => {
                    more.clear();
                    if state.error.as_ref().is_none_or(|(first, _)| key < *first) {
                        state.error = Some((key, error));
                    }
                }
            }
            self.wake(&state);
        }
    }
}

/// A task being run: if it panics, it still counts as ended and waiting
/// threads are woken, so none waits forever.
struct Running<'a, T, K>(&'a Pool<T, K>);

impl<'a, T, K> Running<'a, T, K> {
    /// The task ended normally: returns the lock, with the task no longer
    /// counted as running.
    fn end(self) -> MutexGuard<'a, State<T, K>> {
        let pool = self.0;
        std::mem::forget(self);
        let mut state = pool.lock();
        state.busy -= 1;
        state
    }
}

impl<T, K> Drop for Running<'_, T, K> {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.busy -= 1;
        self.0.wake(&state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts down: task `n` adds tasks `n - 1` and `n - 2` (a tree of
    /// tasks). Tasks for which `fails` holds fail; with `panics`, task 0
    /// panics.
    struct Countdown {
        done: Vec<u32>,
        fails: fn(u32) -> bool,
        panics: bool,
        finished: bool,
    }

    impl Worker for Countdown {
        type Task = u32;
        type Key = u32;

        fn work(&mut self, n: u32, more: &mut Vec<u32>) -> Result<(), (u32, ContextError)> {
            if (self.fails)(n) {
                let source = std::io::Error::other(format!("task {n}"));
                let path = format!("task-{n}").into();
                return Err((n, ContextError::ReadFile { path, source }));
            }
            assert!(!(self.panics && n == 0), "task 0 panics");
            self.done.push(n);
            more.extend((n >= 2).then(|| [n - 1, n - 2]).into_iter().flatten());
            Ok(())
        }

        fn finish(&mut self) {
            self.finished = true;
        }
    }

    fn countdown(fails: fn(u32) -> bool, panics: bool) -> impl Fn() -> Countdown + Sync {
        move || Countdown {
            done: Vec::new(),
            fails,
            panics,
            finished: false,
        }
    }

    fn message(result: Result<Vec<Countdown>, ContextError>) -> String {
        result.err().expect("a task fails").to_string()
    }

    #[test]
    fn runs_every_task_and_those_they_add_on_any_number_of_threads() {
        let mut want: Vec<u32> = Vec::new();
        let mut stack = vec![15u32];
        while let Some(n) = stack.pop() {
            want.push(n);
            if n >= 2 {
                stack.extend([n - 1, n - 2]);
            }
        }
        want.sort_unstable();
        for threads in [0, 1, 2, 3, 8, 100] {
            let workers =
                run("test-pool", threads, vec![15], countdown(|_| false, false)).expect("run");
            assert!(!workers.is_empty() && workers.len() <= threads.clamp(1, MAX_THREADS));
            assert!(workers.iter().all(|w| w.finished), "{threads} threads");
            let mut got: Vec<u32> = workers.into_iter().flat_map(|w| w.done).collect();
            got.sort_unstable();
            assert_eq!(got, want, "{threads} threads");
        }
        let workers = run("test-pool", 4, Vec::new(), countdown(|_| false, false)).expect("none");
        assert!(workers.iter().all(|w| w.done.is_empty()));
    }

    #[test]
    fn a_failure_stops_the_pool_and_is_returned() {
        for threads in [1, 2, 4] {
            let msg = message(run(
                "test-pool",
                threads,
                vec![12, 20],
                countdown(|n| n == 3, false),
            ));
            assert!(msg.contains("task 3"), "{threads} threads: {msg}");
        }
    }

    #[test]
    fn of_several_failures_the_smallest_key_is_returned() {
        let all = || countdown(|_| true, false);
        // One thread takes the last task first and stops there.
        let msg = message(run("test-pool", 1, vec![1, 2, 3], all()));
        assert!(msg.contains("task 3"), "{msg}");
        // Several threads each fail on the task they took: the smallest of
        // the failures seen is returned, whichever thread saw it first.
        for _ in 0..20 {
            let msg = message(run("test-pool", 3, vec![9, 7, 8], all()));
            assert!(msg.contains("task 7") || msg.contains("task 8"), "{msg}");
        }
    }

    #[test]
    fn a_panicking_task_does_not_leave_other_threads_waiting() {
        let outcome =
            std::panic::catch_unwind(|| run("test-pool", 4, vec![10], countdown(|_| false, true)));
        assert!(outcome.is_err(), "the panic reaches the caller");
    }
}
