//! Progress and results for humans: on stdout in text mode, on stderr when stdout carries JSON.

use std::io::Write;
use std::time::Duration;

use crate::aws::Identity;
use crate::config::Target;
use crate::plan::{Action, ResourcePlan};
use crate::resources::Deletion;

/// `--output`: human text or one JSON document on stdout.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    #[default]
    Text,
    Json,
}

/// Where progress lines go, so `--output json` keeps stdout to exactly one document.
#[derive(Clone, Copy, Debug)]
pub struct Reporter {
    pub output: Output,
}

impl Reporter {
    pub fn new(output: Output) -> Reporter {
        Reporter { output }
    }

    /// A progress line.
    pub fn line(&self, text: impl AsRef<str>) {
        let text = text.as_ref();
        match self.output {
            Output::Text => {
                let _ = writeln!(std::io::stdout(), "{text}");
            }
            Output::Json => {
                let _ = writeln!(std::io::stderr(), "{text}");
            }
        }
    }

    /// The target banner every AWS command starts with.
    pub fn target(&self, target: &Target, identity: &Identity) {
        let place = match &target.endpoint {
            Some(endpoint) => format!("endpoint {endpoint}"),
            None => "AWS".to_owned(),
        };
        self.line(format!(
            "Target: {place} · region {} · account {} ({})",
            target.region, identity.account, identity.arn
        ));
    }

    pub fn applied(&self, plan: &ResourcePlan, elapsed: Duration) {
        let verb = match plan.action {
            Action::Create => "+ created",
            Action::Update => "~ updated",
            Action::Delete => "- deleted",
            Action::Unchanged | Action::Conflict => return,
        };
        let detail = if plan.action == Action::Update {
            let props: Vec<&str> = plan.changes.iter().map(|c| c.property.as_str()).collect();
            format!(": {}", props.join(", "))
        } else {
            String::new()
        };
        self.line(format!(
            "  {verb} {} {}{detail} ({} ms)",
            plan.kind,
            plan.name,
            elapsed.as_millis()
        ));
    }

    pub fn removed(&self, kind: &str, name: &str, deletion: &Deletion) {
        match deletion {
            Deletion::Deleted => self.line(format!("  - deleted {kind} {name}")),
            Deletion::Absent => self.line(format!("    {kind} {name}: not there")),
            Deletion::Kept(why) => self.line(format!("  ! kept {kind} {name}: {why}")),
        }
    }
}

/// Prints one JSON document on stdout.
pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    writeln!(std::io::stdout(), "{text}")?;
    Ok(())
}
