//! The SPEC §2 email syntax rule, checked on bytes.

/// True when `email` (already trimmed and lowercased) satisfies SPEC §2.
pub fn is_valid_email(email: &[u8]) -> bool {
    todo!("{email:?}")
}
