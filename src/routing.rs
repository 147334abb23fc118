//! Route lookup: one matchit router over every route path (static beats `{param}` beats
//! `{*tail}`), with the methods of each path merged so that a miss can say 404 or 405 + Allow.

use crate::config::Route;
use http::Method;

/// A route the table could not take, by its index in the route list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub route: usize,
    pub message: String,
}

#[derive(Debug, Clone, Default)]
struct PathEntry {
    pattern: String,
    /// Route that takes every method not listed in `by_method`.
    any: Option<usize>,
    by_method: Vec<(Method, usize)>,
    /// `Allow` header value for 405 answers.
    allow: String,
}

#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    router: matchit::Router<usize>,
    entries: Vec<PathEntry>,
}

pub enum Lookup<'t, 'p> {
    Found {
        route: usize,
        params: matchit::Params<'t, 'p>,
    },
    NotFound,
    MethodNotAllowed {
        allow: &'t str,
        /// A route on the path (its API's CORS answers preflights).
        route: usize,
    },
}

impl RouteTable {
    pub fn build(routes: &[Route]) -> Result<RouteTable, Vec<Conflict>> {
        let mut table = RouteTable::default();
        let mut by_pattern = std::collections::HashMap::new();
        let mut conflicts = Vec::new();
        for (index, route) in routes.iter().enumerate() {
            let entry = match by_pattern.get(&route.path) {
                Some(&e) => e,
                None => {
                    let e = table.entries.len();
                    if let Err(err) = table.router.insert(route.path.clone(), e) {
                        conflicts.push(Conflict {
                            route: index,
                            message: format!(
                                "route {:?} conflicts with another route: {err}",
                                route.path
                            ),
                        });
                        continue;
                    }
                    table.entries.push(PathEntry {
                        pattern: route.path.clone(),
                        ..PathEntry::default()
                    });
                    by_pattern.insert(route.path.clone(), e);
                    e
                }
            };
            let entry = &mut table.entries[entry];
            let clash = match &route.methods {
                None => entry.any.replace(index).map(|_| "every method".to_owned()),
                Some(methods) => methods.iter().find_map(|m| {
                    if entry.by_method.iter().any(|(have, _)| have == m) {
                        return Some(m.to_string());
                    }
                    entry.by_method.push((m.clone(), index));
                    None
                }),
            };
            if let Some(what) = clash {
                conflicts.push(Conflict {
                    route: index,
                    message: format!("route {:?} is declared twice for {what}", entry.pattern),
                });
            }
        }
        for entry in &mut table.entries {
            entry.allow = allow_header(&entry.by_method);
        }
        if conflicts.is_empty() {
            Ok(table)
        } else {
            Err(conflicts)
        }
    }

    pub fn lookup<'t, 'p>(&'t self, method: &Method, path: &'p str) -> Lookup<'t, 'p> {
        let Ok(m) = self.router.at(path) else {
            return Lookup::NotFound;
        };
        let entry = &self.entries[*m.value];
        let find = |wanted: &Method| {
            entry
                .by_method
                .iter()
                .find(|(have, _)| have == wanted)
                .map(|(_, r)| *r)
        };
        // HEAD is served by a GET route, as nginx and Envoy do.
        let route = find(method)
            .or_else(|| {
                (method == Method::HEAD)
                    .then(|| find(&Method::GET))
                    .flatten()
            })
            .or(entry.any);
        match route {
            Some(route) => Lookup::Found {
                route,
                params: m.params,
            },
            // A path entry exists only with at least one route.
            None => Lookup::MethodNotAllowed {
                allow: &entry.allow,
                route: entry.by_method.first().map_or(0, |(_, r)| *r),
            },
        }
    }
}

fn allow_header(methods: &[(Method, usize)]) -> String {
    let mut names: Vec<&str> = methods.iter().map(|(m, _)| m.as_str()).collect();
    if names.contains(&"GET") && !names.contains(&"HEAD") {
        names.push("HEAD");
    }
    names.sort_unstable();
    names.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Target, Upstream};
    use std::time::Duration;

    fn route(path: &str, methods: Option<&[&str]>) -> Route {
        Route {
            api: 0,
            path: path.into(),
            methods: methods.map(|ms| ms.iter().map(|m| m.parse().unwrap()).collect()),
            target: Target::Upstream(Upstream {
                url: "http://127.0.0.1:1".into(),
                addr: "127.0.0.1:1".parse().unwrap(),
            }),
            binary: false,
            max_body_bytes: 10,
            timeout: Duration::from_secs(1),
            auth: crate::config::Auth::None,
            rate_limit: None,
        }
    }

    fn found(t: &RouteTable, m: &str, p: &str) -> Option<(usize, Vec<(String, String)>)> {
        match t.lookup(&m.parse().unwrap(), p) {
            Lookup::Found { route, params } => Some((
                route,
                params.iter().map(|(k, v)| (k.into(), v.into())).collect(),
            )),
            _ => None,
        }
    }

    #[test]
    fn static_beats_param_beats_tail() {
        let t = RouteTable::build(&[
            route("/users/{id}", None),
            route("/users/me", None),
            route("/users/{id}/{*rest}", None),
        ])
        .unwrap();
        assert_eq!(found(&t, "GET", "/users/me").unwrap().0, 1);
        assert_eq!(
            found(&t, "GET", "/users/42").unwrap(),
            (0, vec![("id".into(), "42".into())])
        );
        assert_eq!(
            found(&t, "GET", "/users/42/a/b").unwrap().1[1],
            ("rest".into(), "a/b".into())
        );
    }

    #[test]
    fn method_lists_give_405_with_allow_and_head_follows_get() {
        let t = RouteTable::build(&[
            route("/items/{id}", Some(&["GET"])),
            route("/items/{id}", Some(&["DELETE", "PUT"])),
        ])
        .unwrap();
        assert_eq!(found(&t, "HEAD", "/items/1").unwrap().0, 0);
        assert_eq!(found(&t, "PUT", "/items/1").unwrap().0, 1);
        match t.lookup(&Method::POST, "/items/1") {
            Lookup::MethodNotAllowed { allow, .. } => assert_eq!(allow, "DELETE, GET, HEAD, PUT"),
            _ => panic!("expected 405"),
        }
        assert!(matches!(t.lookup(&Method::GET, "/nope"), Lookup::NotFound));
    }

    #[test]
    fn conflicts_name_the_route() {
        let err = RouteTable::build(&[
            route("/users/{id}", Some(&["GET"])),
            route("/users/{name}", Some(&["GET"])),
            route("/users/{id}", Some(&["POST", "GET"])),
        ])
        .unwrap_err();
        assert_eq!(err.len(), 2);
        assert_eq!(err[0].route, 1);
        assert!(err[0].message.contains("conflicts"), "{}", err[0].message);
        assert_eq!(err[1].route, 2);
        assert!(
            err[1].message.contains("twice for GET"),
            "{}",
            err[1].message
        );
    }
}
