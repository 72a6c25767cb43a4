//! Determinism is the product: the same seeds run in two separate processes
//! must produce the same trace hashes, and different seeds different ones.

use std::process::Command;

fn hashes(dir: &std::path::Path, name: &str) -> Vec<String> {
    let path = dir.join(name);
    let status = Command::new(env!("CARGO_BIN_EXE_riptide"))
        .args(["sweep", "--seeds", "1..=20", "--jobs", "2", "--hashes"])
        .arg(&path)
        .arg("--failures")
        .arg(dir.join(format!("{name}.failures")))
        .status()
        .expect("riptide runs");
    assert_eq!(status.code(), Some(0), "sweep over seeds 1..=20 must pass");
    std::fs::read_to_string(&path)
        .expect("hashes written")
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn twenty_seeds_hash_the_same_in_two_processes() {
    let dir = std::env::temp_dir().join(format!("riptide-determinism-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let first = hashes(&dir, "first");
    let second = hashes(&dir, "second");
    assert_eq!(first.len(), 20);
    assert_eq!(
        first, second,
        "a seed's trace hash changed between processes"
    );
    let distinct: std::collections::BTreeSet<_> = first
        .iter()
        .map(|l| l.split(' ').nth(1).unwrap_or(""))
        .collect();
    assert_eq!(
        distinct.len(),
        20,
        "different seeds must give different traces"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
