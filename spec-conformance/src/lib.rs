//! The OCI runtime spec as executable tests against any runc-compatible
//! runtime binary.
//!
//! Each area module exports `CASES`: named test functions taking a fresh
//! [`Env`]. The `conformance` binary runs them against several runtimes and
//! prints one table; `tests/conformance.rs` has one `#[test]` per case and
//! runs against `$RUNTIME` (default: the workspace's berth-runtime).

pub mod harness;

mod bad_input;
mod hooks;
mod lifecycle;
mod mounts;
mod namespaces;
mod process;
mod resources;
mod security;
mod state;
mod terminal;

pub use harness::{default_runtime, find_runc, Bundle, Env};

use anyhow::{anyhow, Result};
use std::path::Path;

/// A test either passes, fails (an `Err`), or is skipped for a stated
/// reason about the machine (never about the runtime).
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Pass,
    Skip(String),
}

pub type TestFn = fn(&Env) -> Result<Outcome>;

pub struct Case {
    pub name: &'static str,
    pub run: TestFn,
}

/// `cases![f, g]` declares `pub const CASES` naming each function after itself.
#[macro_export]
macro_rules! cases {
    ($($f:ident),* $(,)?) => {
        pub const CASES: &[$crate::Case] = &[$($crate::Case { name: stringify!($f), run: $f }),*];
    };
}

pub fn all() -> Vec<&'static Case> {
    [
        lifecycle::CASES,
        state::CASES,
        process::CASES,
        mounts::CASES,
        namespaces::CASES,
        security::CASES,
        resources::CASES,
        hooks::CASES,
        terminal::CASES,
        bad_input::CASES,
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Run one case in its own Env against `runtime`; a panic counts as a failure.
pub fn run_case(case: &Case, runtime: &Path) -> Result<Outcome> {
    let env = Env::new(runtime)?;
    let result = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (case.run)(&env))) {
        Ok(r) => r,
        Err(p) => Err(anyhow!(
            "panicked: {}",
            p.downcast_ref::<String>()
                .cloned()
                .or(p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        )),
    };
    // Whatever the outcome, delete --force must leave nothing behind.
    let left = env.cleanup_and_find_leftovers();
    match result {
        Ok(_) if !left.is_empty() => Err(anyhow!("after delete --force the runtime left behind: {}", left.join(", "))),
        Err(e) if !left.is_empty() => Err(e.context(format!("also left behind: {}", left.join(", ")))),
        other => other,
    }
}

/// For `cargo test`: run the named case against `$RUNTIME` and panic on failure.
pub fn run_named(name: &str) {
    let case = all()
        .into_iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no conformance case {name}"));
    match run_case(case, &default_runtime()) {
        Ok(Outcome::Pass) => {}
        Ok(Outcome::Skip(why)) => eprintln!("{name}: skipped: {why}"),
        Err(e) => panic!(
            "{name} failed against {}: {e:#}",
            default_runtime().display()
        ),
    }
}

/// Shorthand for tests whose whole assertion is the checker's report.
pub(crate) fn check(env: &Env, bundle: &Bundle, required: &[&str]) -> Result<Outcome> {
    env.run_checker(bundle)?.assert_ok(required)?;
    Ok(Outcome::Pass)
}
