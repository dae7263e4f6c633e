//! Sign-in sessions and CSRF tokens (placeholder: the session layer fills this in).

/// The CSRF token of the request's session: every state-changing form carries it in a hidden
/// `csrf` field, and the session layer refuses a POST whose field does not match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Csrf(pub String);
