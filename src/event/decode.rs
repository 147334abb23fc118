//! Strict URL decoding for path parameters and the query string: a `%` not followed by two hex
//! digits, or bytes that are not UTF-8 after decoding, are errors (the gateway answers 400).

use percent_encoding::percent_decode;
use std::borrow::Cow;
use std::collections::HashMap;

/// Percent-decodes one component; with `plus_is_space` (form encoding) `+` becomes a space.
pub fn decode_component(raw: &str, plus_is_space: bool) -> Result<Cow<'_, str>, String> {
    let bytes = raw.as_bytes();
    let mut needs_work = false;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3);
                if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                    return Err(format!("bad percent-encoding in {raw:?}"));
                }
                needs_work = true;
            }
            b'+' if plus_is_space => needs_work = true,
            _ => {}
        }
    }
    if !needs_work {
        return Ok(Cow::Borrowed(raw));
    }
    let spaced: Cow<[u8]> = if plus_is_space && raw.contains('+') {
        Cow::Owned(raw.replace('+', " ").into_bytes())
    } else {
        Cow::Borrowed(bytes)
    };
    let decoded: Vec<u8> = percent_decode(&spaced).collect();
    String::from_utf8(decoded)
        .map(Cow::Owned)
        .map_err(|_| format!("{raw:?} is not UTF-8 after percent-decoding"))
}

/// Query parameters in order of first appearance; a repeated key collects every value.
pub type QueryParams<'a> = Vec<(Cow<'a, str>, Vec<Cow<'a, str>>)>;

/// Parses a raw query string with form rules: `a=1&a=2&flag` → a: [1, 2], flag: [""].
pub fn parse_query(query: &str) -> Result<QueryParams<'_>, String> {
    let mut params: QueryParams = Vec::new();
    // Linear search is fastest for the usual handful of keys; an index keeps a hostile query
    // with thousands of keys from going quadratic.
    let mut index: Option<HashMap<Cow<str>, usize>> = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let key = decode_component(k, true)?;
        let value = decode_component(v, true)?;
        let found = match &index {
            Some(map) => map.get(&key).copied(),
            None => params.iter().position(|(have, _)| *have == key),
        };
        match found {
            Some(i) => params[i].1.push(value),
            None => {
                if let Some(map) = &mut index {
                    map.insert(key.clone(), params.len());
                }
                params.push((key, vec![value]));
                if index.is_none() && params.len() > 16 {
                    index = Some(
                        params
                            .iter()
                            .enumerate()
                            .map(|(i, (k, _))| (k.clone(), i))
                            .collect(),
                    );
                }
            }
        }
    }
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components() {
        assert_eq!(decode_component("a%2Fb", false).unwrap(), "a/b");
        assert_eq!(decode_component("a+b", false).unwrap(), "a+b");
        assert_eq!(decode_component("a+b%20c", true).unwrap(), "a b c");
        assert_eq!(decode_component("%E4%B8%AD", false).unwrap(), "中");
        assert!(decode_component("%zz", false).is_err());
        assert!(decode_component("abc%4", false).is_err());
        assert!(decode_component("%ff", false)
            .unwrap_err()
            .contains("UTF-8"));
    }

    #[test]
    fn query_keeps_order_and_collects_repeats_even_past_the_index_threshold() {
        let q: String = (0..40).map(|i| format!("k{}=v{i}&", i % 20)).collect();
        let p = parse_query(&q).unwrap();
        assert_eq!(p.len(), 20);
        assert_eq!(p[3].0, "k3");
        assert_eq!(p[3].1, vec!["v3", "v23"]);
        let p = parse_query("flag&&=x&a=1=2").unwrap();
        assert_eq!(p[0], ("flag".into(), vec!["".into()]));
        assert_eq!(p[1], ("".into(), vec!["x".into()]));
        assert_eq!(p[2], ("a".into(), vec!["1=2".into()]));
    }
}
