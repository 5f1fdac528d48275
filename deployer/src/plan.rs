//! The plan: per resource, what `up` would create, update or leave alone; human text (`Display`) or JSON (`Serialize`).

use std::fmt;

use serde::Serialize;

/// What happens to one resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Update,
    Delete,
    Unchanged,
    /// The name is taken by something that is not ours: `up` refuses to touch it.
    Conflict,
}

impl Action {
    fn sigil(self) -> &'static str {
        match self {
            Action::Create => "+",
            Action::Update => "~",
            Action::Delete => "-",
            Action::Unchanged => " ",
            Action::Conflict => "!",
        }
    }
}

/// One property's change: `old` is `None` when it is being set for the first time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PropertyChange {
    pub property: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new: Option<String>,
}

impl PropertyChange {
    pub fn set(property: impl Into<String>, new: impl Into<String>) -> PropertyChange {
        PropertyChange {
            property: property.into(),
            old: None,
            new: Some(new.into()),
        }
    }

    pub fn update(
        property: impl Into<String>,
        old: impl Into<String>,
        new: impl Into<String>,
    ) -> PropertyChange {
        PropertyChange {
            property: property.into(),
            old: Some(old.into()),
            new: Some(new.into()),
        }
    }

    /// An update from `old`, or a first setting when there is no old value.
    pub fn replace(
        property: impl Into<String>,
        old: Option<String>,
        new: impl Into<String>,
    ) -> PropertyChange {
        PropertyChange {
            property: property.into(),
            old,
            new: Some(new.into()),
        }
    }

    pub fn remove(property: impl Into<String>, old: impl Into<String>) -> PropertyChange {
        PropertyChange {
            property: property.into(),
            old: Some(old.into()),
            new: None,
        }
    }
}

/// A typed change of one resource module that can say what it does.
pub trait Describe {
    fn describe(&self) -> PropertyChange;
    /// Whether this change brings the resource into existence.
    fn is_create(&self) -> bool {
        false
    }
    /// Whether this change removes the resource (the config no longer wants it).
    fn is_delete(&self) -> bool {
        false
    }
}

/// Everything planned for one resource.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ResourcePlan {
    pub kind: &'static str,
    pub name: String,
    pub action: Action,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<PropertyChange>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl ResourcePlan {
    /// The plan for a resource from its typed changes.
    pub fn from_changes<C: Describe>(
        kind: &'static str,
        name: impl Into<String>,
        changes: &[C],
    ) -> ResourcePlan {
        let action = if changes.is_empty() {
            Action::Unchanged
        } else if changes.iter().any(Describe::is_create) {
            Action::Create
        } else if changes.iter().any(Describe::is_delete) {
            Action::Delete
        } else {
            Action::Update
        };
        ResourcePlan {
            kind,
            name: name.into(),
            action,
            changes: changes.iter().map(Describe::describe).collect(),
            note: None,
        }
    }

    pub fn conflict(
        kind: &'static str,
        name: impl Into<String>,
        why: impl Into<String>,
    ) -> ResourcePlan {
        ResourcePlan {
            kind,
            name: name.into(),
            action: Action::Conflict,
            changes: Vec::new(),
            note: Some(why.into()),
        }
    }
}

/// Counts of resources by action.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub create: usize,
    pub update: usize,
    pub delete: usize,
    pub unchanged: usize,
    pub conflict: usize,
}

impl Counts {
    pub fn of(resources: &[ResourcePlan]) -> Counts {
        let mut counts = Counts::default();
        for r in resources {
            match r.action {
                Action::Create => counts.create += 1,
                Action::Update => counts.update += 1,
                Action::Delete => counts.delete += 1,
                Action::Unchanged => counts.unchanged += 1,
                Action::Conflict => counts.conflict += 1,
            }
        }
        counts
    }
}

/// The whole plan for a stack.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub resources: Vec<ResourcePlan>,
    pub counts: Counts,
}

impl Plan {
    pub fn new(resources: Vec<ResourcePlan>) -> Plan {
        let counts = Counts::of(&resources);
        Plan { resources, counts }
    }

    /// True when applying would change nothing.
    pub fn is_empty(&self) -> bool {
        self.resources.iter().all(|r| r.action == Action::Unchanged)
    }

    pub fn has_conflicts(&self) -> bool {
        self.counts.conflict > 0
    }
}

impl fmt::Display for ResourcePlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let label = match self.action {
            Action::Unchanged => " (unchanged)",
            Action::Conflict => " (conflict)",
            _ => "",
        };
        writeln!(
            f,
            "  {} {} {}{label}",
            self.action.sigil(),
            self.kind,
            self.name
        )?;
        for change in &self.changes {
            match (&change.old, &change.new) {
                (None, Some(new)) => writeln!(f, "      + {} = {new}", change.property)?,
                (Some(old), Some(new)) => {
                    writeln!(f, "      ~ {}: {old} → {new}", change.property)?
                }
                (Some(old), None) => writeln!(f, "      - {} (was {old})", change.property)?,
                (None, None) => writeln!(f, "      ~ {}", change.property)?,
            }
        }
        if let Some(note) = &self.note {
            writeln!(f, "      ! {note}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for resource in &self.resources {
            write!(f, "{resource}")?;
        }
        let c = self.counts;
        if self.is_empty() {
            writeln!(f, "\nNo changes: {} resources up to date.", c.unchanged)
        } else {
            write!(
                f,
                "\nPlan: {} to create, {} to update, {} to delete, {} unchanged",
                c.create, c.update, c.delete, c.unchanged
            )?;
            if c.conflict > 0 {
                write!(
                    f,
                    ", {} in conflict (not ours: `up` will refuse)",
                    c.conflict
                )?;
            }
            writeln!(f, ".")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    enum Fake {
        Create,
        Memory(i32, i32),
    }

    impl Describe for Fake {
        fn describe(&self) -> PropertyChange {
            match self {
                Fake::Create => PropertyChange::set("exists", "yes"),
                Fake::Memory(old, new) => {
                    PropertyChange::update("memory_mb", old.to_string(), new.to_string())
                }
            }
        }
        fn is_create(&self) -> bool {
            matches!(self, Fake::Create)
        }
    }

    #[test]
    fn renders_like_terraform_and_counts_actions() {
        let plan = Plan::new(vec![
            ResourcePlan::from_changes("lambda function", "f", &[Fake::Memory(256, 512)]),
            ResourcePlan::from_changes("s3 bucket", "b", &[Fake::Create]),
            ResourcePlan::from_changes::<Fake>("iam role", "r", &[]),
        ]);
        assert_eq!(
            plan.to_string(),
            "  ~ lambda function f\n      ~ memory_mb: 256 → 512\n  + s3 bucket b\n      + exists = yes\n    iam role r (unchanged)\n\nPlan: 1 to create, 1 to update, 0 to delete, 1 unchanged.\n"
        );
        assert!(!plan.is_empty());
        let json = serde_json::to_value(&plan).unwrap();
        assert_eq!(json["resources"][0]["action"], "update");
        assert_eq!(json["resources"][0]["changes"][0]["old"], "256");
        assert_eq!(json["counts"]["create"], 1);
    }

    #[test]
    fn an_all_unchanged_plan_is_empty() {
        let plan = Plan::new(vec![ResourcePlan::from_changes::<Fake>(
            "iam role",
            "r",
            &[],
        )]);
        assert!(plan.is_empty());
        assert!(plan.to_string().contains("No changes"));
    }
}
