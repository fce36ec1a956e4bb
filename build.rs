//! Build script: records the git commit the binary is built from (`GIT_COMMIT`, for
//! `--version` and `gitlab_exporter_build_info`), or "unknown" outside a git checkout.

use std::process::Command;

/// What `git <args>` prints, trimmed; `None` when git fails or prints nothing.
fn git(args: &[&str]) -> Option<String> {
    Command::new("git")
        .args(args)
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

fn main() {
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=GIT_COMMIT={commit}");
    // Rebuilt when HEAD moves (a commit, a checkout); not on every change of the work tree.
    // Git says where these are: `.git` is a file in a worktree, and HEAD then lives elsewhere.
    for name in ["HEAD", "refs/heads", "packed-refs"] {
        if let Some(path) = git(&["rev-parse", "--git-path", name]) {
            if std::path::Path::new(&path).exists() {
                println!("cargo:rerun-if-changed={path}");
            }
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}
