//! The shell completions (`completions/`) and man pages (`man/`) shipped in a release are
//! generated from the clap definitions; this keeps the committed files in step with the
//! flags. Run with WSCHECK_UPDATE_DOCS=1 to regenerate them.

use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;
use wscheck::cli::Cli;

const HINT: &str = "run WSCHECK_UPDATE_DOCS=1 cargo test --test suite completions";

/// Every generated file: its path under the repository root and its content.
fn generated() -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish, Shell::PowerShell] {
        let mut cmd = Cli::command();
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut cmd, "wscheck", &mut out);
        let name = match shell {
            Shell::Bash => "wscheck.bash".to_owned(),
            Shell::Zsh => "_wscheck".to_owned(),
            Shell::Fish => "wscheck.fish".to_owned(),
            _ => "_wscheck.ps1".to_owned(),
        };
        files.push((Path::new("completions").join(name), out));
    }
    let mut cmd = Cli::command();
    cmd.build();
    files.push((Path::new("man/wscheck.1").to_owned(), man_page(cmd.clone())));
    for sub in cmd.get_subcommands().filter(|sub| sub.get_name() != "help") {
        // clap's names are &'static str (no "string" feature); a test may leak three.
        let name: &'static str = format!("wscheck-{}", sub.get_name()).leak();
        let page = man_page(sub.clone().name(name));
        files.push((Path::new("man").join(format!("{name}.1")), page));
    }
    files
}

fn man_page(cmd: clap::Command) -> Vec<u8> {
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd)
        .render(&mut out)
        .expect("render the man page");
    out
}

/// Files in `dir` (relative to the root) that no generator writes.
fn strays(root: &Path, dir: &str, files: &[(PathBuf, Vec<u8>)]) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
        return Vec::new();
    };
    entries
        .map(|entry| Path::new(dir).join(entry.unwrap().file_name()))
        .filter(|path| !files.iter().any(|(known, _)| known == path))
        .collect()
}

#[test]
fn completions_and_man_pages_match_the_flags() {
    let root = wscheck_testkit::repo_root();
    let files = generated();
    let update = std::env::var_os("WSCHECK_UPDATE_DOCS").is_some();
    let mut stale = Vec::new();
    for (path, content) in &files {
        let full = root.join(path);
        if std::fs::read(&full).ok().as_deref() == Some(content.as_slice()) {
            continue;
        }
        if update {
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(&full, content).unwrap();
        } else {
            stale.push(path.display().to_string());
        }
    }
    for dir in ["completions", "man"] {
        for stray in strays(&root, dir, &files) {
            if update {
                std::fs::remove_file(root.join(&stray)).unwrap();
            } else {
                stale.push(format!("{} (no longer generated)", stray.display()));
            }
        }
    }
    assert!(stale.is_empty(), "out of date: {stale:?}; {HINT}");
}

#[test]
fn completions_know_every_subcommand_and_some_flags() {
    let files = generated();
    let bash = &files[0].1;
    let bash = String::from_utf8_lossy(bash);
    for word in ["demo", "load", "app", "--connect-to", "--format", "--only"] {
        assert!(bash.contains(word), "bash completion offers {word}");
    }
    assert!(
        files
            .iter()
            .any(|(path, _)| path.ends_with("wscheck-app.1"))
    );
}
