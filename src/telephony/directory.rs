//! Enterprise and group directory search, with BroadWorks-style criteria and paging.
//!
//! Criteria: `firstName`, `lastName`, `number`, `extension`, `userId`. A value matches the
//! whole field, with `*` matching any run of characters (`Jo*`, `*son`, `*an*`). A value
//! that ends in `/i` matches without regard to case (`smi*/i`). Every criterion given must
//! match, or any one of them with `searchCriteriaModeOr=true`. Results are sorted by last
//! name, first name, then user id, and paged with `start` (1-based) and `results`.
//! `totalAvailableRecords` counts every match.

use crate::telephony::{PersonalContact, User};

/// Which directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirectoryScope {
    /// Everyone in the enterprise.
    Enterprise(String),
    /// Everyone in one group of the enterprise.
    Group {
        /// The enterprise.
        enterprise_id: String,
        /// The group.
        group_id: String,
    },
}

/// One criterion: a pattern with `*` wildcards, optionally case-insensitive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    parts: Vec<String>,
    case_insensitive: bool,
}

impl Pattern {
    /// Parses `value` (a trailing `/i` makes it case-insensitive).
    pub fn parse(value: &str) -> Self {
        let (text, case_insensitive) = match value.strip_suffix("/i") {
            Some(text) => (text, true),
            None => (value, false),
        };
        let fold = |s: &str| {
            if case_insensitive {
                s.to_lowercase()
            } else {
                s.to_owned()
            }
        };
        Pattern {
            parts: text.split('*').map(fold).collect(),
            case_insensitive,
        }
    }

    /// True when the whole of `value` matches.
    pub fn matches(&self, value: &str) -> bool {
        let value = if self.case_insensitive {
            value.to_lowercase()
        } else {
            value.to_owned()
        };
        // `split` yields one part at least, so the else branch is never taken.
        let Some((first, rest)) = self.parts.split_first() else {
            return value.is_empty();
        };
        let Some(mut remaining) = value.strip_prefix(first.as_str()) else {
            return false;
        };
        let Some((last, middle)) = rest.split_last() else {
            return remaining.is_empty();
        };
        for part in middle {
            match remaining.find(part.as_str()) {
                Some(at) => remaining = &remaining[at + part.len()..],
                None => return false,
            }
        }
        remaining.len() >= last.len() && remaining.ends_with(last.as_str())
    }
}

/// A directory search.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirectoryQuery {
    /// `firstName`.
    pub first_name: Option<Pattern>,
    /// `lastName`.
    pub last_name: Option<Pattern>,
    /// `number`.
    pub number: Option<Pattern>,
    /// `extension`.
    pub extension: Option<Pattern>,
    /// `userId`.
    pub user_id: Option<Pattern>,
    /// `name`: the first name, the last name or both (`First Last`); a personal entry's name.
    pub name: Option<Pattern>,
    /// Any criterion suffices (`searchCriteriaModeOr=true`) instead of all.
    pub any: bool,
    /// First result, 1-based.
    pub start: usize,
    /// Most results on the page.
    pub results: usize,
}

/// One directory entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryEntry {
    /// `user@domain`.
    pub user_id: String,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// Number, if any.
    pub number: Option<String>,
    /// Extension, if any.
    pub extension: Option<String>,
    /// Group.
    pub group_id: String,
    /// Enterprise.
    pub enterprise_id: String,
}

/// One page of results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryPage {
    /// The position of the first entry, 1-based.
    pub start_index: usize,
    /// Every match, across pages.
    pub total: usize,
    /// This page.
    pub entries: Vec<DirectoryEntry>,
}

impl DirectoryQuery {
    fn matches(&self, user: &User) -> bool {
        let full_name = format!("{} {}", user.first_name, user.last_name);
        let name = self.name.as_ref().map(|p| {
            p.matches(&user.first_name) || p.matches(&user.last_name) || p.matches(&full_name)
        });
        self.combine(
            [
                (&self.first_name, user.first_name.as_str()),
                (&self.last_name, &user.last_name),
                (&self.number, user.number.as_deref().unwrap_or("")),
                (&self.extension, user.extension.as_deref().unwrap_or("")),
                (&self.user_id, &user.id),
            ]
            .iter()
            .filter_map(|(pattern, value)| pattern.as_ref().map(|p| p.matches(value)))
            .chain(name),
        )
    }

    /// Whether a personal directory entry matches (`name`, `number`).
    pub fn matches_contact(&self, contact: &PersonalContact) -> bool {
        self.combine(
            [(&self.name, &contact.name), (&self.number, &contact.number)]
                .iter()
                .filter_map(|(pattern, value)| pattern.as_ref().map(|p| p.matches(value))),
        )
    }

    /// All given criteria, or any of them with `searchCriteriaModeOr`; none given matches.
    fn combine(&self, given: impl Iterator<Item = bool>) -> bool {
        let mut given = given.peekable();
        if given.peek().is_none() {
            return true;
        }
        if self.any {
            given.any(|m| m)
        } else {
            given.all(|m| m)
        }
    }
}

/// The page of `items` that `query` asks for (`start`, 1-based, and `results`), with the
/// position of its first entry and the number of all items.
pub fn page_of<T>(items: Vec<T>, query: &DirectoryQuery) -> (usize, usize, Vec<T>) {
    let start = query.start.max(1);
    let total = items.len();
    let page = items
        .into_iter()
        .skip(start - 1)
        .take(query.results)
        .collect();
    (start, total, page)
}

/// Searches `users` within `scope`.
pub fn search(users: Vec<User>, scope: &DirectoryScope, query: &DirectoryQuery) -> DirectoryPage {
    let in_scope = |u: &User| match scope {
        DirectoryScope::Enterprise(enterprise) => &u.enterprise_id == enterprise,
        DirectoryScope::Group {
            enterprise_id,
            group_id,
        } => &u.enterprise_id == enterprise_id && &u.group_id == group_id,
    };
    let mut found: Vec<User> = users
        .into_iter()
        .filter(|u| in_scope(u) && query.matches(u))
        .collect();
    found.sort_by(|a, b| {
        (
            a.last_name.to_lowercase(),
            a.first_name.to_lowercase(),
            &a.id,
        )
            .cmp(&(
                b.last_name.to_lowercase(),
                b.first_name.to_lowercase(),
                &b.id,
            ))
    });
    let (start, total, found) = page_of(found, query);
    let entries = found
        .into_iter()
        .map(|u| DirectoryEntry {
            user_id: u.id,
            first_name: u.first_name,
            last_name: u.last_name,
            number: u.number,
            extension: u.extension,
            group_id: u.group_id,
            enterprise_id: u.enterprise_id,
        })
        .collect();
    DirectoryPage {
        start_index: start,
        total,
        entries,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_and_case() {
        let cases = [
            ("Jo*", "John", true),
            ("Jo*", "jo", false),
            ("jo*/i", "JOHN", true),
            ("*son", "Johnson", true),
            ("*son", "Sonja", false),
            ("*an*", "Hannah", true),
            ("J*n*n", "Johnson", true),
            ("J*n*n", "Jon", false),
            ("Bob", "Bobby", false),
            ("Bob", "Bob", true),
            ("*", "", true),
            ("a*a", "a", false),
        ];
        for (pattern, value, expected) in cases {
            assert_eq!(
                Pattern::parse(pattern).matches(value),
                expected,
                "{pattern} ~ {value}"
            );
        }
    }
}
