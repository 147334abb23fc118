//! Scalar wrappers used by the file types: they expand `${NAME}` from the environment and parse
//! during deserialization, so that every error carries the YAML line and column.

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Replaces every `${NAME}` with the environment variable NAME; a missing variable is an error.
/// `$$` stands for a literal `$`.
pub fn expand_env(raw: &str) -> Result<String, String> {
    if !raw.contains('$') {
        return Ok(raw.to_owned());
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("$$") {
            out.push('$');
            rest = after;
        } else if let Some(body) = tail.strip_prefix("${") {
            let end = body
                .find('}')
                .ok_or_else(|| format!("unterminated `${{` in {raw:?}"))?;
            let name = &body[..end];
            let valid =
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !valid {
                return Err(format!("invalid environment variable name {name:?}"));
            }
            let value = std::env::var(name)
                .map_err(|_| format!("environment variable {name} is not set"))?;
            out.push_str(&value);
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Any YAML scalar (string, number, bool) as its text, env-expanded.
fn scalar_text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = String;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a scalar value")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
            expand_env(v).map_err(E::custom)
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
            self.visit_str(&v)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
            Ok(v.to_string())
        }
    }
    d.deserialize_any(V)
}

/// A string value with `${NAME}` expanded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Text(pub String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        scalar_text(d).map(Text)
    }
}

/// A number or boolean that may also be written as a string (e.g. `"${THREADS}"`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scalar<T>(pub T);

impl<'de, T: FromStr> Deserialize<'de> for Scalar<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = scalar_text(d)?;
        text.trim().parse().map(Scalar).map_err(|_| {
            de::Error::custom(format!(
                "expected {}, got {text:?}",
                std::any::type_name::<T>()
                    .rsplit("::")
                    .next()
                    .unwrap_or("a value")
            ))
        })
    }
}

/// A duration written like `250ms`, `3s`, `2m`, `1h 30m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = scalar_text(d)?;
        humantime::parse_duration(text.trim())
            .map(Dur)
            .map_err(|e| {
                de::Error::custom(format!(
                    "invalid duration {text:?} ({e}); write it like 250ms, 3s or 2m"
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_known_and_rejects_missing_variables() {
        let path = std::env::var("PATH").unwrap_or_default();
        assert_eq!(expand_env("a${PATH}b").unwrap(), format!("a{path}b"));
        assert_eq!(expand_env("cost $$5 $x").unwrap(), "cost $5 $x");
        let err = expand_env("${FNGATE_SURELY_UNSET_VAR}").unwrap_err();
        assert!(err.contains("FNGATE_SURELY_UNSET_VAR is not set"), "{err}");
        assert!(expand_env("${oops").is_err());
        assert!(expand_env("${a-b}").is_err());
    }
}
