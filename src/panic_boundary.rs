//! Calling code that may panic on hostile bytes, without the panic reaching the user.
//!
//! mlbuild's own parsers return errors; a few third-party decoders do not always (the `parquet`
//! crate panics on some corrupt files). Where mlbuild hands them untrusted bytes it calls them
//! through [`catch`], which turns a panic into a [`Panic`] value that the caller reports as an
//! ordinary located error (file, what failed, a hint).
//!
//! Mechanism: `std::panic::catch_unwind`, plus a process-wide panic hook installed once that
//! stays silent while the panicking thread is inside [`catch`] (a per-thread depth counter), so
//! no "thread 'main' panicked at …" line is printed before mlbuild's own error. Panics anywhere
//! else go to the hook that was in place before, unchanged. The silenced panic's message and
//! location are kept for the caller (tests print the location; users get the message).
//!
//! Limits: only unwinding panics are caught (a stack overflow or an abort is not); a closure
//! that panicked may leave what it borrowed mutably half-updated, so callers drop that state
//! and return an error, never carry on with it.

use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

/// A panic caught by [`catch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Panic {
    /// The panic's message (`"index out of bounds: …"`), or a placeholder for a non-text payload.
    pub message: String,
    /// `file:line:column` of the `panic!`, when known.
    pub location: Option<String>,
}

impl std::fmt::Display for Panic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)?;
        if let Some(at) = &self.location {
            write!(f, " (at {at})")?;
        }
        Ok(())
    }
}

thread_local! {
    /// How many [`catch`] calls this thread is inside.
    static DEPTH: Cell<u32> = const { Cell::new(0) };
    /// The location of the last panic silenced on this thread.
    static LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if DEPTH.with(Cell::get) == 0 {
                previous(info);
                return;
            }
            let at = info
                .location()
                .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
            LOCATION.with(|l| *l.borrow_mut() = at);
        }));
    });
}

/// Runs `f`; a panic inside it is returned as `Err` instead of unwinding further, and prints
/// nothing.
pub fn catch<T>(f: impl FnOnce() -> T) -> Result<T, Panic> {
    install_hook();
    DEPTH.with(|d| d.set(d.get() + 1));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    DEPTH.with(|d| d.set(d.get() - 1));
    result.map_err(|payload| {
        let message = if let Some(s) = payload.downcast_ref::<&str>() {
            (*s).to_string()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "a panic without a message".to_string()
        };
        Panic {
            message,
            location: LOCATION.with(|l| l.borrow_mut().take()),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_a_value_with_its_message_and_place() {
        assert_eq!(catch(|| 7), Ok(7));
        let p = catch(|| -> u8 { panic!("boom {}", 42) }).unwrap_err();
        assert_eq!(p.message, "boom 42");
        assert!(p.location.unwrap().contains("panic_boundary.rs"));
        let v: Vec<u8> = Vec::new();
        let p = catch(|| v[3]).unwrap_err();
        assert!(p.message.contains("out of bounds"), "{}", p.message);
        // Nested: the inner one is caught by the inner call, the outer goes on.
        let outer = catch(|| catch(|| panic!("inner")).unwrap_err().message);
        assert_eq!(outer.unwrap(), "inner");
    }
}
