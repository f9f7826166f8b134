//! Records the commit the binary is built from, for `cairn --version`:
//! `git describe` when the sources are a Git checkout, else `CAIRN_COMMIT`
//! from the environment (a build from a tarball), else "unknown".

fn main() {
    println!("cargo:rerun-if-env-changed=CAIRN_COMMIT");
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
    };
    if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
        // A new commit or a checkout changes HEAD or the ref it names.
        let dir = std::path::Path::new(&dir);
        let dir = if dir.is_absolute() {
            dir.to_path_buf()
        } else {
            std::path::Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default()).join(dir)
        };
        println!("cargo:rerun-if-changed={}", dir.join("HEAD").display());
        println!(
            "cargo:rerun-if-changed={}",
            dir.join("refs/heads").display()
        );
    }
    let commit = git(&["describe", "--always", "--abbrev=12"])
        .or_else(|| std::env::var("CAIRN_COMMIT").ok())
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=CAIRN_COMMIT={commit}");
}
