//! One module per AWS resource, each with the same shape: `Spec` (desired, pure), `read`
//! (NotFound ⇒ `None`), pure `diff(spec, observed) -> Vec<Change>`, `apply` (one call per
//! change, none when the diff is empty) and a separate `delete` path.

pub mod alarms;
pub mod athena;
pub mod bucket;
pub mod function;
pub mod glue;
pub mod invoke_config;
pub mod log_group;
pub mod notification;
pub mod permission;
pub mod queue;
pub mod role;
pub mod topic;

use std::collections::BTreeMap;

use crate::config::OWNERSHIP_TAG;
use crate::plan::PropertyChange;

/// Tags as a sorted map.
pub type Tags = BTreeMap<String, String>;

/// Whether an existing resource belongs to `stack`, judged by its ownership tag.
pub fn ownership_problem(tags: &Tags, stack: &str) -> Option<String> {
    match tags.get(OWNERSHIP_TAG) {
        Some(owner) if owner == stack => None,
        Some(owner) => Some(format!(
            "it belongs to stack {owner:?} (tag {OWNERSHIP_TAG}={owner}), not {stack:?}"
        )),
        None => Some(format!(
            "it exists without the tag {OWNERSHIP_TAG}={stack}, so it is not ours; pick another name in the config, or add that tag to adopt it"
        )),
    }
}

/// The tags to add or overwrite so that `observed` carries every `desired` tag. Tags we do
/// not manage are left alone.
pub fn missing_tags(desired: &Tags, observed: &Tags) -> Tags {
    desired
        .iter()
        .filter(|(k, v)| observed.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// `{a=1, b=2}`.
pub fn render_tags(tags: &Tags) -> String {
    let inner: Vec<String> = tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{{{}}}", inner.join(", "))
}

/// The plan line for a tag change.
pub fn describe_tags(observed: &Tags, to_set: &Tags) -> PropertyChange {
    let old: Tags = to_set
        .keys()
        .filter_map(|k| observed.get(k).map(|v| (k.clone(), v.clone())))
        .collect();
    if old.is_empty() {
        PropertyChange::set("tags", render_tags(to_set))
    } else {
        PropertyChange::update("tags", render_tags(&old), render_tags(to_set))
    }
}

/// What `down` did with one resource.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "outcome", content = "reason", rename_all = "lowercase")]
pub enum Deletion {
    Deleted,
    /// Nothing to delete.
    Absent,
    /// Left in place, with why.
    Kept(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> Tags {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn ownership_needs_our_stack_in_the_tag() {
        assert_eq!(ownership_problem(&tags(&[(OWNERSHIP_TAG, "s")]), "s"), None);
        assert!(
            ownership_problem(&tags(&[(OWNERSHIP_TAG, "t")]), "s")
                .unwrap()
                .contains("belongs to stack \"t\"")
        );
        assert!(
            ownership_problem(&tags(&[("team", "x")]), "s")
                .unwrap()
                .contains("without the tag")
        );
    }

    #[test]
    fn only_missing_or_different_tags_are_set() {
        let desired = tags(&[("a", "1"), ("b", "2")]);
        assert_eq!(
            missing_tags(&desired, &tags(&[("a", "1"), ("b", "2"), ("c", "3")])),
            Tags::new()
        );
        assert_eq!(
            missing_tags(&desired, &tags(&[("a", "1"), ("b", "9")])),
            tags(&[("b", "2")])
        );
        assert_eq!(
            describe_tags(&tags(&[("b", "9")]), &tags(&[("b", "2")])),
            PropertyChange::update("tags", "{b=9}", "{b=2}")
        );
    }
}
