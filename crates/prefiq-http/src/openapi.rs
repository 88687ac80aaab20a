//! OpenAPI 3.1 and JSON Schema generated from entity schemas.
