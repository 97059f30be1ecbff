//! The writer behind flowcore's console logs: a line is copied into a buffer and a thread of
//! the writer's own writes it out, so that a task never waits on a terminal or a pipe (a
//! `write` call per line, and a slow reader, cost more than the rest of a task run).
//!
//! Nothing is dropped: when the buffer holds [`ROOM`] bytes, the next line waits for the
//! thread to take them (tracing-appender's non-blocking writer drops lines then unless told
//! otherwise, and cannot say when what it was given has been written, which the end of a flow
//! run waits for). One thread per writer takes the whole buffer at a time, so lines come out
//! in the order they were written, and a line written with one `write` call stays whole.
//!
//! What was given is written out before a flow run's call returns ([`flushed`]), and before
//! the process exits ([`crate::exit`]: when `main` returns, at `std::process::exit`, and so at
//! the end of flowcore's Ctrl-C handling). A process killed outright loses what the thread had
//! not yet written, which is rarely more than the lines of the last few microseconds.

use std::future::Future;
use std::io::{self, Write};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

/// How many bytes wait for the thread before a writer waits for room: a few thousand lines.
/// More would let a flow run further ahead of a slow terminal, holding more memory.
pub(crate) const ROOM: usize = 1 << 20;

/// How long the thread naps between looks for lines, and how long it goes on looking once no
/// line has come, before it sleeps until woken: a line waits at most a nap to be written, and
/// a process that logs nothing for a millisecond has a thread that costs nothing.
const NAP: Duration = Duration::from_micros(100);
const LINGER: Duration = Duration::from_millis(1);

/// A writer whose lines a thread of its own writes out: see [`non_blocking`].
///
/// Cloning it gives another handle to the same buffer and thread. Once every handle is dropped
/// the thread writes what is left and ends, and the last drop waits for that.
#[derive(Clone)]
pub struct NonBlocking {
    handle: Arc<Handle>,
}

/// Lets the thread end once no handle is left.
struct Handle {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    /// The thread waits here for lines.
    lines: Condvar,
    /// Writers waiting for room, and flushes for their lines to be written, wait here.
    written: Condvar,
    out: Mutex<Box<dyn Write + Send>>,
}

struct State {
    /// Lines given and not yet taken by the thread.
    pending: Vec<u8>,
    /// Bytes given since the writer was made, and bytes written out of them (the thread's
    /// progress): a flush waits for `written` to reach what `appended` was when it started.
    appended: u64,
    written: u64,
    /// No thread writes for this writer (none could be started, or it is not wanted here):
    /// each line is written on the thread that gives it.
    direct: bool,
    /// The thread is waiting for lines, and must be woken for the next.
    idle: bool,
    /// The thread is napping between looks for lines: a line given meanwhile waits for the
    /// next look, but somebody waiting for lines to be written wakes it.
    napping: bool,
    /// Threads waiting on `written`: no wake-up call (a system call) is made for nobody.
    waiting: usize,
    /// Flow runs waiting for their lines to be written.
    wakers: Vec<Waker>,
    /// Every handle is gone: the thread ends once `pending` is written.
    closed: bool,
    /// The process is exiting: each line is written before the call that gave it returns.
    exiting: bool,
}

/// A writer that writes what it is given on a thread of its own: for
/// [`layer_to`](crate::logging::layer_to), or any `tracing_subscriber` layer that writes a
/// line with one `write` call. [`layer()`](crate::logging::layer) and
/// [`init_logging`](crate::init_logging) print to stdout through one.
///
/// A line costs a copy into a buffer; the writer's thread writes out all that has come in at
/// each turn, with one `write` call, however many lines it holds. Lines are never dropped:
/// when a megabyte waits for a slow reader, the next line waits for room. Everything given is
/// written before each flow run's call returns ([`flush`] waits for it too) and before the
/// process exits.
///
/// ```
/// use tracing_subscriber::layer::SubscriberExt as _;
///
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("runs.log");
/// let file = std::fs::File::create(&path).unwrap();
/// let subscriber = tracing_subscriber::registry()
///     .with(flowcore::logging::layer_to(flowcore::logging::non_blocking(file), false));
/// tracing::subscriber::with_default(subscriber, || tracing::info!("loaded 10 rows"));
/// // The subscriber was dropped, and its writer with it: the file has every line.
/// let text = std::fs::read_to_string(&path).unwrap();
/// assert!(text.ends_with(" - loaded 10 rows\n"), "{text}");
/// ```
pub fn non_blocking<W: Write + Send + 'static>(out: W) -> NonBlocking {
    NonBlocking::new(Box::new(out), cfg!(unix))
}

/// Waits until every [`NonBlocking`] writer has written out what it was given: for a program
/// that prints with `println!` between flowcore's log lines and wants its own line after them.
/// Each flow run's call does this before it returns.
///
/// ```
/// flowcore::init_logging();
/// tracing::info!("the last line before the report");
/// flowcore::logging::flush();
/// println!("report: 3 rows");
/// ```
pub fn flush() {
    for shared in live_writers() {
        shared.flush_blocking();
    }
}

/// The writer that [`layer()`](crate::logging::layer) prints to stdout with.
pub(crate) fn stdout() -> NonBlocking {
    static STDOUT: OnceLock<NonBlocking> = OnceLock::new();
    STDOUT.get_or_init(|| non_blocking(io::stdout())).clone()
}

/// Every writer made, while it lives: what [`flush`], the end of a flow run and the exit write
/// out.
static WRITERS: Mutex<Vec<Weak<Shared>>> = Mutex::new(Vec::new());

/// Whether a writer was ever made: what a flow run checks before it looks for lines to wait
/// for, so that logging off costs one load.
static ANY: AtomicBool = AtomicBool::new(false);

fn live_writers() -> Vec<Arc<Shared>> {
    if !ANY.load(Ordering::Acquire) {
        return Vec::new();
    }
    lock(&WRITERS).iter().filter_map(Weak::upgrade).collect()
}

/// Waits, without blocking the runtime's thread, until every writer has written what it was
/// given so far: for the end of a flow run, so that its lines come before what the program
/// prints after the call.
pub(crate) async fn flushed() {
    for shared in live_writers() {
        let upto = lock(&shared.state).appended;
        Flushed {
            shared: &shared,
            upto,
        }
        .await;
    }
}

/// Writes out everything every writer was given, and from then on each line as it is given:
/// for the process's exit, when the threads may be stopped at any moment after.
#[cfg_attr(not(unix), allow(dead_code))]
pub(crate) fn at_exit() {
    for shared in live_writers() {
        lock(&shared.state).exiting = true;
        shared.flush_blocking();
    }
}

/// A poisoned lock still guards bytes that are whole (a panic cannot happen while they are
/// half-copied): logging goes on.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl NonBlocking {
    fn new(out: Box<dyn Write + Send>, threaded: bool) -> NonBlocking {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                pending: Vec::new(),
                appended: 0,
                written: 0,
                direct: true,
                idle: false,
                napping: false,
                waiting: 0,
                wakers: Vec::new(),
                closed: false,
                exiting: false,
            }),
            lines: Condvar::new(),
            written: Condvar::new(),
            out: Mutex::new(out),
        });
        if threaded {
            let thread = Arc::clone(&shared);
            let spawned = std::thread::Builder::new()
                .name("flowcore-log".to_owned())
                .spawn(move || thread.run());
            // Without a thread (the system's limit reached), lines are written as they come.
            lock(&shared.state).direct = spawned.is_err();
        }
        {
            let mut writers = lock(&WRITERS);
            writers.retain(|w| w.strong_count() > 0);
            writers.push(Arc::downgrade(&shared));
        }
        ANY.store(true, Ordering::Release);
        crate::exit::arm();
        NonBlocking {
            handle: Arc::new(Handle { shared }),
        }
    }

    fn shared(&self) -> &Shared {
        &self.handle.shared
    }
}

impl Shared {
    /// Takes `bytes` to be written: waits only while the buffer is full.
    fn push(&self, bytes: &[u8]) {
        let mut state = lock(&self.state);
        if state.direct {
            drop(state);
            self.write_out(bytes);
            return;
        }
        while state.pending.len() >= ROOM {
            state.waiting += 1;
            state = self.written.wait(state).unwrap_or_else(|e| e.into_inner());
            state.waiting -= 1;
        }
        state.pending.extend_from_slice(bytes);
        state.appended += bytes.len() as u64;
        let wake = std::mem::take(&mut state.idle);
        let exiting = state.exiting;
        drop(state);
        if wake {
            self.lines.notify_one();
        }
        if exiting {
            self.flush_blocking();
        }
    }

    /// Wakes a napping thread for somebody who waits for lines to be written: once per wait,
    /// not per line.
    fn wake_for_waiter(&self, state: &State) {
        if state.napping {
            self.lines.notify_one();
        }
    }

    /// Waits until what was given before the call has been written out.
    fn flush_blocking(&self) {
        let mut state = lock(&self.state);
        let upto = state.appended;
        if state.written < upto {
            self.wake_for_waiter(&state);
        }
        while state.written < upto && !state.direct {
            state.waiting += 1;
            state = self.written.wait(state).unwrap_or_else(|e| e.into_inner());
            state.waiting -= 1;
        }
    }

    /// The thread: takes all the lines that have come in, writes them, and says so.
    fn run(&self) {
        let mut batch = Vec::new();
        loop {
            let mut state = lock(&self.state);
            let mut quiet = Duration::ZERO;
            while state.pending.is_empty() {
                if state.closed {
                    return;
                }
                if quiet < LINGER {
                    // Lines that come while it naps are taken at the next turn with no
                    // wake-up call: a line logged to a napping thread costs the logging one.
                    // A flow run waiting for its lines wakes it (see `wake_for_waiter`): it
                    // would otherwise wait out the nap.
                    state.napping = true;
                    state = self
                        .lines
                        .wait_timeout(state, NAP)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                    state.napping = false;
                    quiet += NAP;
                    continue;
                }
                state.idle = true;
                state = self.lines.wait(state).unwrap_or_else(|e| e.into_inner());
            }
            std::mem::swap(&mut state.pending, &mut batch);
            let upto = state.appended;
            drop(state);

            self.write_out(&batch);
            batch.clear();
            // A burst once grew it: it is not kept that large for good.
            batch.shrink_to(ROOM);

            let mut state = lock(&self.state);
            state.written = upto;
            let waiting = state.waiting > 0;
            let wakers = std::mem::take(&mut state.wakers);
            drop(state);
            if waiting {
                self.written.notify_all();
            }
            wakers.into_iter().for_each(Waker::wake);
        }
    }

    /// Writes `bytes` out. An error (a closed pipe, a full disk) loses them: there is nowhere
    /// else to say it, and the next lines may fare better. A panicking writer is taken as one.
    fn write_out(&self, bytes: &[u8]) {
        let mut out = lock(&self.out);
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = out.write_all(bytes);
            let _ = out.flush();
        }));
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        let mut state = lock(&self.shared.state);
        state.closed = true;
        let wake = std::mem::take(&mut state.idle);
        drop(state);
        if wake {
            self.shared.lines.notify_one();
        }
        self.shared.flush_blocking();
    }
}

/// A flow run's wait for the lines given before it ended.
struct Flushed<'a> {
    shared: &'a Shared,
    upto: u64,
}

impl Future for Flushed<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = lock(&self.shared.state);
        if state.written >= self.upto || state.direct {
            return Poll::Ready(());
        }
        if !state.wakers.iter().any(|w| w.will_wake(cx.waker())) {
            state.wakers.push(cx.waker().clone());
            self.shared.wake_for_waiter(&state);
        }
        Poll::Pending
    }
}

impl io::Write for &NonBlocking {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.shared().push(bytes);
        Ok(bytes.len())
    }

    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.shared().push(bytes);
        Ok(())
    }

    /// Waits until everything given so far has been written out.
    fn flush(&mut self) -> io::Result<()> {
        self.shared().flush_blocking();
        Ok(())
    }
}

impl io::Write for NonBlocking {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        (&*self).write(bytes)
    }

    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        (&*self).write_all(bytes)
    }

    fn flush(&mut self) -> io::Result<()> {
        (&*self).flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for NonBlocking {
    type Writer = &'a NonBlocking;

    fn make_writer(&'a self) -> Self::Writer {
        self
    }
}

impl std::fmt::Debug for NonBlocking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NonBlocking")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that keeps what it is given, for reading back.
    #[derive(Clone, Default)]
    struct Kept(Arc<Mutex<Vec<u8>>>);

    impl Write for Kept {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            lock(&self.0).extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// A writer that takes its time, so that lines pile up and the buffer fills.
    struct Slow(Kept);

    impl Write for Slow {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            std::thread::sleep(std::time::Duration::from_millis(1));
            self.0.write(bytes)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn lines(n: usize, thread: usize) -> impl Iterator<Item = String> {
        (0..n).map(move |i| format!("thread {thread} line {i:06} {}\n", "x".repeat(i % 300)))
    }

    #[test]
    fn every_line_arrives_whole_and_in_order_through_a_full_buffer() {
        let kept = Kept::default();
        let writer = NonBlocking::new(Box::new(Slow(kept.clone())), true);
        // Four threads writing far more than ROOM to a slow reader: they wait for room.
        std::thread::scope(|s| {
            for t in 0..4 {
                let writer = writer.clone();
                s.spawn(move || {
                    for line in lines(5_000, t) {
                        (&writer).write_all(line.as_bytes()).unwrap();
                    }
                });
            }
        });
        (&writer).flush().unwrap();
        let text = String::from_utf8(lock(&kept.0).clone()).unwrap();
        for t in 0..4 {
            let own: Vec<&str> = text
                .lines()
                .filter(|l| l.starts_with(&format!("thread {t} ")))
                .collect();
            let expected: Vec<String> = lines(5_000, t)
                .map(|l| l.trim_end_matches('\n').to_owned())
                .collect();
            assert_eq!(own, expected, "thread {t}'s lines");
        }
        assert_eq!(text.lines().count(), 20_000);
    }

    #[test]
    fn dropping_the_last_handle_writes_everything_and_ends_the_thread() {
        let kept = Kept::default();
        let writer = NonBlocking::new(Box::new(Slow(kept.clone())), true);
        let weak = Arc::downgrade(&writer.handle.shared);
        for line in lines(100, 0) {
            (&writer).write_all(line.as_bytes()).unwrap();
        }
        drop(writer);
        assert_eq!(lock(&kept.0).iter().filter(|&&b| b == b'\n').count(), 100);
        // The thread let go of its share once it ended.
        for _ in 0..1000 {
            if weak.strong_count() == 0 {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("the writer's thread did not end");
    }

    #[test]
    fn without_a_thread_lines_are_written_as_they_come() {
        let kept = Kept::default();
        let writer = NonBlocking::new(Box::new(kept.clone()), false);
        (&writer).write_all(b"one\n").unwrap();
        assert_eq!(lock(&kept.0).as_slice(), b"one\n");
    }

    #[test]
    fn a_flow_run_s_wait_ends_when_its_lines_are_written() {
        let kept = Kept::default();
        let writer = NonBlocking::new(Box::new(Slow(kept.clone())), true);
        for line in lines(50, 0) {
            (&writer).write_all(line.as_bytes()).unwrap();
        }
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(flushed());
        assert_eq!(lock(&kept.0).iter().filter(|&&b| b == b'\n').count(), 50);
    }

    #[test]
    fn once_the_process_exits_each_line_is_written_before_the_call_returns() {
        let kept = Kept::default();
        let writer = NonBlocking::new(Box::new(Slow(kept.clone())), true);
        (&writer).write_all(b"before\n").unwrap();
        lock(&writer.shared().state).exiting = true;
        writer.shared().flush_blocking();
        assert_eq!(lock(&kept.0).as_slice(), b"before\n");
        (&writer).write_all(b"after\n").unwrap();
        assert_eq!(lock(&kept.0).as_slice(), b"before\nafter\n");
    }

    #[test]
    fn a_writer_that_fails_or_panics_loses_its_lines_not_the_program() {
        struct Broken;
        impl Write for Broken {
            fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
                if bytes.starts_with(b"panic") {
                    panic!("the writer broke");
                }
                Err(io::Error::from(io::ErrorKind::BrokenPipe))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let writer = NonBlocking::new(Box::new(Broken), true);
        (&writer).write_all(b"lost\n").unwrap();
        (&writer).flush().unwrap();
        (&writer).write_all(b"panic\n").unwrap();
        (&writer).flush().unwrap();
        (&writer).write_all(b"lost too\n").unwrap();
        (&writer).flush().unwrap();
    }
}
