//! Modules of the test binary take turns: some stop shared services (`scripts/stack.sh stop kafka`)
//! while their tests run, which a test of another module must not meet. `scripts/test.sh` runs one
//! module per process anyway; this keeps a plain `cargo test --features integration` (every module in
//! one process) from mixing them: a test of another module waits, at its first `common::services()` or
//! `Names::new`, until every test of the module under way has ended. Tests of one module still run side
//! by side, as they always did.
//!
//! A test holds its module's turn from that first call until its thread ends: libtest runs each test on
//! a thread of its own, and a multi-threaded tokio test's workers end with its runtime.

use std::cell::RefCell;
use std::panic::Location;
use std::sync::{Condvar, Mutex, MutexGuard};

struct Turn {
    /// The source file of the module whose tests run now.
    module: Option<&'static str>,
    tests: usize,
}

static TURN: Mutex<Turn> = Mutex::new(Turn {
    module: None,
    tests: 0,
});
static ENDED: Condvar = Condvar::new();

fn turn() -> MutexGuard<'static, Turn> {
    TURN.lock().unwrap_or_else(|p| p.into_inner())
}

/// Dropped with the thread that holds it: the test has ended.
struct Held;

impl Drop for Held {
    fn drop(&mut self) {
        let mut t = turn();
        t.tests -= 1;
        if t.tests == 0 {
            t.module = None;
            ENDED.notify_all();
        }
    }
}

thread_local! {
    static HELD: RefCell<Option<Held>> = const { RefCell::new(None) };
}

/// Waits for the module of `caller` to have its turn (at once if it has it), then holds it for this
/// thread. Calls from the shared module itself do not count: only a test's own file names its module.
pub fn enter(caller: &'static Location<'static>) {
    let module = caller.file();
    if module.contains("/common/") || HELD.with(|h| h.borrow().is_some()) {
        return;
    }
    let mut t = turn();
    while t.module.is_some_and(|m| m != module) {
        t = ENDED.wait(t).unwrap_or_else(|p| p.into_inner());
    }
    t.module = Some(module);
    t.tests += 1;
    drop(t);
    HELD.with(|h| *h.borrow_mut() = Some(Held));
}
