//! Shared by the test files that run the `gradflow` binary (those that require the `cli`
//! feature: the binary's path exists only for them, so this cannot live in `common`).
#![allow(dead_code)] // each test file uses its own subset

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::Value;

/// The binary, run in `dir`.
pub fn gradflow(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gradflow"));
    cmd.current_dir(dir);
    cmd
}

/// Writes `bytes` to `dir/name`; returns the path.
pub fn write(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Runs the binary in `dir` with `args`, asserts success, returns its standard output.
pub fn succeeds(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = gradflow(dir).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "gradflow {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Standard output as one JSON document.
pub fn json(out: &[u8]) -> Value {
    serde_json::from_slice(out).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document ({e}): {}",
            String::from_utf8_lossy(out)
        )
    })
}

/// Asserts a failed run: exit `code`, nothing on stdout, and on stderr one
/// `gradflow: error:` line containing `needle`, optionally followed by one `hint:` line.
pub fn fails_with(assert: assert_cmd::assert::Assert, code: i32, needle: &str) {
    let out = assert.get_output();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "exit code; stderr: {stderr}");
    assert!(
        out.stdout.is_empty(),
        "stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(
        !lines.is_empty() && lines.len() <= 2,
        "expected an error line and at most a hint: {stderr}"
    );
    assert!(lines[0].starts_with("gradflow: error: "), "{stderr}");
    assert!(lines[0].contains(needle), "{needle:?} not in {stderr}");
    if let Some(hint) = lines.get(1) {
        assert!(hint.starts_with("hint: "), "{stderr}");
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
}
