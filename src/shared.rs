//! Module state shared by commands, keyspace events, server events and
//! timers. All of them run with Redis's lock held: on the main thread, or
//! on another module's thread that holds the GIL (its writes fire our
//! keyspace events there), so the state is process-wide, not per thread.
//! The mutex is therefore never contended; `try_lock` makes a re-entrant use
//! (a Redis call made while the state is held firing an event that wants it
//! again) fail like a `RefCell` borrow instead of deadlocking.

use std::sync::{Mutex, TryLockError};

pub struct Shared<T>(Mutex<T>);

impl<T> Shared<T> {
    pub const fn new(value: T) -> Self {
        Self(Mutex::new(value))
    }

    /// Runs `f` on the state; `None` if it is already in use.
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> Option<R> {
        match self.0.try_lock() {
            Ok(mut state) => Some(f(&mut state)),
            // A panic caught by the guard while the state was held: the
            // state itself is still whole (no update is left half done).
            Err(TryLockError::Poisoned(poisoned)) => Some(f(&mut poisoned.into_inner())),
            Err(TryLockError::WouldBlock) => None,
        }
    }
}
