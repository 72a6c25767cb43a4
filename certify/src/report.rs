//! The certification report: Markdown, JSON, and a self-contained HTML page (the checker's
//! renderer: per-partition timelines with their windows, latency over time, over the applied
//! faults). Each takes the run's [`Figures`], computed once by [`write_all`].

use crate::client_proxy::{TXN_APIS, TXN_OFFSET_APIS};
use crate::engine::{AppliedFault, Certification};
use crate::store_proxy::StoreObserved;
use kafka_protocol::messages::ApiKey;
use maud::{html, Markup};
use riptide_checker::figures::{figures, Figures};
use riptide_checker::history::{History, Op, OpKind, TxnEnd, Value};
use riptide_checker::html::{
    self as rhtml, describe_op, finding_groups, lag_rows, latency_rows, window_rows, FaultBand,
    LAG_INTRO, WINDOWS_INTRO,
};
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

fn store_html(c: &Certification) -> Markup {
    html! {
        @if !c.store.is_empty() {
            h2 { "Object store" }
            p { (STORE_INTRO) }
            table {
                tr {
                    th { "node" } th { "operation" } th { "requests" } th { "statuses" }
                    th { "no reply" } th { "faulted" } th { "mean ms" } th { "max ms" }
                }
                @for r in store_rows(&c.store) {
                    tr {
                        td { "n" (r.node) } td { (r.op) } td { (r.requests) } td { (r.statuses) }
                        td { (r.no_reply) } td { (r.faulted) }
                        td { (format!("{:.1}", r.mean_ms)) } td { (format!("{:.1}", r.max_ms)) }
                    }
                }
            }
            ul {
                @for (k, o) in c.store.iter().enumerate() {
                    @let hits = o
                        .hits_by_kind
                        .iter()
                        .map(|(kind, n)| format!("{kind} {n}"))
                        .collect::<Vec<_>>()
                        .join(", ");
                    li {
                        "n" (k) " via " code { (o.listen) } " → " code { (o.upstream) }
                        ": requests hit by kind: " (if hits.is_empty() { "none" } else { &hits })
                        @if o.wrote() && !o.wrote_conditionally() {
                            " " strong class="fail" { "never wrote conditionally" }
                        }
                    }
                }
            }
        }
    }
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

pub fn markdown(c: &Certification, f: &Figures) -> String {
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
    figures_markdown(&mut s, f);

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

/// The run's windows of unavailability by kind and fault, and its latencies by phase.
fn figures_markdown(s: &mut String, f: &Figures) {
    let _ = writeln!(s, "\n## Windows of unavailability and latency\n");
    let _ = writeln!(s, "{WINDOWS_INTRO}\n");
    // A subject may hold `|` (a topic name): escaped, as Markdown tables need.
    let cells = |row: &[String]| {
        let cells: Vec<String> = row.iter().map(|c| c.replace('|', "\\|")).collect();
        cells.join(" | ")
    };
    if f.windows.is_empty() {
        let _ = writeln!(s, "No window: every attempt got through.\n");
    } else {
        let _ = writeln!(
            s,
            "| window | fault | count | total (s) | longest (s) | on | from (s) |\n|---|---|---|---|---|---|---|"
        );
        for row in window_rows(f) {
            let _ = writeln!(s, "| {} |", cells(&row));
        }
    }
    let _ = writeln!(
        s,
        "\n| latency | phase | records | p50 (ms) | p99 (ms) | max (ms) |\n|---|---|---|---|---|---|"
    );
    for row in latency_rows(f) {
        let _ = writeln!(s, "| {} |", cells(&row));
    }
}

pub fn json(c: &Certification, f: &Figures) -> serde_json::Value {
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
        "figures": f,
    })
}

/// The certification page: checker's report sections (counts, realtime lag, the figures'
/// tables, the pictures over the applied faults as bands, findings) around certify's own
/// (header, coverage, faults with their hooks, object store, compatibility, proxy).
pub fn html(c: &Certification, f: &Figures) -> String {
    let r = &c.report;
    let (reached, unreached) = coverage_rows(c);
    let o = &c.observed;
    let body = html! {
        (rhtml::header_table(header_rows(c).into_iter().map(|(k, v, _)| (k, v))))
        p class="note" { (NOT_DETERMINISTIC) }
        @if !c.skipped.is_empty() {
            p { "Fault kinds skipped: " (c.skipped.join("; ")) "." }
        }
        @for w in &c.warnings {
            p class="fail" { "Warning: " (w) "." }
        }
        // What a reader needs first: how bad, where, when; then the evidence.
        (rhtml::anomaly_counts(r))
        (rhtml::realtime_lag(r))
        (rhtml::figures_tables(f))
        (rhtml::timelines(&c.history, r, f, &fault_bands(c)))
        (rhtml::findings(&c.history, r))

        h2 { "Coverage" }
        p {
            "The states of riptide's clients, proxy and nemesis this run reached: "
            (reached.len()) " of " (reached.len() + unreached.len()) " points."
        }
        table {
            tr { th { "point" } th { "times" } }
            @for (k, n) in &reached {
                tr { td { code { (k) } } td { (n) } }
            }
        }
        @if !unreached.is_empty() {
            p class="fail" {
                "Never reached (this run says nothing about them): " (unreached.join(", "))
            }
        }

        h2 { "Faults" }
        @if c.applied.is_empty() {
            p { "None were injected." }
        } @else {
            table {
                tr {
                    th { "t (s)" } th { "phase" } th { "fault" } th { "node" } th { "hook" }
                    th { "requests hit" }
                }
                @for a in &c.applied {
                    @let hook = a
                        .hook
                        .as_ref()
                        .map(|h| format!("{}: {}", h.command, h.outcome))
                        .unwrap_or_default();
                    tr {
                        td { (format!("{:.1}", a.at_ms as f64 / 1000.0)) }
                        td { (a.phase) }
                        td { code { (serde_json::to_string(&a.fault).unwrap_or_default()) } }
                        td { (a.node) " " (a.node_addr) }
                        td { code { (hook) } }
                        td { @if let Some(n) = a.hits { (n) } }
                    }
                }
            }
        }
        (store_html(c))

        h2 { "Compatibility" }
        table {
            tr {
                th { "API" } th { "key" } th { "riptide client" } th { "advertised" }
                th { "used" } th { "replies" } th { "errors" } th { "status" }
            }
            @if let Some(t) = transactions_row(c) {
                tr {
                    td { strong { (t.feature) } } td { "—" } td { "—" } td { "—" }
                    td { (t.used) } td { "—" } td { (t.errors) }
                    td class=[(!t.status.starts_with("served")).then_some("fail")] { (t.status) }
                }
            }
            @for row in compat_rows(c) {
                tr {
                    td { (row.api) } td { (row.key) } td { (range(row.client)) }
                    td { (advertised_text(&row)) } td { (used_text(&row)) } td { (row.responses) }
                    td { (errors_text(&row)) }
                    td class=[row.status.starts_with("FAILED").then_some("fail")] { (row.status) }
                }
            }
        }
        p {
            "Proxy: " (o.nodes.len()) " node(s) fronted, " (o.rewritten) " replies rewritten, "
            (o.rewrite_failures) " could not be rewritten."
        }
    };
    rhtml::page("riptide certification", r, body)
}

/// The applied faults as timeline bands: each start with its heal (by fault id), one never
/// healed to the end of the history; labelled by kind and node.
fn fault_bands(c: &Certification) -> Vec<FaultBand> {
    let end_ns = c.history.ops.iter().map(|o| o.time_ns).max().unwrap_or(0);
    let label = |a: &AppliedFault| format!("{} n{}", a.fault.kind(), a.node);
    let mut bands = Vec::new();
    let mut open: Vec<&AppliedFault> = Vec::new();
    for a in &c.applied {
        if a.phase == "start" {
            open.push(a);
        } else if a.phase == "heal" {
            if let Some(i) = open.iter().position(|o| o.id == a.id) {
                let o = open.remove(i);
                bands.push(FaultBand {
                    start_ns: o.at_ms * 1_000_000,
                    end_ns: a.at_ms * 1_000_000,
                    label: label(o),
                });
            }
        }
    }
    for o in open {
        bands.push(FaultBand {
            start_ns: o.at_ms * 1_000_000,
            end_ns: end_ns.max(o.at_ms * 1_000_000),
            label: label(o),
        });
    }
    bands.sort();
    bands
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
    let f = figures(&c.history);
    put("report.md", markdown(c, &f).into_bytes())?;
    put("report.json", serde_json::to_vec_pretty(&json(c, &f))?)?;
    put("report.html", html(c, &f).into_bytes())?;
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
    use riptide_checker::{check_all, CheckerConfig, Verdict};
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

        let md = markdown(&c, &figures(&c.history));
        assert!(md.contains("lost-write on t<&>/0"), "{md}");
        assert!(md.contains("send t<&>/0 value v0 → offset 0"), "{md}");
        assert!(md.contains("**Warning:** node 0 was never named"));

        let html = html(&c, &figures(&c.history));
        assert!(!html.contains("t<&>"), "topic names are escaped");
        assert!(html.contains("t&lt;&amp;&gt;/0"));
        // One partition's timeline, and the latency chart.
        assert_eq!(html.matches("<svg class=\"timeline\"").count(), 1);
        assert_eq!(html.matches("<svg").count(), 2);
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

        let json = json(&c, &figures(&c.history));
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
        let md = markdown(&c, &figures(&c.history));
        assert!(md.contains("## Realtime lag"), "{md}");
        assert!(md.contains("| t<&>/0 | 2.500 s |"), "{md}");
        let html = html(&c, &figures(&c.history));
        assert!(
            html.contains("<td>t&lt;&amp;&gt;/0</td><td>2.500 s</td>"),
            "{html}"
        );
        let json = json(&c, &figures(&c.history));
        assert_eq!(
            json["report"]["realtime_lag"][0]["lag_ns"],
            2_500_000_000u64
        );
    }

    #[test]
    fn windows_and_latency_are_in_markdown_and_json() {
        let mut c = lossy();
        let mut b = HistoryBuilder::new();
        let send = |v: &str| SendValue::new("t<&>", 0, v);
        let i = b.invoke(0, send("a"));
        b.advance(1_000_000_000);
        b.complete(0, i, OpKind::Info, send("a"));
        let i = b.invoke(0, send("b"));
        b.advance(500_000_000);
        b.complete(0, i, OpKind::Ok, send("b").acked(0));
        c.history = b.build();
        c.report = check_all(&c.history, &CheckerConfig::default());
        let md = markdown(&c, &figures(&c.history));
        assert!(
            md.contains("## Windows of unavailability and latency"),
            "{md}"
        );
        assert!(
            md.contains("| write-window | no fault | 1 | 1.500 | 1.500 | t<&>/0 | 0.000 |"),
            "{md}"
        );
        assert!(
            md.contains("| produce ack | steady | 1 | 500.0 | 500.0 | 500.0 |"),
            "{md}"
        );
        let json = json(&c, &figures(&c.history));
        assert_eq!(json["figures"]["windows"][0]["kind"], "write");
        assert_eq!(json["figures"]["windows"][0]["end_ns"], 1_500_000_000u64);
        let over = &json["figures"]["latency_over_time"];
        assert_eq!(over["buckets"][0]["produce"]["max_ns"], 500_000_000u64);
        // The page: the same tables, the window as a bar on its partition with what it was,
        // and the latency chart.
        let html = html(&c, &figures(&c.history));
        assert!(html.contains("<table id=\"windows\">"), "{html}");
        assert!(html.contains(
            "<td>write-window</td><td>no fault</td><td>1</td><td>1.500</td><td>1.500</td>\
             <td>t&lt;&amp;&gt;/0</td><td>0.000</td>"
        ));
        assert!(html.contains("<td>produce ack</td><td>steady</td><td>1</td><td>500.0</td>"));
        assert!(html.contains("data-windows=\"1\""), "{html}");
        assert!(html.contains(
            "<title>write-window on t&lt;&amp;&gt;/0: 1.500 s from 0.000 s (no fault)</title>"
        ));
        assert!(
            html.contains("<div id=\"latency\" data-points=\"1\">"),
            "{html}"
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
        let md = markdown(&c, &figures(&c.history));
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
        assert!(!markdown(&c, &figures(&c.history)).contains("**transactions**"));

        // Missing when the run started: no transactional producer ran.
        c.txn_producers = 3;
        c.txn_not_served = Some(NotServed::Missing(vec!["EndTxn".into()]));
        let row = transactions_row(&c).unwrap();
        assert_eq!(
            row.status,
            "not served (EndTxn missing): the run went on without transactional producers"
        );
        assert_eq!(row.used, "3 producer(s) asked for, none ran");
        let md = markdown(&c, &figures(&c.history));
        assert!(
            md.contains("| **transactions** | — | — | — | 3 producer(s) asked for, none ran |"),
            "{md}"
        );
        assert!(summary_text(&c).contains("transactions: not served (EndTxn missing)"));
        assert_eq!(
            json(&c, &figures(&c.history))["features"][0]["feature"],
            "transactions"
        );
        assert!(html(&c, &figures(&c.history))
            .contains("<td class=\"fail\">not served (EndTxn missing)"));

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
        assert!(markdown(&c, &figures(&c.history)).contains("None: every checker passed."));
        assert!(html(&c, &figures(&c.history)).contains("None: every checker passed."));
    }
}
