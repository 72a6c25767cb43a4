//! Per-node process hooks: shell commands that kill, start, pause and resume
//! one node of the cluster under test. Given as templates on the command line
//! (`{node}`, `{addr}`, `{host}`, `{port}` are filled in) or in a TOML file:
//!
//! ```toml
//! kill = "kill -9 $(cat /run/broker-{node}.pid)"   # templates for every node
//! start = "./start-broker.sh {node}"
//! [[node]]                                         # optional, per node, in bootstrap order
//! pause = "kill -STOP 4242"
//! resume = "kill -CONT 4242"
//! ```

use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Duration;

/// How long a hook may run before it counts as failed.
const HOOK_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Kill,
    Start,
    Pause,
    Resume,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HookSet {
    pub kill: Option<String>,
    pub start: Option<String>,
    pub pause: Option<String>,
    pub resume: Option<String>,
}

impl HookSet {
    fn get(&self, a: Action) -> Option<&String> {
        match a {
            Action::Kill => self.kill.as_ref(),
            Action::Start => self.start.as_ref(),
            Action::Pause => self.pause.as_ref(),
            Action::Resume => self.resume.as_ref(),
        }
    }

    /// `other`'s commands where it has them, else this one's.
    fn overlay(&self, other: &HookSet) -> HookSet {
        HookSet {
            kill: other.kill.clone().or_else(|| self.kill.clone()),
            start: other.start.clone().or_else(|| self.start.clone()),
            pause: other.pause.clone().or_else(|| self.pause.clone()),
            resume: other.resume.clone().or_else(|| self.resume.clone()),
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HookFile {
    #[serde(flatten)]
    all: HookSet,
    #[serde(default)]
    node: Vec<HookSet>,
}

/// The hooks of every node, templates already resolved per node.
#[derive(Clone, Debug, Default)]
pub struct Hooks {
    all: HookSet,
    per_node: Vec<HookSet>,
}

/// What running one hook did.
#[derive(Clone, Debug, Serialize)]
pub struct HookRun {
    pub action: Action,
    pub node: usize,
    pub command: String,
    pub ok: bool,
    /// Exit status, or why it did not run.
    pub outcome: String,
}

impl Hooks {
    /// Command-line templates, overlaid on a file's if both are given.
    pub fn load(file: Option<&Path>, flags: HookSet) -> anyhow::Result<Hooks> {
        let parsed = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading hook file {}", path.display()))?;
                toml::from_str::<HookFile>(&text)
                    .with_context(|| format!("parsing hook file {}", path.display()))?
            }
            None => HookFile::default(),
        };
        Ok(Hooks {
            all: parsed.all.overlay(&flags),
            per_node: parsed.node,
        })
    }

    fn command(&self, action: Action, node: usize, addr: &str) -> Option<String> {
        let set = match self.per_node.get(node) {
            Some(n) => self.all.overlay(n),
            None => self.all.clone(),
        };
        let template = set.get(action)?;
        let (host, port) = addr.rsplit_once(':').unwrap_or((addr, ""));
        Some(
            template
                .replace("{node}", &node.to_string())
                .replace("{addr}", addr)
                .replace("{host}", host)
                .replace("{port}", port),
        )
    }

    /// Whether every one of `nodes` has commands for both actions.
    pub fn can(&self, a: Action, b: Action, nodes: &[String]) -> bool {
        !nodes.is_empty()
            && nodes.iter().enumerate().all(|(i, addr)| {
                self.command(a, i, addr).is_some() && self.command(b, i, addr).is_some()
            })
    }

    /// Runs one hook through `sh -c`, with a time limit.
    pub async fn run(&self, action: Action, node: usize, addr: &str) -> HookRun {
        let Some(command) = self.command(action, node, addr) else {
            return HookRun {
                action,
                node,
                command: String::new(),
                ok: false,
                outcome: "no hook configured".into(),
            };
        };
        let child = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(&command)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output();
        let (ok, outcome) = match tokio::time::timeout(HOOK_TIMEOUT, child).await {
            Err(_) => (
                false,
                format!("timed out after {}s", HOOK_TIMEOUT.as_secs()),
            ),
            Ok(Err(e)) => (false, format!("could not run: {e}")),
            Ok(Ok(out)) => {
                let stderr = String::from_utf8_lossy(&out.stderr);
                let tail: String = stderr.trim().chars().rev().take(200).collect();
                let tail: String = tail.chars().rev().collect();
                if out.status.success() {
                    (true, "exit 0".into())
                } else {
                    (false, format!("{}: {tail}", out.status))
                }
            }
        };
        if ok {
            tracing::info!(?action, node, %command, "hook ran");
        } else {
            tracing::warn!(?action, node, %command, %outcome, "hook failed");
        }
        HookRun {
            action,
            node,
            command,
            ok,
            outcome,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_fill_in_the_node_and_per_node_entries_override() {
        let dir = std::env::temp_dir().join(format!("riptide-hooks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("hooks.toml");
        std::fs::write(
            &file,
            "kill = \"kill {node} {host} {port}\"\nstart = \"start {addr}\"\n[[node]]\nkill = \"special\"\n",
        )
        .unwrap();
        let flags = HookSet {
            pause: Some("pause {node}".into()),
            ..HookSet::default()
        };
        let h = Hooks::load(Some(&file), flags).unwrap();
        assert_eq!(h.command(Action::Kill, 0, "a:1").unwrap(), "special");
        assert_eq!(h.command(Action::Kill, 1, "b:2").unwrap(), "kill 1 b 2");
        assert_eq!(h.command(Action::Start, 1, "b:2").unwrap(), "start b:2");
        assert_eq!(h.command(Action::Pause, 2, "c:3").unwrap(), "pause 2");
        assert!(h.command(Action::Resume, 0, "a:1").is_none());
        let nodes = vec!["a:1".to_string(), "b:2".to_string()];
        assert!(h.can(Action::Kill, Action::Start, &nodes));
        assert!(!h.can(Action::Pause, Action::Resume, &nodes));
        std::fs::write(&file, "kil = \"typo\"\n").unwrap();
        assert!(Hooks::load(Some(&file), HookSet::default()).is_err());
    }

    #[tokio::test]
    async fn a_failing_hook_is_reported_not_fatal() {
        let h = Hooks {
            all: HookSet {
                kill: Some("echo oops >&2; exit 3".into()),
                start: Some("true".into()),
                ..HookSet::default()
            },
            per_node: vec![],
        };
        let r = h.run(Action::Kill, 0, "x:1").await;
        assert!(!r.ok);
        assert!(r.outcome.contains("oops"), "{}", r.outcome);
        assert!(h.run(Action::Start, 0, "x:1").await.ok);
        assert!(!h.run(Action::Pause, 0, "x:1").await.ok);
    }
}
