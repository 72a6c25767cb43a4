//! The certification report: Markdown, JSON, and a self-contained HTML page
//! with a per-partition timeline of offsets, faults and anomalies.

use crate::client_proxy::{TXN_APIS, TXN_OFFSET_APIS};
use crate::engine::{AppliedFault, Certification};
use crate::store_proxy::StoreObserved;
use kafka_protocol::messages::ApiKey;
use riptide_checker::history::{History, Op, OpKind, TxnEnd, Value};
use riptide_checker::{Finding, Report, Severity, Verdict};
use riptide_wire::ResponseError;
use riptide_workloads::codec::client_range;
use riptide_workloads::error::code_name;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

const NOT_DETERMINISTIC: &str = "The seed fixes the schedule of operations and faults. \
The target itself is not deterministic: a rerun with the same seed exercises the same plan \
against the cluster, but its history (and so any finding) need not repeat.";

/// Ops of `history` by index, for the report's evidence.
fn ops_by_index(history: &History) -> BTreeMap<u64, &Op> {
    history.ops.iter().map(|o| (o.index, o)).collect()
}

/// One line describing an op, for evidence tables.
fn describe_op(op: &Op) -> String {
    let kind = match op.kind {
        OpKind::Invoke => "invoke",
        OpKind::Ok => "ok",
        OpKind::Fail => "fail",
        OpKind::Info => "info",
    };
    let what = match &op.value {
        Value::Send(s) => format!(
            "send {}/{} value {}{}",
            s.topic,
            s.partition,
            s.value,
            s.offset
                .map(|o| format!(" → offset {o}"))
                .unwrap_or_default()
        ),
        Value::Poll(p) => {
            let recs: Vec<String> = p
                .records
                .iter()
                .take(12)
                .map(|r| format!("{}/{}@{}={}", r.topic, r.partition, r.offset, r.value))
                .collect();
            let more = p.records.len().saturating_sub(12);
            format!(
                "poll {}{}",
                recs.join(" "),
                if more > 0 {
                    format!(" (+{more} more)")
                } else {
                    String::new()
                }
            )
        }
        Value::FinalRead(f) => format!(
            "final read {}/{} hwm {:?}, {} records",
            f.topic,
            f.partition,
            f.hwm,
            f.records.len()
        ),
        other => serde_json::to_string(other).unwrap_or_default(),
    };
    let error = op
        .error
        .as_ref()
        .map(|e| format!(" — error: {e}"))
        .unwrap_or_default();
    format!(
        "#{} t={:.3}s process {} {kind}: {what}{error}",
        op.index,
        op.time_ns as f64 / 1e9,
        op.process
    )
}

/// One row of the compatibility table.
#[derive(serde::Serialize)]
pub struct CompatRow {
    pub api: String,
    pub key: i16,
    /// What riptide's client implements, if it uses this API.
    pub client: Option<(i16, i16)>,
    /// Advertised range per node (`None`: that node never answered ApiVersions).
    pub advertised: Vec<Option<(i16, i16)>>,
    /// Versions the workloads used, with request counts.
    pub used: BTreeMap<i16, u64>,
    pub responses: u64,
    pub unanswered: u64,
    pub undecodable: u64,
    pub error_codes: BTreeMap<String, u64>,
    pub status: String,
}

fn api_name(key: i16) -> String {
    ApiKey::try_from(key)
        .map(|k| format!("{k:?}"))
        .unwrap_or_else(|_| format!("api {key}"))
}

/// Codes that mean the broker did not understand what it was sent.
fn is_protocol_error(code: i16) -> bool {
    // CORRUPT_MESSAGE, UNSUPPORTED_VERSION, INVALID_REQUEST, UNSUPPORTED_COMPRESSION_TYPE
    matches!(code, 2 | 35 | 42 | 76)
}

pub fn compat_rows(c: &Certification) -> Vec<CompatRow> {
    let o = &c.observed;
    let mut nodes = o.nodes.clone();
    nodes.sort_by_key(|n| n.index);
    let mut keys: BTreeSet<i16> = o.usage.keys().map(|(k, _)| *k).collect();
    for n in &nodes {
        keys.extend(n.advertised.keys().copied());
    }
    keys.into_iter()
        .map(|key| {
            let client = ApiKey::try_from(key).ok().and_then(client_range);
            let advertised: Vec<Option<(i16, i16)>> = nodes
                .iter()
                .map(|n| n.advertised.get(&key).copied())
                .collect();
            let mut row = CompatRow {
                api: api_name(key),
                key,
                client,
                advertised,
                used: BTreeMap::new(),
                responses: 0,
                unanswered: 0,
                undecodable: 0,
                error_codes: BTreeMap::new(),
                status: String::new(),
            };
            let mut protocol_errors = 0;
            let mut failing_versions = BTreeSet::new();
            for ((k, v), u) in o.usage.range((key, i16::MIN)..=(key, i16::MAX)) {
                debug_assert_eq!(*k, key);
                *row.used.entry(*v).or_default() += u.requests;
                row.responses += u.responses;
                row.unanswered += u.unanswered;
                row.undecodable += u.undecodable;
                if u.undecodable > 0 || u.error_codes.keys().any(|c| is_protocol_error(*c)) {
                    failing_versions.insert(*v);
                }
                for (code, n) in &u.error_codes {
                    *row.error_codes
                        .entry(format!("{} ({code})", code_name(*code)))
                        .or_default() += n;
                    if is_protocol_error(*code) {
                        protocol_errors += n;
                    }
                }
            }
            let advertised_anywhere = row.advertised.iter().any(Option::is_some);
            row.status = if row.used.is_empty() {
                match (client, advertised_anywhere) {
                    (Some(_), true) => "advertised, not needed by this run".into(),
                    (Some(_), false) => "not advertised".into(),
                    _ => "advertised".into(),
                }
            } else if row.undecodable > 0 || protocol_errors > 0 {
                let at: Vec<String> = failing_versions.iter().map(|v| format!("v{v}")).collect();
                format!(
                    "FAILED at {}: {} undecodable repl{}, {} protocol error(s)",
                    at.join(", "),
                    row.undecodable,
                    if row.undecodable == 1 { "y" } else { "ies" },
                    protocol_errors
                )
            } else if row.responses == 0 {
                "FAILED: never answered".into()
            } else {
                "ok".into()
            };
            row
        })
        .collect()
}

/// A protocol feature that takes several APIs, as the run found it: a row of the compatibility
/// table above the APIs' own.
#[derive(serde::Serialize)]
pub struct FeatureRow {
    pub feature: &'static str,
    /// What the workloads did with it.
    pub used: String,
    /// Error codes its APIs got back, by API.
    pub errors: String,
    pub status: String,
}

fn api_names(apis: &[ApiKey]) -> String {
    apis.iter()
        .map(|k| format!("{k:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `transactions` row, when the run asked for transactional producers: `not served` (found
/// before the workload started, see [`crate::NotServed`]; or an API a transactional producer
/// needs missing on a node heard from later; or no transaction ended and the target refused one
/// of the APIs as something it does not understand), `FAILED` (served, but no transaction ever
/// ended as meant), or `served` (with the protocol errors seen, if any).
pub fn transactions_row(c: &Certification) -> Option<FeatureRow> {
    if c.txn_producers == 0 {
        return None;
    }
    let (mut committed, mut aborted, mut failed, mut unknown) = (0u64, 0u64, 0u64, 0u64);
    for op in &c.history.ops {
        let Value::Txn(t) = &op.value else { continue };
        match (op.kind, t.end) {
            (OpKind::Ok, TxnEnd::Commit) => committed += 1,
            (OpKind::Ok, TxnEnd::Abort) => aborted += 1,
            (OpKind::Fail, _) => failed += 1,
            (OpKind::Info, _) => unknown += 1,
            (OpKind::Invoke, _) => {}
        }
    }
    let ended = committed + aborted;
    let mut codes: BTreeMap<String, u64> = BTreeMap::new();
    let mut refused = Vec::new();
    // Idempotent producers use InitProducerId too, and the proxy does not tell their calls
    // apart: of its errors only the one for transactional ids counts here.
    let transactional_only = |api: ApiKey, code: i16| {
        api != ApiKey::InitProducerId
            || code == ResponseError::TransactionalIdAuthorizationFailed.code()
    };
    for api in TXN_APIS.iter().chain(&TXN_OFFSET_APIS) {
        let key = *api as i16;
        for ((_, v), u) in c.observed.usage.range((key, i16::MIN)..=(key, i16::MAX)) {
            for (code, n) in u
                .error_codes
                .iter()
                .filter(|(c, _)| transactional_only(*api, **c))
            {
                *codes
                    .entry(format!("{api:?} {}", code_name(*code)))
                    .or_default() += n;
                if is_protocol_error(*code) {
                    refused.push(format!("{api:?} v{v}: {}×{n}", code_name(*code)));
                }
            }
            if u.undecodable > 0 {
                refused.push(format!("{api:?} v{v}: {} undecodable", u.undecodable));
            }
        }
    }
    let missing = c.observed.missing(&TXN_APIS);
    let used = if c.txn_not_served.is_none() {
        format!(
            "{} producer(s): {ended} transaction(s) ended as meant ({committed} committed, \
             {aborted} aborted), {failed} failed, {unknown} unknown",
            c.txn_producers
        )
    } else {
        format!("{} producer(s) asked for, none ran", c.txn_producers)
    };
    let mut status = if let Some(why) = &c.txn_not_served {
        format!("not served ({why}): the run went on without transactional producers")
    } else if !missing.is_empty() {
        format!("not served ({} missing on a node)", api_names(&missing))
    } else if ended == 0 && !refused.is_empty() {
        format!("not served ({})", refused.join("; "))
    } else if ended == 0 {
        "FAILED: no transaction ended as meant".to_string()
    } else if !refused.is_empty() {
        format!("served, with protocol errors ({})", refused.join("; "))
    } else {
        "served".to_string()
    };
    let offsets_missing = c.observed.missing(&TXN_OFFSET_APIS);
    if missing.is_empty() && c.txn_not_served.is_none() && !offsets_missing.is_empty() {
        let _ = write!(
            status,
            "; {} missing: no consume-transform-produce",
            api_names(&offsets_missing)
        );
    }
    Some(FeatureRow {
        feature: "transactions",
        used,
        errors: codes
            .iter()
            .map(|(c, n)| format!("{c}×{n}"))
            .collect::<Vec<_>>()
            .join(", "),
        status,
    })
}

fn range(r: Option<(i16, i16)>) -> String {
    match r {
        Some((lo, hi)) if lo == hi => format!("v{lo}"),
        Some((lo, hi)) => format!("v{lo}–v{hi}"),
        None => "—".into(),
    }
}

fn advertised_text(row: &CompatRow) -> String {
    let distinct: BTreeSet<_> = row.advertised.iter().collect();
    if distinct.len() <= 1 {
        range(row.advertised.first().copied().flatten())
    } else {
        row.advertised
            .iter()
            .enumerate()
            .map(|(i, r)| format!("n{i} {}", range(*r)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn used_text(row: &CompatRow) -> String {
    row.used
        .iter()
        .map(|(v, n)| format!("v{v}×{n}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn errors_text(row: &CompatRow) -> String {
    let mut parts: Vec<String> = row
        .error_codes
        .iter()
        .map(|(c, n)| format!("{c}×{n}"))
        .collect();
    if row.unanswered > 0 {
        parts.push(format!("no reply×{}", row.unanswered));
    }
    parts.join(", ")
}

/// The findings of one severity class (not allowed), in report order, with their numbers.
fn findings_of(r: &Report, class: Severity) -> Vec<(usize, &Finding)> {
    r.findings
        .iter()
        .enumerate()
        .filter(|(_, f)| !r.is_allowed(f) && f.anomaly.severity() == class)
        .collect()
}

/// Findings grouped as a reader should meet them: worst class first, allowed ones last.
fn finding_groups(r: &Report) -> Vec<(String, Vec<(usize, &Finding)>)> {
    let mut groups: Vec<(String, Vec<(usize, &Finding)>)> = Severity::WORST_FIRST
        .into_iter()
        .map(|c| (c.describe().to_string(), findings_of(r, c)))
        .collect();
    groups.push((
        "allowed (--allow)".to_string(),
        r.findings
            .iter()
            .enumerate()
            .filter(|(_, f)| r.is_allowed(f))
            .collect(),
    ));
    groups.retain(|(_, g)| !g.is_empty());
    // Numbered in the order they are shown.
    let mut number = 0;
    for (_, g) in &mut groups {
        for (i, _) in g.iter_mut() {
            *i = number;
            number += 1;
        }
    }
    groups
}

/// "N of M points reached", the counts, and the points never reached.
const LAG_INTRO: &str = "Per partition, the longest a consumer that kept polling it went without \
seeing a record known to exist (Jepsen's realtime lag): a figure, a finding only above \
--max-realtime-lag.";

/// The realtime-lag figure's rows: partition, lag, process and poll, the record behind.
fn lag_rows(r: &Report) -> Vec<[String; 4]> {
    let secs = |ns: u64| format!("{:.3} s", ns as f64 / 1e9);
    r.realtime_lag
        .iter()
        .map(|l| {
            let behind = match (l.offset, &l.value) {
                (Some(o), Some(v)) => format!("offset {o} ({v})"),
                (Some(o), None) => format!("offset {o}"),
                _ => "nothing".to_string(),
            };
            [
                format!("{}/{}", l.topic, l.partition),
                secs(l.lag_ns),
                format!(
                    "process {} poll op {} at {}",
                    l.process,
                    l.poll_op,
                    secs(l.poll_time_ns)
                ),
                behind,
            ]
        })
        .collect()
}

fn coverage_rows(c: &Certification) -> (Vec<(&str, u64)>, Vec<&str>) {
    (
        c.coverage.reached().collect(),
        c.coverage.unreached().collect(),
    )
}

/// A short text for the terminal.
pub fn summary_text(c: &Certification) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "certify {} (scenario {}, seed {}): {}",
        c.bootstrap.join(","),
        c.scenario,
        c.seed,
        c.report.verdict_line()
    );
    let _ = writeln!(s, "{}", c.report.to_text().trim_end());
    let _ = write!(s, "\n{}", c.coverage.to_text());
    let failed: Vec<String> = compat_rows(c)
        .into_iter()
        .filter(|r| r.status.starts_with("FAILED"))
        .map(|r| format!("{} ({})", r.api, r.status))
        .collect();
    if !failed.is_empty() {
        let _ = writeln!(s, "\nprotocol failures: {}", failed.join("; "));
    }
    if let Some(t) = transactions_row(c) {
        let _ = writeln!(s, "transactions: {} ({})", t.status, t.used);
    }
    for (k, o) in c.store.iter().enumerate() {
        let requests: u64 = o.ops.values().map(|u| u.requests).sum();
        let hit: u64 = o.hits_by_kind.values().sum();
        let _ = writeln!(
            s,
            "store n{k} ({}): {requests} requests, {hit} hit by faults{}",
            o.upstream,
            if o.wrote_conditionally() {
                ""
            } else {
                ", NO conditional writes"
            }
        );
    }
    for w in &c.warnings {
        let _ = writeln!(s, "warning: {w}");
    }
    s
}

/// One node's use of one store operation, for the tables.
struct StoreRow<'a> {
    node: usize,
    op: &'a str,
    requests: u64,
    statuses: String,
    no_reply: u64,
    faulted: u64,
    mean_ms: f64,
    max_ms: f64,
}

fn store_rows(store: &[StoreObserved]) -> Vec<StoreRow<'_>> {
    let mut rows = Vec::new();
    for (node, o) in store.iter().enumerate() {
        for (op, u) in &o.ops {
            let statuses = u
                .statuses
                .iter()
                .map(|(code, n)| format!("{code}×{n}"))
                .collect::<Vec<_>>()
                .join(" ");
            let answered = u.statuses.values().sum::<u64>() + u.no_reply;
            rows.push(StoreRow {
                node,
                op: op.as_str(),
                requests: u.requests,
                statuses,
                no_reply: u.no_reply,
                faulted: u.faulted,
                mean_ms: u.latency_us_total as f64 / answered.max(1) as f64 / 1000.0,
                max_ms: u.latency_us_max as f64 / 1000.0,
            });
        }
    }
    rows
}

const STORE_INTRO: &str = "What each node did to its object store, as its store proxy saw it: \
requests per operation, the status codes it got back (injected ones included), requests left \
without a reply (cut link, reply lost, late write), requests a fault acted on, and latency.";

fn store_markdown(s: &mut String, c: &Certification) {
    if c.store.is_empty() {
        return;
    }
    let _ = writeln!(s, "\n## Object store\n\n{STORE_INTRO}\n");
    let _ = writeln!(
        s,
        "| node | operation | requests | statuses | no reply | faulted | mean ms | max ms |\n|---|---|---|---|---|---|---|---|"
    );
    for r in store_rows(&c.store) {
        let _ = writeln!(
            s,
            "| n{} | {} | {} | {} | {} | {} | {:.1} | {:.1} |",
            r.node, r.op, r.requests, r.statuses, r.no_reply, r.faulted, r.mean_ms, r.max_ms
        );
    }
    let _ = writeln!(s);
    for (k, o) in c.store.iter().enumerate() {
        let hits = o
            .hits_by_kind
            .iter()
            .map(|(kind, n)| format!("{kind} {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(
            s,
            "- n{k} via `{}` → `{}`: {} connections ({} refused); requests hit by kind: {}; late writes landed {}, refused {}{}",
            o.listen,
            o.upstream,
            o.connections,
            o.refused,
            if hits.is_empty() { "none".to_string() } else { hits },
            o.late_landed,
            o.late_refused,
            if o.wrote() && !o.wrote_conditionally() {
                ". **Never wrote conditionally**: nothing stops two brokers writing the same offsets."
            } else {
                ""
            }
        );
    }
}

fn store_html(s: &mut String, c: &Certification) {
    if c.store.is_empty() {
        return;
    }
    let _ = write!(
        s,
        "<h2>Object store</h2><p>{}</p><table><tr><th>node</th><th>operation</th><th>requests</th>\
<th>statuses</th><th>no reply</th><th>faulted</th><th>mean ms</th><th>max ms</th></tr>",
        esc(STORE_INTRO)
    );
    for r in store_rows(&c.store) {
        let _ = write!(
            s,
            "<tr><td>n{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
<td>{:.1}</td><td>{:.1}</td></tr>",
            r.node,
            esc(r.op),
            r.requests,
            esc(&r.statuses),
            r.no_reply,
            r.faulted,
            r.mean_ms,
            r.max_ms
        );
    }
    let _ = write!(s, "</table><ul>");
    for (k, o) in c.store.iter().enumerate() {
        let hits = o
            .hits_by_kind
            .iter()
            .map(|(kind, n)| format!("{kind} {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        let flag = if o.wrote() && !o.wrote_conditionally() {
            " <strong class=\"fail\">never wrote conditionally</strong>"
        } else {
            ""
        };
        let _ = write!(
            s,
            "<li>n{k} via <code>{}</code> → <code>{}</code>: requests hit by kind: {}{flag}</li>",
            esc(&o.listen),
            esc(&o.upstream),
            esc(if hits.is_empty() { "none" } else { &hits })
        );
    }
    let _ = write!(s, "</ul>");
}

/// What was certified, how and when: `(name, value, shown as code)`.
fn header_rows(c: &Certification) -> Vec<(&'static str, String, bool)> {
    vec![
        ("target", c.bootstrap.join(","), true),
        (
            "security",
            match &c.sasl_mechanism {
                Some(m) => format!("{} ({m})", c.security_protocol),
                None => c.security_protocol.clone(),
            },
            false,
        ),
        ("scenario", c.scenario.clone(), false),
        ("seed", c.seed.to_string(), false),
        ("topic", c.topic.clone(), true),
        ("workload", format!("{} s", c.duration.as_secs()), false),
        (
            "wall time",
            format!("{:.1} s", c.wall_time.as_secs_f64()),
            false,
        ),
        ("started", c.started_at.clone(), false),
        ("riptide", env!("CARGO_PKG_VERSION").to_string(), false),
        ("command", c.args_line.clone(), true),
    ]
}

pub fn markdown(c: &Certification) -> String {
    let mut s = String::new();
    let r = &c.report;
    let _ = writeln!(s, "# riptide certification: {}\n", r.verdict_line());
    let _ = writeln!(s, "| | |\n|---|---|");
    for (k, v, code) in header_rows(c) {
        let v = if code { format!("`{v}`") } else { v };
        let _ = writeln!(s, "| {k} | {v} |");
    }
    let _ = writeln!(s, "\n> {NOT_DETERMINISTIC}\n");
    if !c.skipped.is_empty() {
        let _ = writeln!(s, "Fault kinds skipped: {}.\n", c.skipped.join("; "));
    }
    for w in &c.warnings {
        let _ = writeln!(s, "**Warning:** {w}.\n");
    }

    if !r.clients.is_empty() {
        let _ = writeln!(
            s,
            "## Clients\n\nWhat each client process drew from the seed, and what it did.\n\n| process | client | drew | did |\n|---|---|---|---|"
        );
        for (p, c) in &r.clients {
            let drew = [c.traits_text(), c.profile_text()]
                .into_iter()
                .filter(|t| !t.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
            let _ = writeln!(
                s,
                "| {p} | {} ({}) | {} | {} |",
                c.name,
                c.role,
                drew,
                c.counters_text()
            );
        }
        s.push('\n');
    }
    let _ = writeln!(s, "## Findings\n");
    if r.findings.is_empty() {
        let _ = writeln!(s, "None: every checker passed.\n");
    }
    let ops = ops_by_index(&c.history);
    for (title, group) in finding_groups(r) {
        let _ = writeln!(s, "### {title}\n");
        for (i, f) in group {
            let _ = writeln!(
                s,
                "#### {}. {} on {}\n\n{}\n\nOffsets: {:?}\n\nEvidence:\n",
                i + 1,
                f.anomaly,
                f.place(),
                f.explanation,
                f.offsets
            );
            for idx in &f.ops {
                match ops.get(idx) {
                    Some(op) => {
                        let _ = writeln!(s, "- `{}`", describe_op(op).replace('`', "'"));
                    }
                    None => {
                        let _ = writeln!(s, "- op #{idx} (not in the history)");
                    }
                }
            }
            s.push('\n');
        }
    }
    let _ = writeln!(
        s,
        "## Anomaly counts\n\n| anomaly | severity | count |\n|---|---|---|"
    );
    for (a, n) in &r.counts {
        let allowed = if r.allowed.contains(a) {
            " (allowed)"
        } else {
            ""
        };
        let _ = writeln!(
            s,
            "| {} | {} | {n}{allowed} |",
            a.as_str(),
            a.severity().describe()
        );
    }
    if !r.realtime_lag.is_empty() {
        let _ = writeln!(
            s,
            "\n## Realtime lag\n\n{LAG_INTRO}\n\n| partition | worst lag | when | not yet seen |\n|---|---|---|---|"
        );
        for [tp, lag, when, behind] in lag_rows(r) {
            let _ = writeln!(s, "| {tp} | {lag} | {when} | {behind} |");
        }
    }
    let (reached, unreached) = coverage_rows(c);
    let _ = writeln!(
        s,
        "\n## Coverage\n\nThe states of riptide's clients, proxy and nemesis this run reached: {} of {} points.\n\n| point | times |\n|---|---|",
        reached.len(),
        reached.len() + unreached.len()
    );
    for (k, n) in &reached {
        let _ = writeln!(s, "| `{k}` | {n} |");
    }
    if !unreached.is_empty() {
        let _ = writeln!(
            s,
            "\n**Never reached** (this run says nothing about them): {}",
            unreached
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }

    let _ = writeln!(
        s,
        "\n## History\n\n| f | invoke | ok | fail | info |\n|---|---|---|---|---|"
    );
    for (f, by) in &r.summary.by_f {
        let g = |k| by.get(&k).copied().unwrap_or(0);
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            f.as_str(),
            g(OpKind::Invoke),
            g(OpKind::Ok),
            g(OpKind::Fail),
            g(OpKind::Info)
        );
    }

    let _ = writeln!(s, "\n## Faults\n");
    if c.applied.is_empty() {
        let _ = writeln!(s, "None were injected.");
    } else {
        let _ = writeln!(
            s,
            "| t (s) | phase | fault | node | hook | requests hit |\n|---|---|---|---|---|---|"
        );
        for a in &c.applied {
            let detail = serde_json::to_string(&a.fault).unwrap_or_default();
            let hook = a
                .hook
                .as_ref()
                .map(|h| {
                    format!(
                        "`{}`: {}",
                        h.command.replace('|', "\\|"),
                        h.outcome.replace('|', "\\|")
                    )
                })
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "| {:.1} | {} | {} | {} `{}` | {} | {} |",
                a.at_ms as f64 / 1000.0,
                a.phase,
                detail.replace('|', "\\|"),
                a.node,
                a.node_addr,
                hook,
                a.hits.map(|n| n.to_string()).unwrap_or_default()
            );
        }
    }

    store_markdown(&mut s, c);

    let _ = writeln!(s, "\n## Compatibility\n");
    let _ = writeln!(
        s,
        "Advertised: from each node's ApiVersions reply (n0…: nodes in bootstrap order when they differ). \
Used: versions the workloads sent, with request counts. A row FAILS when a reply could not be decoded, \
never came, or carried a protocol error (CORRUPT_MESSAGE, UNSUPPORTED_VERSION, INVALID_REQUEST). \
The transactions row (when the run had transactional producers) sums up InitProducerId, \
AddPartitionsToTxn, EndTxn, AddOffsetsToTxn and TxnOffsetCommit: a target that does not serve \
them is a result here, not a failed run.\n"
    );
    let _ = writeln!(
        s,
        "| API | key | riptide client | advertised | used | replies | errors | status |\n|---|---|---|---|---|---|---|---|"
    );
    if let Some(t) = transactions_row(c) {
        let _ = writeln!(
            s,
            "| **{}** | — | — | — | {} | — | {} | {} |",
            t.feature, t.used, t.errors, t.status
        );
    }
    for row in compat_rows(c) {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            row.api,
            row.key,
            range(row.client),
            advertised_text(&row),
            used_text(&row),
            row.responses,
            errors_text(&row),
            row.status
        );
    }
    let o = &c.observed;
    let _ = writeln!(
        s,
        "\nProxy: {} node(s) fronted, {} address-bearing replies rewritten, {} could not be rewritten.\n",
        o.nodes.len(),
        o.rewritten,
        o.rewrite_failures
    );
    let _ = writeln!(
        s,
        "| node | upstream | proxy | node id | connections |\n|---|---|---|---|---|"
    );
    for n in &o.nodes {
        let _ = writeln!(
            s,
            "| {} | `{}` | `{}` | {} | {} |",
            n.index,
            n.upstream,
            n.listen,
            n.node_id
                .map(|i| i.to_string())
                .unwrap_or_else(|| "—".into()),
            n.connections
        );
    }
    s
}

pub fn json(c: &Certification) -> serde_json::Value {
    let ops = ops_by_index(&c.history);
    serde_json::json!({
        "verdict": c.report.verdict,
        "target": c.bootstrap,
        "scenario": c.scenario,
        "seed": c.seed,
        "topic": c.topic,
        "duration_s": c.duration.as_secs(),
        "wall_time_s": c.wall_time.as_secs_f64(),
        "started": c.started_at,
        "command": c.args_line,
        "security_protocol": c.security_protocol,
        "sasl_mechanism": c.sasl_mechanism,
        "determinism": NOT_DETERMINISTIC,
        "mix": c.mix,
        "skipped": c.skipped,
        "warnings": c.warnings,
        "schedule": c.schedule,
        "faults_applied": c.applied,
        "report": c.report,
        "evidence": c.report.findings.iter().map(|f| {
            f.ops.iter().filter_map(|i| ops.get(i).map(|o| serde_json::to_value(o).unwrap_or_default())).collect::<Vec<_>>()
        }).collect::<Vec<_>>(),
        "compatibility": compat_rows(c),
        "features": transactions_row(c).into_iter().collect::<Vec<_>>(),
        "proxy": c.observed,
        "store": c.store,
        "coverage": c.coverage,
    })
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A tiny Markdown-table-to-HTML pass is not worth it: the page is built
/// directly, with the same sections as the Markdown.
pub fn html(c: &Certification) -> String {
    let r = &c.report;
    let mut s = String::new();
    let verdict = r.verdict_line();
    let color = if r.verdict == Verdict::Pass {
        "#1a7f37"
    } else {
        "#cf222e"
    };
    let _ = write!(
        s,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>riptide certification: {verdict}</title>\
<style>body{{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#1f2328}}\
table{{border-collapse:collapse;margin:.5em 0}}td,th{{border:1px solid #d0d7de;padding:3px 8px;text-align:left;vertical-align:top}}\
th{{background:#f6f8fa}}code{{font-size:12px}}.verdict{{color:#fff;background:{color};padding:2px 10px;border-radius:4px}}\
.fail{{color:#cf222e;font-weight:600}}.note{{background:#fff8c5;padding:8px;border-radius:4px}}\
svg text{{font-size:10px;fill:#57606a}}summary{{cursor:pointer;font-weight:600;margin:.4em 0}}svg.timeline{{width:100%;height:auto}}.legend span{{margin-right:1em}}li{{font-family:monospace;font-size:12px}}</style></head><body>"
    );
    let _ = write!(
        s,
        "<h1>riptide certification <span class=\"verdict\">{verdict}</span></h1><table>"
    );
    for (k, v, _) in header_rows(c) {
        let _ = write!(s, "<tr><th>{k}</th><td><code>{}</code></td></tr>", esc(&v));
    }
    let _ = write!(
        s,
        "</table><p class=\"note\">{}</p>",
        esc(NOT_DETERMINISTIC)
    );
    if !c.skipped.is_empty() {
        let _ = write!(
            s,
            "<p>Fault kinds skipped: {}.</p>",
            esc(&c.skipped.join("; "))
        );
    }
    for w in &c.warnings {
        let _ = write!(s, "<p class=\"fail\">Warning: {}.</p>", esc(w));
    }

    // What a reader needs first: how bad, where, when; then the evidence.
    let _ = write!(
        s,
        "<h2>Anomaly counts</h2><table><tr><th>anomaly</th><th>severity</th><th>count</th></tr>"
    );
    for (a, n) in &r.counts {
        let allowed = r.allowed.contains(a);
        let cls = if *n > 0 && !allowed {
            " class=\"fail\""
        } else {
            ""
        };
        let note = if allowed { " (allowed)" } else { "" };
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{}</td><td{cls}>{n}{note}</td></tr>",
            a.as_str(),
            a.severity().describe()
        );
    }
    let _ = write!(s, "</table>");
    if !r.realtime_lag.is_empty() {
        let _ = write!(
            s,
            "<h2>Realtime lag</h2><p>{}</p><table><tr><th>partition</th><th>worst lag</th><th>when</th><th>not yet seen</th></tr>",
            esc(LAG_INTRO)
        );
        for row in lag_rows(r) {
            let cells: String = row.iter().map(|c| format!("<td>{}</td>", esc(c))).collect();
            let _ = write!(s, "<tr>{cells}</tr>");
        }
        let _ = write!(s, "</table>");
    }

    let _ = write!(
        s,
        "<h2>Timeline</h2><p>Per partition: acknowledged sends (green, offset over time), records \
consumers read (blue), failed or indeterminate sends (orange ticks at the bottom), faults (shaded, \
labelled by node) and the ops of each finding (red rings).</p>"
    );
    s.push_str(&timelines(c));

    let _ = write!(s, "<h2>Findings</h2>");
    if r.findings.is_empty() {
        let _ = write!(s, "<p>None: every checker passed.</p>");
    }
    let ops = ops_by_index(&c.history);
    for (k, (class, group)) in finding_groups(r).iter().enumerate() {
        // The worst class is open; the others one click away.
        let open = if k == 0 { " open" } else { "" };
        let _ = write!(
            s,
            "<details{open}><summary class=\"fail\">{} ({})</summary>",
            esc(class),
            group.len()
        );
        for (i, f) in group {
            let _ = write!(
                s,
                "<h3 class=\"fail\">{}. {} on {}</h3><p>{}</p><p>Offsets: {:?}</p><ul>",
                i + 1,
                esc(&f.anomaly.to_string()),
                esc(&f.place()),
                esc(&f.explanation),
                f.offsets
            );
            for idx in &f.ops {
                let line = ops
                    .get(idx)
                    .map(|o| describe_op(o))
                    .unwrap_or_else(|| format!("op #{idx} (not in the history)"));
                let _ = write!(s, "<li>{}</li>", esc(&line));
            }
            let _ = write!(s, "</ul>");
        }
        let _ = write!(s, "</details>");
    }

    let (reached, unreached) = coverage_rows(c);
    let _ = write!(
        s,
        "<h2>Coverage</h2><p>The states of riptide's clients, proxy and nemesis this run reached: {} of {} points.</p>\
<table><tr><th>point</th><th>times</th></tr>",
        reached.len(),
        reached.len() + unreached.len()
    );
    for (k, n) in &reached {
        let _ = write!(s, "<tr><td><code>{}</code></td><td>{n}</td></tr>", esc(k));
    }
    let _ = write!(s, "</table>");
    if !unreached.is_empty() {
        let _ = write!(
            s,
            "<p class=\"fail\">Never reached (this run says nothing about them): {}</p>",
            esc(&unreached.join(", "))
        );
    }

    let _ = write!(s, "<h2>Faults</h2>");
    if c.applied.is_empty() {
        let _ = write!(s, "<p>None were injected.</p>");
    } else {
        let _ = write!(
            s,
            "<table><tr><th>t (s)</th><th>phase</th><th>fault</th><th>node</th><th>hook</th><th>requests hit</th></tr>"
        );
        for a in &c.applied {
            let hook = a
                .hook
                .as_ref()
                .map(|h| format!("{}: {}", h.command, h.outcome))
                .unwrap_or_default();
            let _ = write!(
                s,
                "<tr><td>{:.1}</td><td>{}</td><td><code>{}</code></td><td>{} {}</td><td><code>{}</code></td><td>{}</td></tr>",
                a.at_ms as f64 / 1000.0,
                a.phase,
                esc(&serde_json::to_string(&a.fault).unwrap_or_default()),
                a.node,
                esc(&a.node_addr),
                esc(&hook),
                a.hits.map(|n| n.to_string()).unwrap_or_default()
            );
        }
        let _ = write!(s, "</table>");
    }
    store_html(&mut s, c);

    let _ = write!(
        s,
        "<h2>Compatibility</h2><table><tr><th>API</th><th>key</th><th>riptide client</th><th>advertised</th>\
<th>used</th><th>replies</th><th>errors</th><th>status</th></tr>"
    );
    if let Some(t) = transactions_row(c) {
        let cls = if t.status.starts_with("served") {
            ""
        } else {
            " class=\"fail\""
        };
        let _ = write!(
            s,
            "<tr><td><strong>{}</strong></td><td>—</td><td>—</td><td>—</td><td>{}</td><td>—</td><td>{}</td><td{cls}>{}</td></tr>",
            t.feature,
            esc(&t.used),
            esc(&t.errors),
            esc(&t.status)
        );
    }
    for row in compat_rows(c) {
        let cls = if row.status.starts_with("FAILED") {
            " class=\"fail\""
        } else {
            ""
        };
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td{cls}>{}</td></tr>",
            esc(&row.api),
            row.key,
            range(row.client),
            esc(&advertised_text(&row)),
            used_text(&row),
            row.responses,
            esc(&errors_text(&row)),
            esc(&row.status)
        );
    }
    let o = &c.observed;
    let _ = write!(
        s,
        "</table><p>Proxy: {} node(s) fronted, {} replies rewritten, {} could not be rewritten.</p></body></html>",
        o.nodes.len(),
        o.rewritten,
        o.rewrite_failures
    );
    s
}

/// Inline SVG charts, one per partition: offset over time.
fn timelines(c: &Certification) -> String {
    const W: f64 = 1000.0;
    const H: f64 = 230.0;
    const LEFT: f64 = 64.0;
    const RIGHT: f64 = 16.0;
    const TOP: f64 = 40.0; // room for fault labels
    const BOTTOM: f64 = 36.0; // failed-send ticks, time labels, axis title
    let h = &c.history;
    let t_max = h.ops.iter().map(|o| o.time_ns).max().unwrap_or(1).max(1) as f64;
    // Points per partition: (time, offset).
    let mut acked: BTreeMap<i32, Vec<(u64, i64)>> = BTreeMap::new();
    let mut read: BTreeMap<i32, Vec<(u64, i64)>> = BTreeMap::new();
    let mut failed: BTreeMap<i32, Vec<u64>> = BTreeMap::new();
    let mut final_hwm: BTreeMap<i32, (u64, i64)> = BTreeMap::new();
    for op in &h.ops {
        match &op.value {
            Value::Send(sv) if sv.topic == c.topic => match (op.kind, sv.offset) {
                (OpKind::Ok, Some(off)) => acked
                    .entry(sv.partition)
                    .or_default()
                    .push((op.time_ns, off)),
                (OpKind::Fail | OpKind::Info, _) => {
                    failed.entry(sv.partition).or_default().push(op.time_ns)
                }
                _ => {}
            },
            Value::Poll(p) if op.kind == OpKind::Ok => {
                for rec in p.records.iter().filter(|r| r.topic == c.topic) {
                    read.entry(rec.partition)
                        .or_default()
                        .push((op.time_ns, rec.offset));
                }
            }
            Value::FinalRead(f) if op.kind == OpKind::Ok && f.topic == c.topic => {
                if let Some(hwm) = f.hwm {
                    final_hwm.insert(f.partition, (op.time_ns, hwm));
                }
            }
            _ => {}
        }
    }
    // Finding marks per partition: at the op's time, at its offset (a send's
    // own, else the finding's first).
    let ops = ops_by_index(h);
    let mut marks: BTreeMap<i32, Vec<(u64, Option<i64>, String)>> = BTreeMap::new();
    for f in &c.report.findings {
        for idx in &f.ops {
            let Some(op) = ops.get(idx) else { continue };
            let offset = match &op.value {
                Value::Send(sv) => sv.offset,
                _ => f.offsets.first().copied(),
            };
            marks.entry(f.partition).or_default().push((
                op.time_ns,
                offset,
                format!("{}: {}", f.anomaly, f.explanation),
            ));
        }
    }
    // Fault intervals: start/heal pairs of the applied list, by fault identity.
    let mut bands: Vec<(u64, u64, String)> = Vec::new();
    let mut open: Vec<(u64, &AppliedFault)> = Vec::new();
    for a in &c.applied {
        if a.phase == "start" {
            open.push((a.at_ms, a));
        } else if a.phase == "heal" {
            if let Some(i) = open.iter().position(|(_, o)| o.id == a.id) {
                let (t0, o) = open.remove(i);
                bands.push((
                    t0,
                    a.at_ms,
                    o.fault.kind().to_string() + &format!(" n{}", o.node),
                ));
            }
        }
    }
    for (t0, o) in open {
        let label = format!("{} n{}", o.fault.kind(), o.node);
        bands.push((t0, (t_max / 1e6) as u64, label));
    }
    bands.sort();

    let partitions: BTreeSet<i32> = acked
        .keys()
        .chain(read.keys())
        .chain(failed.keys())
        .chain(marks.keys())
        .copied()
        .collect();
    let plot_w = W - LEFT - RIGHT;
    let plot_bottom = H - BOTTOM;
    let x = |t: u64| LEFT + (t as f64 / t_max) * plot_w;
    let mut s = String::from(
        "<p class=\"legend\"><span style=\"color:#1a7f37\">● acknowledged send</span> \
<span style=\"color:#0969da\">● read by a consumer</span> \
<span style=\"color:#bc4c00\">| failed or indeterminate send</span> \
<span style=\"color:#57606a\">– – final read's high watermark</span> \
<span style=\"color:#cf222e\">○ op of a finding</span> \
<span style=\"background:#8250df33\">&nbsp;fault&nbsp;</span></p>",
    );
    for p in partitions {
        let max_off = acked
            .get(&p)
            .into_iter()
            .chain(read.get(&p))
            .flatten()
            .map(|(_, o)| *o)
            .chain(
                marks
                    .get(&p)
                    .into_iter()
                    .flatten()
                    .filter_map(|(_, o, _)| *o),
            )
            .chain(final_hwm.get(&p).map(|(_, h)| *h))
            .max()
            .unwrap_or(1)
            .max(1) as f64;
        let y = |o: i64| plot_bottom - (o as f64 / max_off) * (plot_bottom - TOP);
        let _ = write!(
            s,
            "<h3>{}/{p}</h3><svg class=\"timeline\" viewBox=\"0 0 {W} {H}\" xmlns=\"http://www.w3.org/2000/svg\">",
            esc(&c.topic)
        );
        // Fault bands, labels in the first row where they do not overlap.
        let mut row_ends: Vec<f64> = Vec::new();
        for (t0, t1, label) in &bands {
            let (x0, x1) = (x(t0 * 1_000_000), x(t1 * 1_000_000));
            let text_w = label.len() as f64 * 5.6 + 4.0;
            let row = match row_ends.iter().position(|end| *end <= x0) {
                Some(r) => r,
                None => {
                    row_ends.push(0.0);
                    row_ends.len() - 1
                }
            };
            row_ends[row] = x0 + text_w.max(x1 - x0);
            let ly = 10.0 + (row % 3) as f64 * 11.0;
            let _ = write!(
                s,
                "<rect x=\"{x0:.1}\" y=\"{TOP}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#8250df\" fill-opacity=\"0.12\"><title>{}</title></rect>\
<line x1=\"{x0:.1}\" x2=\"{x0:.1}\" y1=\"{:.1}\" y2=\"{TOP}\" stroke=\"#8250df\" stroke-opacity=\"0.4\"/>\
<text x=\"{:.1}\" y=\"{ly}\">{}</text>",
                (x1 - x0).max(1.0),
                plot_bottom - TOP,
                esc(label),
                ly + 2.0,
                x0 + 2.0,
                esc(label)
            );
        }
        // Axes with a few ticks and titles.
        let _ = write!(
            s,
            "<line x1=\"{LEFT}\" y1=\"{plot_bottom}\" x2=\"{0}\" y2=\"{plot_bottom}\" stroke=\"#8c959f\"/>\
<line x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{plot_bottom}\" stroke=\"#8c959f\"/>\
<text x=\"4\" y=\"{1}\" transform=\"rotate(-90 12 {1})\">offset</text>\
<text x=\"{2}\" y=\"{H}\" text-anchor=\"middle\">time (s)</text>",
            W - RIGHT,
            (TOP + plot_bottom) / 2.0,
            LEFT + plot_w / 2.0
        );
        for k in 0..=4 {
            let off = (max_off * k as f64 / 4.0).round() as i64;
            let _ = write!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{off}</text><line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{3:.1}\" y2=\"{3:.1}\" stroke=\"#d0d7de\" stroke-opacity=\"0.5\"/>",
                LEFT - 4.0,
                y(off) + 3.0,
                W - RIGHT,
                y(off),
            );
            let t = (t_max * k as f64 / 4.0) as u64;
            let _ = write!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{:.0}</text>",
                x(t),
                plot_bottom + 22.0,
                t as f64 / 1e9
            );
        }
        let thin = |v: &Vec<(u64, i64)>, max: usize| -> Vec<(u64, i64)> {
            let step = v.len().div_ceil(max).max(1);
            v.iter().step_by(step).copied().collect()
        };
        // Acks first, reads on top (they trail the acks at the same offsets),
        // as small open squares so both stay visible.
        let _ = write!(s, "<g fill=\"#1a7f37\">");
        for (t, o) in thin(acked.get(&p).unwrap_or(&Vec::new()), 3000) {
            let _ = write!(
                s,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"1.6\"/>",
                x(t),
                y(o)
            );
        }
        let _ = write!(
            s,
            "</g><g fill=\"none\" stroke=\"#0969da\" stroke-width=\"0.8\">"
        );
        for (t, o) in thin(read.get(&p).unwrap_or(&Vec::new()), 1500) {
            let _ = write!(
                s,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"3\" height=\"3\"/>",
                x(t) - 1.5,
                y(o) - 1.5
            );
        }
        let _ = write!(s, "</g>");
        if let Some((t, hwm)) = final_hwm.get(&p) {
            let _ = write!(
                s,
                "<line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{1:.1}\" y2=\"{1:.1}\" stroke=\"#57606a\" stroke-dasharray=\"4 3\"><title>final read: hwm {hwm}</title></line>",
                x(*t),
                y(*hwm)
            );
        }
        let _ = write!(s, "<g stroke=\"#bc4c00\">");
        for t in failed.get(&p).into_iter().flatten() {
            let _ = write!(
                s,
                "<line x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"{1:.1}\" y2=\"{2:.1}\"/>",
                x(*t),
                plot_bottom + 2.0,
                plot_bottom + 9.0
            );
        }
        let _ = write!(
            s,
            "</g><g fill=\"none\" stroke=\"#cf222e\" stroke-width=\"2\">"
        );
        for (t, o, why) in marks.get(&p).into_iter().flatten() {
            let cy = o.map(y).unwrap_or(plot_bottom);
            let _ = write!(
                s,
                "<circle cx=\"{:.1}\" cy=\"{cy:.1}\" r=\"5\"><title>{}</title></circle>",
                x(*t),
                esc(why)
            );
        }
        let _ = write!(s, "</g></svg>");
    }
    s
}

/// Writes every output; returns their paths.
pub fn write_all(dir: &Path, c: &Certification) -> anyhow::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let mut put = |name: &str, bytes: Vec<u8>| -> anyhow::Result<()> {
        let path = dir.join(name);
        std::fs::write(&path, bytes)?;
        written.push(path);
        Ok(())
    };
    put("report.md", markdown(c).into_bytes())?;
    put("report.json", serde_json::to_vec_pretty(&json(c))?)?;
    put("report.html", html(c).into_bytes())?;
    let mut jsonl = Vec::new();
    c.history.to_jsonl(&mut jsonl)?;
    put("history.jsonl", jsonl)?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client_proxy::{ApiUse, NodeView, Observed};
    use crate::engine::NotServed;
    use crate::store_proxy::OpUse;
    use riptide_checker::history::{FinalReadValue, HistoryBuilder, SendValue};
    use riptide_checker::{check_all, CheckerConfig};
    use riptide_faults::{Capabilities, Fault, FaultMix};
    use riptide_wire::ResponseError;
    use std::time::Duration;

    /// A certification whose history lost an acknowledged write, on a topic
    /// whose name needs escaping, with one API failing at one version.
    fn lossy() -> Certification {
        let topic = "t<&>";
        let mut b = HistoryBuilder::new();
        let send = SendValue::new(topic, 0, "v0");
        b.invoke(0, send.clone());
        b.advance(1_000_000);
        b.ok(0, send.acked(0));
        b.advance(1_000_000);
        b.invoke(1, FinalReadValue::new(topic, 0));
        let mut read = FinalReadValue::new(topic, 0);
        read.hwm = Some(1);
        b.ok(1, read);
        let history = b.build();
        let report = check_all(&history, &CheckerConfig::default());
        let mut usage = BTreeMap::new();
        let bad = ApiUse {
            requests: 5,
            responses: 5,
            undecodable: 5,
            ..ApiUse::default()
        };
        let good = ApiUse {
            requests: 9,
            responses: 9,
            ..ApiUse::default()
        };
        usage.insert((1, 12), bad);
        usage.insert((1, 11), good.clone());
        usage.insert((0, 9), good);
        Certification {
            args_line: "riptide certify".into(),
            security_protocol: "SASL_SSL".into(),
            sasl_mechanism: Some("SCRAM-SHA-512".into()),
            bootstrap: vec!["a:1".into()],
            seed: 1,
            scenario: "baseline".into(),
            topic: topic.into(),
            duration: Duration::from_secs(1),
            txn_producers: 0,
            txn_not_served: None,
            mix: FaultMix::default(),
            capabilities: Capabilities::default(),
            skipped: vec![],
            warnings: vec!["node 0 was never named".into()],
            schedule: vec![],
            applied: vec![AppliedFault {
                at_ms: 0,
                phase: "start",
                id: 0,
                fault: Fault::ConnectionsCut {
                    broker: "a:1".into(),
                },
                node: 0,
                node_addr: "a:1".into(),
                hook: None,
                hits: None,
            }],
            history,
            report,
            observed: Observed {
                nodes: vec![NodeView {
                    upstream: "a:1".into(),
                    advertised: [(0, (0, 11)), (1, (0, 17))].into(),
                    ..NodeView::default()
                }],
                usage,
                rewritten: 0,
                rewrite_failures: 0,
            },
            store: vec![StoreObserved {
                listen: "127.0.0.1:7000".into(),
                upstream: "http://moto<&>:5000".into(),
                ops: [(
                    "PUT".to_string(),
                    OpUse {
                        requests: 3,
                        statuses: [(200, 2), (503, 1)].into(),
                        faulted: 1,
                        latency_us_total: 3000,
                        latency_us_max: 2000,
                        ..OpUse::default()
                    },
                )]
                .into(),
                hits_by_kind: [("store-errors".to_string(), 1)].into(),
                ..StoreObserved::default()
            }],
            coverage: riptide_coverage::Coverage {
                hits: [
                    ("workloads/a".to_string(), 2),
                    ("workloads/b".to_string(), 0),
                ]
                .into(),
            },
            started_at: "now".into(),
            wall_time: Duration::from_secs(1),
        }
    }

    #[test]
    fn reports_show_findings_with_evidence_failures_and_warnings() {
        let c = lossy();
        assert_eq!(c.report.verdict, Verdict::Fail);
        let rows = compat_rows(&c);
        let fetch = rows.iter().find(|r| r.key == 1).unwrap();
        assert!(
            fetch.status.starts_with("FAILED at v12:"),
            "{}",
            fetch.status
        );
        assert_eq!(rows.iter().find(|r| r.key == 0).unwrap().status, "ok");

        let md = markdown(&c);
        assert!(md.contains("lost-write on t<&>/0"), "{md}");
        assert!(md.contains("send t<&>/0 value v0 → offset 0"), "{md}");
        assert!(md.contains("**Warning:** node 0 was never named"));

        let html = html(&c);
        assert!(!html.contains("t<&>"), "topic names are escaped");
        assert!(html.contains("t&lt;&amp;&gt;/0"));
        assert_eq!(html.matches("<svg").count(), 1);
        assert_eq!(html.matches("<svg").count(), html.matches("</svg>").count());
        assert!(html.contains("<details open><summary class=\"fail\">data loss or corruption (1)"));
        assert!(html.contains("Never reached (this run says nothing about them): workloads/b"));
        assert!(
            md.contains("FAIL, worst: data loss or corruption (1 data-loss, 1 contract)"),
            "{md}"
        );
        assert!(md.contains("### data loss or corruption"), "{md}");
        assert!(md.contains("| `workloads/a` | 2 |"), "{md}");
        assert!(html.contains("Warning: node 0 was never named"));

        let json = json(&c);
        assert_eq!(json["verdict"], "fail");
        assert_eq!(json["report"]["worst"], "data-loss");
        assert_eq!(json["coverage"]["workloads/a"], 2);
        assert_eq!(json["evidence"][0].as_array().unwrap().len(), 2);
    }

    #[test]
    fn the_realtime_lag_figure_is_in_every_format() {
        use riptide_checker::history::{AssignValue, PollValue, TopicPartition};
        let mut c = lossy();
        let mut b = HistoryBuilder::new();
        let assign = AssignValue {
            partitions: vec![TopicPartition::new("t<&>", 0)],
        };
        b.call(2, assign.clone(), OpKind::Ok, assign);
        let send = SendValue::new("t<&>", 0, "v0");
        b.invoke(0, send.clone());
        b.ok(0, send.acked(0));
        b.advance(2_500_000_000);
        b.call(2, PollValue::default(), OpKind::Ok, PollValue::default());
        c.history = b.build();
        c.report = check_all(&c.history, &CheckerConfig::default());
        let md = markdown(&c);
        assert!(md.contains("## Realtime lag"), "{md}");
        assert!(md.contains("| t<&>/0 | 2.500 s |"), "{md}");
        let html = html(&c);
        assert!(
            html.contains("<td>t&lt;&amp;&gt;/0</td><td>2.500 s</td>"),
            "{html}"
        );
        let json = json(&c);
        assert_eq!(
            json["report"]["realtime_lag"][0]["lag_ns"],
            2_500_000_000u64
        );
    }

    #[test]
    fn allowed_findings_are_listed_apart_and_pass() {
        let mut c = lossy();
        let kinds: std::collections::BTreeSet<_> =
            c.report.findings.iter().map(|f| f.anomaly).collect();
        assert!(kinds.contains(&riptide_checker::Anomaly::LostWrite));
        c.report = c.report.allowing(&kinds);
        assert_eq!(c.report.verdict, Verdict::Pass);
        let md = markdown(&c);
        assert!(
            md.contains("# riptide certification: PASS (only allowed findings: 2)"),
            "{md}"
        );
        assert!(md.contains("### allowed (--allow)"), "{md}");
        assert!(
            md.contains("| lost-write | data loss or corruption | 1 (allowed) |"),
            "{md}"
        );
    }

    #[test]
    fn transactions_the_target_does_not_serve_are_a_row_of_the_compatibility_table() {
        let mut c = lossy();
        assert!(
            transactions_row(&c).is_none(),
            "no transactional producers, no row"
        );
        assert!(!markdown(&c).contains("**transactions**"));

        // Missing when the run started: no transactional producer ran.
        c.txn_producers = 3;
        c.txn_not_served = Some(NotServed::Missing(vec!["EndTxn".into()]));
        let row = transactions_row(&c).unwrap();
        assert_eq!(
            row.status,
            "not served (EndTxn missing): the run went on without transactional producers"
        );
        assert_eq!(row.used, "3 producer(s) asked for, none ran");
        let md = markdown(&c);
        assert!(
            md.contains("| **transactions** | — | — | — | 3 producer(s) asked for, none ran |"),
            "{md}"
        );
        assert!(summary_text(&c).contains("transactions: not served (EndTxn missing)"));
        assert_eq!(json(&c)["features"][0]["feature"], "transactions");
        assert!(html(&c).contains("<td class=\"fail\">not served (EndTxn missing)"));

        c.txn_not_served = Some(NotServed::Refused(
            "TransactionalIdAuthorizationFailed".into(),
        ));
        assert_eq!(
            transactions_row(&c).unwrap().status,
            "not served (InitProducerId with a transactional id refused: \
             TransactionalIdAuthorizationFailed): the run went on without transactional producers"
        );

        // A node that lacks them: not served.
        c.txn_not_served = None;
        assert_eq!(
            transactions_row(&c).unwrap().status,
            "not served (InitProducerId, AddPartitionsToTxn, EndTxn missing on a node)"
        );

        // Advertised and not refused at first, but refused as unsupported later, and no
        // transaction ended.
        for api in TXN_APIS.iter().chain(&TXN_OFFSET_APIS) {
            c.observed.nodes[0].advertised.insert(*api as i16, (0, 3));
        }
        let refused = ApiUse {
            requests: 4,
            responses: 4,
            error_codes: [(ResponseError::UnsupportedVersion.code(), 4)].into(),
            ..ApiUse::default()
        };
        c.observed
            .usage
            .insert((ApiKey::AddPartitionsToTxn as i16, 3), refused);
        let row = transactions_row(&c).unwrap();
        assert_eq!(
            row.status,
            "not served (AddPartitionsToTxn v3: UnsupportedVersion×4)"
        );
        assert_eq!(row.errors, "AddPartitionsToTxn UnsupportedVersion×4");
        // An idempotent producer's InitProducerId errors are not the transactions'.
        let idempotent = ApiUse {
            requests: 2,
            responses: 2,
            error_codes: [(ResponseError::UnknownServerError.code(), 2)].into(),
            ..ApiUse::default()
        };
        c.observed
            .usage
            .insert((ApiKey::InitProducerId as i16, 4), idempotent);
        assert_eq!(transactions_row(&c).unwrap().errors, row.errors);
    }

    #[test]
    fn a_clean_run_says_so() {
        let mut c = lossy();
        c.report = check_all(
            &riptide_checker::History::new(vec![]),
            &CheckerConfig::default(),
        );
        assert!(markdown(&c).contains("None: every checker passed."));
        assert!(html(&c).contains("None: every checker passed."));
    }
}
