//! Header resolution: where each required column is, or why the file cannot be validated.

/// The required columns, in output order.
pub const REQUIRED: [&str; 5] = ["id", "name", "email", "create_ts", "update_ts"];

/// Field index of each required column (in `REQUIRED` order) and the header's field count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ColumnMap {
    pub index: [usize; 5],
    pub width: usize,
}

/// Why a header cannot be used; every data record is then rejected as `invalid_header`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderProblem {
    NotUtf8,
    Missing(&'static str),
    Duplicate(&'static str),
}

impl std::fmt::Display for HeaderProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let _ = f;
        todo!()
    }
}

/// Resolves a header record (names trimmed and lowercased, any order, extras ignored).
pub fn resolve<'a>(fields: impl IntoIterator<Item = &'a [u8]>) -> Result<ColumnMap, HeaderProblem> {
    let _ = fields.into_iter();
    todo!()
}
