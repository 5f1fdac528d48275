//! Header resolution: where each required column is, or why the file cannot be validated.

use std::fmt;

/// The required columns, in output order.
pub const REQUIRED: [&str; 5] = ["id", "name", "email", "create_ts", "update_ts"];

/// Field index of each required column (in `REQUIRED` order) and the header's field count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ColumnMap {
    pub index: [usize; 5],
    pub width: usize,
}

impl ColumnMap {
    /// The header is exactly the required columns, in `REQUIRED` order (extra-free).
    /// Asked of every clean row: five compares, where comparing the arrays called `memcmp`.
    #[inline]
    pub fn is_canonical(&self) -> bool {
        let [id, name, email, create_ts, update_ts] = self.index;
        self.width == REQUIRED.len() && (id, name, email, create_ts, update_ts) == (0, 1, 2, 3, 4)
    }
}

/// Why a header cannot be used; every data record is then rejected as `invalid_header`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderProblem {
    NotUtf8,
    Missing(&'static str),
    Duplicate(&'static str),
    /// The header record is larger than the processor's record limit (an extension of SPEC §2).
    TooLarge,
}

impl fmt::Display for HeaderProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderProblem::NotUtf8 => f.write_str("header is not valid utf-8"),
            HeaderProblem::Missing(column) => write!(f, "missing column `{column}`"),
            HeaderProblem::Duplicate(column) => write!(f, "duplicate column `{column}`"),
            HeaderProblem::TooLarge => f.write_str("header record is too large"),
        }
    }
}

impl std::error::Error for HeaderProblem {}

/// The outcome of reading a header: the usable map, or the problem plus the required columns
/// that could still be located (named exactly once), so rejected rows can show their values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolution {
    pub map: Result<ColumnMap, HeaderProblem>,
    pub located: [Option<usize>; 5],
}

/// Resolves a header record (names trimmed and lowercased, any order, extras ignored).
pub fn resolve<'a>(fields: impl IntoIterator<Item = &'a [u8]>) -> Result<ColumnMap, HeaderProblem> {
    resolve_detailed(fields).map
}

/// Like `resolve`, also reporting where the required columns are when the header is unusable.
///
/// Problems are reported in this order: a field that is not UTF-8, then the first required
/// column (in `REQUIRED` order) that is missing or named twice.
pub fn resolve_detailed<'a>(fields: impl IntoIterator<Item = &'a [u8]>) -> Resolution {
    let mut seen = [0usize; 5];
    let mut located = [None; 5];
    let mut width = 0;
    let mut not_utf8 = false;
    for (i, field) in fields.into_iter().enumerate() {
        width += 1;
        let Ok(name) = std::str::from_utf8(field) else {
            not_utf8 = true;
            continue;
        };
        let name = name.trim().to_lowercase();
        if let Some(col) = REQUIRED.iter().position(|r| *r == name) {
            seen[col] += 1;
            located[col] = Some(i);
        }
    }
    for col in 0..REQUIRED.len() {
        if seen[col] != 1 {
            located[col] = None;
        }
    }
    let problem = if not_utf8 {
        Some(HeaderProblem::NotUtf8)
    } else {
        (0..REQUIRED.len()).find_map(|col| match seen[col] {
            0 => Some(HeaderProblem::Missing(REQUIRED[col])),
            1 => None,
            _ => Some(HeaderProblem::Duplicate(REQUIRED[col])),
        })
    };
    let map = match (problem, located) {
        (None, [Some(a), Some(b), Some(c), Some(d), Some(e)]) => Ok(ColumnMap {
            index: [a, b, c, d, e],
            width,
        }),
        (Some(problem), _) => Err(problem),
        // Every column was seen exactly once, so every column is located.
        (None, _) => Err(HeaderProblem::Missing(REQUIRED[0])),
    };
    Resolution { map, located }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(header: &[&[u8]]) -> Result<ColumnMap, HeaderProblem> {
        resolve(header.iter().copied())
    }

    #[test]
    fn canonical_is_exactly_the_required_columns_in_order() {
        let cases: [(&[&[u8]], bool); 4] = [
            (
                &[b"id", b"name", b"email", b"create_ts", b"update_ts"],
                true,
            ),
            (
                &[b"ID", b" name ", b"email", b"create_ts", b"update_ts"],
                true,
            ),
            (
                &[b"id", b"name", b"email", b"update_ts", b"create_ts"],
                false,
            ),
            (
                &[b"id", b"name", b"email", b"create_ts", b"update_ts", b"x"],
                false,
            ),
        ];
        for (header, canonical) in cases {
            let map = res(header).expect("usable");
            assert_eq!(map.is_canonical(), canonical, "{header:?}");
        }
    }

    #[test]
    fn exact_header() {
        let h: [&[u8]; 5] = [b"id", b"name", b"email", b"create_ts", b"update_ts"];
        assert_eq!(
            res(&h),
            Ok(ColumnMap {
                index: [0, 1, 2, 3, 4],
                width: 5
            })
        );
    }

    #[test]
    fn reordered_upper_case_padded_with_extras() {
        let h: [&[u8]; 7] = [
            b" UPDATE_TS ",
            b"extra",
            b"Email",
            b"\tID",
            b"extra",
            b"Name\xc2\xa0",
            b"create_ts",
        ];
        assert_eq!(
            res(&h),
            Ok(ColumnMap {
                index: [3, 5, 2, 6, 0],
                width: 7
            })
        );
    }

    #[test]
    fn problems() {
        let missing: [&[u8]; 4] = [b"id", b"name", b"create_ts", b"update_ts"];
        assert_eq!(res(&missing), Err(HeaderProblem::Missing("email")));
        let dup: [&[u8]; 6] = [b"id", b"name", b"email", b"create_ts", b"update_ts", b" ID"];
        assert_eq!(res(&dup), Err(HeaderProblem::Duplicate("id")));
        let bad: [&[u8]; 6] = [
            b"id",
            b"name",
            b"email",
            b"create_ts",
            b"update_ts",
            b"\xff",
        ];
        assert_eq!(res(&bad), Err(HeaderProblem::NotUtf8));
        let semi: [&[u8]; 1] = [b"id;name;email;create_ts;update_ts"];
        assert_eq!(res(&semi), Err(HeaderProblem::Missing("id")));
        assert_eq!(
            HeaderProblem::Missing("email").to_string(),
            "missing column `email`"
        );
        assert_eq!(
            HeaderProblem::Duplicate("id").to_string(),
            "duplicate column `id`"
        );
        assert_eq!(
            HeaderProblem::NotUtf8.to_string(),
            "header is not valid utf-8"
        );
    }

    #[test]
    fn located_columns_survive_a_problem() {
        let h: [&[u8]; 5] = [b"name", b"id", b"create_ts", b"update_ts", b"name"];
        let r = resolve_detailed(h.iter().copied());
        assert_eq!(r.map, Err(HeaderProblem::Duplicate("name")));
        assert_eq!(r.located, [Some(1), None, None, Some(2), Some(3)]);
    }
}
