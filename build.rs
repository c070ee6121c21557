//! Stamps the git revision into the binary (`staticlet --version`, the start-up log line), so a
//! running daemon says which commit it is; "unknown" when built outside a git checkout (a
//! source tarball) or without git.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_owned())
}

fn main() {
    let revision = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=STATICLET_GIT_REVISION={revision}");
    // HEAD moves on checkout, the branch's ref on commit (a linked worktree keeps HEAD in its
    // own git dir and the refs in the common one; packed refs after `git gc`). Watching exactly
    // these rebuilds on a new commit and at no other time.
    if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
        println!("cargo:rerun-if-changed={dir}/HEAD");
    }
    if let (Some(common), Some(reference)) =
        (git(&["rev-parse", "--git-common-dir"]), git(&["symbolic-ref", "-q", "HEAD"]))
    {
        // Only files that exist: cargo reruns the script on every build for a missing one.
        for file in [format!("{common}/{reference}"), format!("{common}/packed-refs")] {
            if std::path::Path::new(&file).exists() {
                println!("cargo:rerun-if-changed={file}");
            }
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}
