//! The components every module's description may refer to: problem responses by status
//! and the tenant header.
//!
//! A module's YAML says `$ref: '#/components/responses/NotFound'` instead of repeating the
//! problem body, so every error answer of the API has the one `Problem` schema.

use serde_json::{Map, Value, json};

use crate::PROBLEM_JSON;

/// The shared problem responses: (component name, status, description).
pub(crate) const PROBLEM_RESPONSES: &[(&str, u16, &str)] = &[
    (
        "BadRequest",
        400,
        "Bad request: the body or a parameter is malformed, a query parameter is unknown, or the tenant header disagrees with the host.",
    ),
    (
        "Unauthorized",
        401,
        "Unauthorized: the bearer token is missing, malformed, forged or expired.",
    ),
    (
        "Forbidden",
        403,
        "Forbidden: the caller may not do this (`action` names what was refused).",
    ),
    ("NotFound", 404, "Not found."),
    (
        "Conflict",
        409,
        "Conflict: the current state, a unique value or a reference does not allow this.",
    ),
    (
        "PreconditionFailed",
        412,
        "Precondition failed: the record changed since the version given in `If-Match`.",
    ),
    ("PayloadTooLarge", 413, "The request body is too large."),
    (
        "Unprocessable",
        422,
        "Validation failed; `errors` points at each offending value.",
    ),
    (
        "PreconditionRequired",
        428,
        "Precondition required: the change would leave the tenant without what it needs (such as its last administrator, or a policy that locks everyone out).",
    ),
    (
        "TooManyRequests",
        429,
        "Too many requests: the caller's rate limit for this minute is spent (see `Retry-After`).",
    ),
];

/// The description of a problem answer with `status`.
pub(crate) fn problem_description(status: u16) -> &'static str {
    PROBLEM_RESPONSES
        .iter()
        .find(|(_, s, _)| *s == status)
        .map_or("Error.", |(_, _, description)| *description)
}

/// The `components.responses` of the document.
pub(crate) fn responses() -> Map<String, Value> {
    PROBLEM_RESPONSES
        .iter()
        .map(|(name, _, description)| {
            (
                (*name).to_owned(),
                json!({
                    "description": description,
                    "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
                }),
            )
        })
        .collect()
}

/// The `components.parameters` of the document.
pub(crate) fn parameters() -> Map<String, Value> {
    let mut map = Map::new();
    map.insert("Tenant".into(), super::tenant_parameter());
    map
}
