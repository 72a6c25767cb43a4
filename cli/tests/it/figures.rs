//! Figures across processes: `--slo` turns an exceeded bound into a finding (exit 1) and a met
//! one into nothing; `riptide merge` of a sweep's shards equals the unsharded sweep.

use std::process::Command;

fn riptide() -> Command {
    Command::new(env!("CARGO_BIN_EXE_riptide"))
}

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn an_exceeded_bound_fails_the_run_and_a_met_one_does_not() {
    let dir = std::env::temp_dir().join(format!("riptide-slo-{}", std::process::id()));
    let sim = |slo: &str| {
        riptide()
            .args([
                "sim",
                "--scenario",
                "crashes",
                "--seed",
                "2",
                "--json",
                "--slo",
                slo,
            ])
            .arg("--out")
            .arg(&dir)
            .output()
            .expect("riptide runs")
    };
    let met = sim("write-window=1000s");
    assert_eq!(
        met.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&met.stderr)
    );
    let summary = json(&met);
    let windows = summary["figures"]["windows"].as_array().expect("windows");
    assert!(
        !windows.is_empty(),
        "a crash leaves a write window: {summary}"
    );
    let exceeded = sim("write-window=1ms");
    assert_eq!(exceeded.status.code(), Some(1));
    assert!(json(&exceeded)["anomalies"]["slo-exceeded"].as_u64() >= Some(1));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn merged_shards_equal_the_unsharded_sweep() {
    let dir = std::env::temp_dir().join(format!("riptide-merge-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sweep = |extra: &[&str]| {
        let out = riptide()
            .args([
                "sweep",
                "--scenario",
                "crashes",
                "--seeds",
                "1..=4",
                "--json",
            ])
            .args(extra)
            .arg("--failures")
            .arg(dir.join("failures.txt"))
            .output()
            .expect("riptide runs");
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    let whole = json(&sweep(&["--jobs", "2"]));
    let mut files = Vec::new();
    for i in 1..=4 {
        let out = sweep(&["--shard", &format!("{i}/4")]);
        let path = dir.join(format!("shard-{i}.json"));
        std::fs::write(&path, &out.stdout).unwrap();
        files.push(path);
    }
    let merged = riptide()
        .arg("merge")
        .arg("--json")
        .args(&files)
        .output()
        .expect("riptide runs");
    let merged = json(&merged);
    for key in [
        "scenario",
        "backend",
        "seed_range",
        "seeds",
        "passed",
        "failed",
        "failures",
        "coverage",
        "windows",
        "window_samples",
        "realtime_lag",
        "seed_lags",
    ] {
        assert_eq!(merged[key], whole[key], "{key} differs");
    }
    assert_eq!(merged["seeds"], 4);
    // Shards of different sweeps do not merge.
    let other = dir.join("other.json");
    let mut wrong = whole.clone();
    wrong["scenario"] = "baseline".into();
    std::fs::write(&other, wrong.to_string()).unwrap();
    let refused = riptide()
        .arg("merge")
        .args([&files[0], &other])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("shards of one sweep only"));
    // A shard given twice, or one left out, is not the sweep either.
    let merge = |paths: &[&std::path::PathBuf]| {
        let out = riptide().arg("merge").args(paths).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, err) = merge(&[&files[0], &files[1], &files[1], &files[2], &files[3]]);
    assert_eq!(code, Some(2));
    assert!(err.contains("shard 2/4 given twice"), "{err}");
    let (code, err) = merge(&[&files[0], &files[1], &files[3]]);
    assert_eq!(code, Some(2));
    assert!(err.contains("shard(s) 3/4 missing"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
