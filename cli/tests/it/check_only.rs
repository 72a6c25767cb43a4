//! `riptide check --only KIND` on a consume-transform-produce history: the verdict and the exit
//! code judge that kind alone, and an unknown kind is refused before anything is read.
//!
//! The history: inputs "in-0" and "in-1" at in/0, offsets 0 and 1; a pipeline (process 1,
//! read_committed) turns them into "out:in-0" and "out:in-1" at out/0 in one committed
//! transaction (marker at 2) that commits group "g"'s offset 2; read_committed final reads of
//! both partitions. Duplicated, a second committed transaction processes "in-0" again: its output
//! "out:in-0 again" lands at out/0 offset 3 (marker at 4) and the final read holds it.

use std::path::PathBuf;
use std::process::{Command, Output};

use riptide_checker::history::{
    ClientValue, FinalReadValue, HistoryBuilder, OffsetValue, OpKind, PartitionOffset, PollValue,
    SendValue, TxnEnd, TxnValue,
};
use riptide_checker::history::{Hidden, HiddenSpan};

/// One transaction of the pipeline: polls `inputs` (value, offset) of in/0 and sends one output
/// per input to out/0 at `outputs` (value, offset); committed with group "g"'s offset `commit`.
fn transform(b: &mut HistoryBuilder, inputs: &[(&str, i64)], outputs: &[(&str, i64)], commit: i64) {
    let mut poll = PollValue::default();
    for &(v, o) in inputs {
        poll = poll.record("in", 0, o, v);
    }
    let mut inv = TxnValue::new("pipe", TxnEnd::Commit).poll(poll);
    inv.group = Some("g".into());
    let mut done = inv.clone();
    for (&(input, _), &(output, offset)) in inputs.iter().zip(outputs) {
        let mut s = SendValue::new("out", 0, output);
        s.source = Some(input.to_owned());
        inv = inv.send(s.clone());
        done = done.send(s.acked(offset));
    }
    done.offsets = vec![PartitionOffset {
        topic: "in".into(),
        partition: 0,
        offset: commit,
    }];
    let i = b.invoke(1, inv);
    b.advance(1_000);
    done.end_sent_ns = Some(b.now_ns());
    b.advance(1_000);
    b.complete(1, i, OpKind::Ok, done);
}

/// A read_committed final read of `topic`/0: `records` (offset, value), `hidden` control
/// batches, up to `hwm`.
fn final_read(
    b: &mut HistoryBuilder,
    topic: &str,
    records: &[(i64, &str)],
    hidden: &[i64],
    hwm: i64,
) {
    let mut done = FinalReadValue::new(topic, 0);
    done.hwm = Some(hwm);
    done.records = records
        .iter()
        .map(|&(offset, v)| OffsetValue {
            offset,
            value: v.to_owned(),
        })
        .collect();
    done.hidden = hidden
        .iter()
        .map(|&o| HiddenSpan {
            from: o,
            to: o + 1,
            why: Hidden::Control,
        })
        .collect();
    b.advance(1_000);
    b.call(2, FinalReadValue::new(topic, 0), OpKind::Ok, done);
}

/// The history as JSON lines, written to a file of its own in the temp dir.
fn history(name: &str, duplicated: bool) -> PathBuf {
    let mut b = HistoryBuilder::new();
    for (o, v) in ["in-0", "in-1"].into_iter().enumerate() {
        let s = SendValue::new("in", 0, v);
        b.advance(1_000);
        b.call(0, s.clone(), OpKind::Ok, s.acked(o as i64));
    }
    for (process, role) in [(1, "pipeline"), (2, "reader")] {
        let v = ClientValue {
            role: role.into(),
            name: format!("{role}-{process}"),
            read_committed: true,
            ..ClientValue::default()
        };
        b.call(process, v.clone(), OpKind::Ok, v);
    }
    transform(
        &mut b,
        &[("in-0", 0), ("in-1", 1)],
        &[("out:in-0", 0), ("out:in-1", 1)],
        2,
    );
    let mut outs = vec![(0, "out:in-0"), (1, "out:in-1")];
    let mut markers = vec![2];
    if duplicated {
        transform(&mut b, &[("in-0", 0)], &[("out:in-0 again", 3)], 1);
        outs.push((3, "out:in-0 again"));
        markers.push(4);
    }
    final_read(&mut b, "in", &[(0, "in-0"), (1, "in-1")], &[], 2);
    let hwm = markers.last().unwrap() + 1;
    final_read(&mut b, "out", &outs, &markers, hwm);
    let h = b.build();
    h.validate().expect("a valid history");
    let path = std::env::temp_dir().join(format!(
        "riptide-check-only-{}-{name}.jsonl",
        std::process::id()
    ));
    let mut text = Vec::new();
    h.to_jsonl(&mut text).unwrap();
    std::fs::write(&path, text).unwrap();
    path
}

fn check(args: &[&str], path: &PathBuf) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_riptide"))
        .arg("check")
        .args(args)
        .arg(path)
        .output()
        .expect("riptide runs");
    std::fs::remove_file(path).ok();
    out
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn a_clean_pipeline_passes_exactly_once() {
    let out = check(&["--only", "exactly-once"], &history("clean", false));
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.starts_with("verdict: PASS"), "{stdout}");
}

#[test]
fn an_input_processed_twice_fails_exactly_once() {
    let out = check(&["--only", "exactly-once"], &history("duplicated", true));
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    // A numbered finding of the kind, not only its row in the counts.
    let finding = stdout
        .lines()
        .find(|l| l.contains(". exactly-once "))
        .unwrap_or_else(|| panic!("no exactly-once finding in:\n{stdout}"));
    assert!(
        stdout.contains("Input \"in-0\"") && stdout.contains("processed 2 times"),
        "{finding}\n{stdout}"
    );
    // Only the kind asked for is reported.
    assert!(!stdout.contains("lost-write"), "{stdout}");
}

#[test]
fn an_unknown_kind_is_refused_with_the_kinds_there_are() {
    let out = check(&["--only", "no-such-kind"], &history("unknown-kind", false));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}{}", text(&out.stdout));
    assert!(
        stderr.contains("invalid value 'no-such-kind' for '--only <KIND>'"),
        "{stderr}"
    );
    assert!(stderr.contains("exactly-once"), "{stderr}");
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
}
