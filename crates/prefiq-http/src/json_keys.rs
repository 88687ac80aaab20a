//! Request bodies that repeat a key in a JSON object are refused (400) before any handler
//! runs. A parser keeps the last of the repeated members (serde_json does), another the
//! first, so a body with `{"amount": 1, "amount": 1000}` means different things to a
//! proxy that checked it and to the handler that acts on it; RFC 8259 calls such a body
//! unpredictable, so it is not accepted at all.
//!
//! Module handlers read bodies as bytes and parse them as JSON whatever the declared
//! content type (`curl -d` sends `application/x-www-form-urlencoded`), so the check looks
//! at every body that starts like a JSON object or array, whatever its content type, except
//! binary and multipart ones. A body that is not JSON is passed on untouched: its handler
//! says what is wrong with it.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;

use axum::body::{Body, HttpBody as _};
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::de::{DeserializeSeed, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::json;

use crate::HttpState;
use crate::problem::Problem;

/// The JSON pointer of the first member of `bytes` whose key its object already has;
/// `None` when no object repeats a key, and when `bytes` is not JSON.
pub fn repeated_key(bytes: &[u8]) -> Option<String> {
    let found = RefCell::new(None);
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let seed = Walk {
        parent: None,
        token: Token::Root,
        found: &found,
    };
    // A syntax error, or the marker error below: either way `found` tells.
    let _ = seed.deserialize(&mut deserializer);
    found.into_inner()
}

/// Where a value sits in its parent.
#[derive(Clone, Copy)]
enum Token<'k> {
    Root,
    Index(usize),
    Key(&'k str),
}

/// Visits one JSON value. Its pointer is only written out when a repeated key is found:
/// every body of every request passes through here, and almost none repeats a key.
struct Walk<'f, 'p> {
    parent: Option<&'p Walk<'f, 'p>>,
    token: Token<'p>,
    found: &'f RefCell<Option<String>>,
}

impl<'f> Walk<'f, '_> {
    fn child<'c>(&'c self, token: Token<'c>) -> Walk<'f, 'c> {
        Walk {
            parent: Some(self),
            token,
            found: self.found,
        }
    }

    /// This value's JSON pointer (RFC 6901: `~` is written `~0` and `/` is written `~1`
    /// in a reference token).
    fn pointer(&self) -> String {
        let mut tokens = Vec::new();
        let mut at = Some(self);
        while let Some(walk) = at {
            tokens.push(walk.token);
            at = walk.parent;
        }
        let mut pointer = String::new();
        for token in tokens.iter().rev() {
            match token {
                Token::Root => {}
                Token::Index(index) => {
                    pointer.push('/');
                    pointer.push_str(&index.to_string());
                }
                Token::Key(key) => {
                    pointer.push('/');
                    pointer.push_str(&key.replace('~', "~0").replace('/', "~1"));
                }
            }
        }
        pointer
    }
}

impl<'de> DeserializeSeed<'de> for Walk<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

/// A key as the document has it: borrowed from the body unless it holds escapes.
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_borrowed_str<E>(self, key: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(key))
    }

    fn visit_str<E>(self, key: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(key.to_owned()))
    }
}

/// Objects with at most this many keys are checked by comparing keys; larger ones by a
/// hash set (a body of many members would otherwise cost quadratic time).
const SMALL_OBJECT: usize = 16;

impl<'de> Visitor<'de> for Walk<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0usize;
        while seq
            .next_element_seed(self.child(Token::Index(index)))?
            .is_some()
        {
            index += 1;
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut keys: Vec<Cow<'de, str>> = Vec::new();
        let mut many: HashSet<Cow<'de, str>> = HashSet::new();
        while let Some(key) = map.next_key_seed(Key)? {
            let repeated = if many.is_empty() && keys.len() < SMALL_OBJECT {
                keys.contains(&key)
            } else {
                if many.is_empty() {
                    many.extend(keys.drain(..));
                }
                many.contains(&key)
            };
            if repeated {
                *self.found.borrow_mut() = Some(self.child(Token::Key(&key)).pointer());
                return Err(A::Error::custom("repeated key"));
            }
            map.next_value_seed(self.child(Token::Key(&key)))?;
            if many.is_empty() {
                keys.push(key);
            } else {
                many.insert(key);
            }
        }
        Ok(())
    }
}

/// Whether a body of this content type is never JSON, so it need not be read here.
fn never_json(request: &Request) -> bool {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            let media = v.split(';').next().unwrap_or_default().trim();
            media.eq_ignore_ascii_case("application/octet-stream")
                || media
                    .get(..10)
                    .is_some_and(|p| p.eq_ignore_ascii_case("multipart/"))
        })
}

/// Refuses a request whose JSON body repeats a key in an object (400, naming the repeated
/// member by its JSON pointer); other requests go on with their body as it was.
pub async fn refuse_repeated_keys(
    State(state): State<HttpState>,
    request: Request,
    next: Next,
) -> Response {
    // A body known to be empty (a GET, a DELETE) has nothing to check: it is not read and
    // boxed again.
    if never_json(&request) || request.body().size_hint().exact() == Some(0) {
        return next.run(request).await;
    }
    let limit = usize::try_from(state.config.server.body_limit_bytes).unwrap_or(usize::MAX);
    let (parts, body) = request.into_parts();
    // The body limit layer has refused a declared length over the limit; one without a
    // declared length is cut off here at the same limit.
    let Ok(bytes) = axum::body::to_bytes(body, limit).await else {
        return Problem::new(StatusCode::PAYLOAD_TOO_LARGE)
            .with_detail(format!("the request body is larger than {limit} bytes"))
            .into_response();
    };
    let looks_like_json = bytes
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{' || *b == b'[');
    if looks_like_json && let Some(pointer) = repeated_key(&bytes) {
        let message = format!("the body gives the member `{pointer}` twice; give each key once");
        let mut problem = Problem::new(StatusCode::BAD_REQUEST).with_detail(message.clone());
        problem.errors = Some(json!([{
            "pointer": pointer,
            "code": "duplicate_key",
            "message": message,
        }]));
        return problem.into_response();
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::repeated_key;

    /// A JSON value written as text, whose objects may repeat keys; with whether one does.
    fn document() -> impl Strategy<Value = (String, bool)> {
        let leaf = prop_oneof![
            Just(("1".to_owned(), false)),
            Just(("\"a\"".to_owned(), false)),
            Just(("null".to_owned(), false)),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(|items| {
                    let repeated = items.iter().any(|(_, r)| *r);
                    let text: Vec<String> = items.into_iter().map(|(t, _)| t).collect();
                    (format!("[{}]", text.join(",")), repeated)
                }),
                proptest::collection::vec(("[abc]", inner), 0..4).prop_map(|members| {
                    let mut keys = std::collections::HashSet::new();
                    let mut repeated = false;
                    let mut text = Vec::new();
                    for (key, (value, inner_repeated)) in members {
                        repeated |= !keys.insert(key.clone()) || inner_repeated;
                        text.push(format!("\"{key}\":{value}"));
                    }
                    (format!("{{{}}}", text.join(",")), repeated)
                }),
            ]
        })
    }

    proptest! {
        /// A repeated key is found exactly when some object of the document repeats one.
        #[test]
        fn a_repeated_key_is_found_exactly_when_there_is_one((text, repeated) in document()) {
            prop_assert_eq!(repeated_key(text.as_bytes()).is_some(), repeated, "{}", text);
        }
    }

    fn check(body: &str, expected: Option<&str>) {
        assert_eq!(repeated_key(body.as_bytes()).as_deref(), expected, "{body}");
    }

    #[test]
    fn repeated_keys_are_found_where_they_are() {
        check(r#"{"a": 1, "b": 2}"#, None);
        check(r#"{"a": 1, "a": 2}"#, Some("/a"));
        check(r#"{"a": 1, "b": {"c": 1, "c": 1}}"#, Some("/b/c"));
        check(
            r#"[{"x": 1}, {"x": 1, "y": [1, {"z": 0, "z": 0}]}]"#,
            Some("/1/y/1/z"),
        );
        // The same key in sibling objects is no repetition.
        check(r#"[{"x": 1}, {"x": 2}]"#, None);
        check(r#"{"items": [{"qty": 1}, {"qty": 2}], "qty": 3}"#, None);
        // Keys compare after unescaping: `\u0061` is `a`.
        check(r#"{"a": 1, "\u0061": 2}"#, Some("/a"));
        check(r#"{"a/b": 1, "a~b": 2, "a/b": 3}"#, Some("/a~1b"));
        // Not JSON, or not an object: nothing to say here.
        check(r#"{"a": 1, "b""#, None);
        check("email=a&email=b", None);
        check("", None);
        check("[1, 1, 1]", None);
    }
}

/// Reads a request body that must be one JSON object into `T`. serde reads a struct from
/// an array of its fields in order too, so `[null, null]` would be taken for an object
/// with two fields left out; a body of any other shape than an object is refused instead.
pub fn json_object<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, serde_json::Error> {
    match serde_json::from_slice::<serde_json::Value>(body)? {
        value @ serde_json::Value::Object(_) => serde_json::from_value(value),
        other => Err(serde_json::Error::custom(format!(
            "the body is a JSON object, not {}",
            match other {
                serde_json::Value::Array(_) => "an array",
                serde_json::Value::String(_) => "a string",
                serde_json::Value::Number(_) => "a number",
                serde_json::Value::Bool(_) => "a boolean",
                _ => "null",
            }
        ))),
    }
}

#[cfg(test)]
mod object_tests {
    use super::json_object;

    #[derive(Debug, serde::Deserialize)]
    struct Pair {
        #[allow(dead_code)]
        a: Option<i64>,
        #[allow(dead_code)]
        b: Option<i64>,
    }

    fn check(body: &str, expected: Result<(), &str>) {
        let outcome = json_object::<Pair>(body.as_bytes())
            .map(drop)
            .map_err(|e| e.to_string());
        assert_eq!(outcome, expected.map_err(str::to_owned), "{body}");
    }

    #[test]
    fn only_an_object_is_a_body_of_fields() {
        check(r#"{"a": 1}"#, Ok(()));
        check("{}", Ok(()));
        check(
            "[null, null]",
            Err("the body is a JSON object, not an array"),
        );
        check("[1, 2]", Err("the body is a JSON object, not an array"));
        check("null", Err("the body is a JSON object, not null"));
        check(r#""a""#, Err("the body is a JSON object, not a string"));
        check("7", Err("the body is a JSON object, not a number"));
    }
}
