//! Who may talk to the dashboard. It has no login, so it must not answer a web page that is
//! not its own:
//!
//! - **Host.** A page of `evil.example` whose name the attacker then points at 127.0.0.1 (DNS
//!   rebinding) is, to the browser, the same origin as `http://evil.example:4200/`: it may read
//!   every answer. Its requests still say `Host: evil.example:4200`, so the dashboard answers only
//!   the names it was started for ([`Hosts`]) and refuses the rest with 421 Misdirected Request.
//! - **Origin.** A page of another site may still send a form or a `fetch` to the dashboard
//!   (cross-site request forgery): it cannot read the answer, but a "Run now" would run. Every
//!   request that may change something (any method but GET, HEAD and OPTIONS) must come from the
//!   dashboard's own pages: its `Origin`, or without one its `Sec-Fetch-Site`, or without that its
//!   `Referer`, must be the dashboard's. A request with none of the three is not a browser's
//!   (curl, scripts) and is let through. Refused: 403. The pages' own forms are sent with
//!   `Origin: null` (their `Referrer-Policy: no-referrer` hides it), so a hidden origin is judged
//!   by `Sec-Fetch-Site` alone, and refused without it.
//! - **Headers.** Every answer forbids inline scripts and styles, framing, and MIME sniffing
//!   ([`security_headers`]).
//!
//! Browsers have sent `Origin` on every cross-origin POST since 2020 (and `Sec-Fetch-Site` on
//! every request), so the forms carry no CSRF token: it would guard only against browsers that
//! cannot run this dashboard's pages anyway.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use super::error;

/// The pages' own script and stylesheet, nothing inline, nothing from elsewhere; no framing;
/// forms post only to the dashboard.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

/// The hosts the dashboard answers to, and the origins whose pages may change something.
#[derive(Debug)]
pub struct Hosts {
    /// The port listened on.
    port: u16,
    /// `127.0.0.1`, `localhost`, `[::1]` and the `--host` address (unless it is every
    /// interface): answered with the port listened on, or with no port.
    local: Vec<String>,
    /// The `--allow-host` names: answered with any port, or only with the one given.
    allowed: Vec<AllowedHost>,
}

/// An `--allow-host` value: a name (or address) the dashboard also answers to, with or without
/// a port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowedHost {
    name: String,
    port: Option<u16>,
}

impl FromStr for AllowedHost {
    type Err = String;

    fn from_str(s: &str) -> Result<AllowedHost, String> {
        let (name, port) = authority(s).ok_or_else(|| {
            format!(
                "--allow-host {s:?} is not a host name: give a name or address, e.g. \
                 dashboard.internal or dashboard.internal:8080"
            )
        })?;
        Ok(AllowedHost { name, port })
    }
}

impl Hosts {
    /// The hosts of a dashboard listening on `bound`, started with `--host host` and these
    /// `--allow-host` names.
    pub fn new(host: IpAddr, bound: SocketAddr, allowed: Vec<AllowedHost>) -> Hosts {
        let mut local: Vec<String> = ["127.0.0.1", "localhost", "[::1]"].map(String::from).into();
        if !host.is_unspecified() {
            let name = match host {
                IpAddr::V4(v4) => v4.to_string(),
                IpAddr::V6(v6) => format!("[{v6}]"),
            };
            if !local.contains(&name) {
                local.push(name);
            }
        }
        Hosts {
            port: bound.port(),
            local,
            allowed,
        }
    }

    /// Whether a `Host` header's value names this dashboard.
    fn host(&self, value: &str) -> bool {
        let Some((name, port)) = authority(value) else {
            return false;
        };
        (self.local.contains(&name) && port.is_none_or(|p| p == self.port))
            || self
                .allowed
                .iter()
                .any(|a| a.name == name && a.port.is_none_or(|p| port == Some(p)))
    }

    /// Whether `origin` (`scheme://host[:port]`, as in an `Origin` header) is the dashboard's
    /// own: plain HTTP on the port listened on, or any port (or only the one given) of an
    /// `--allow-host` name, over HTTP or HTTPS (a proxy in front may add TLS).
    fn origin(&self, origin: &str) -> bool {
        let Some((scheme, rest)) = origin.split_once("://") else {
            return false;
        };
        let Some((name, port)) = authority(rest) else {
            return false;
        };
        let scheme = scheme.to_ascii_lowercase();
        let port = port.or(match scheme.as_str() {
            "http" => Some(80),
            "https" => Some(443),
            _ => None,
        });
        (scheme == "http" && self.local.contains(&name) && port == Some(self.port))
            || ((scheme == "http" || scheme == "https")
                && self
                    .allowed
                    .iter()
                    .any(|a| a.name == name && a.port.is_none_or(|p| port == Some(p))))
    }

    /// Why a request is refused, if it is: a host not answered (421), or a change asked by a
    /// page that is not the dashboard's (403).
    fn refusal(&self, request: &Request) -> Option<(StatusCode, String)> {
        let headers = request.headers();
        let mut hosts = headers.get_all(header::HOST).iter();
        let host = match (hosts.next(), hosts.next()) {
            (Some(host), None) => host.to_str().unwrap_or(""),
            (None, _) => {
                return Some((
                    StatusCode::MISDIRECTED_REQUEST,
                    "a request must name its host (a Host header): this dashboard answers only \
                     the names it was started for"
                        .to_owned(),
                ));
            }
            (Some(_), Some(_)) => "",
        };
        // A request line with a whole URL names its host there too.
        let named = request.uri().authority().map(|a| a.as_str());
        if !self.host(host) || named.is_some_and(|n| !self.host(n)) {
            let shown = named.unwrap_or(host);
            return Some((
                StatusCode::MISDIRECTED_REQUEST,
                format!(
                    "this dashboard does not answer to the host {shown:?}; start it with \
                     --allow-host NAME to add a name"
                ),
            ));
        }
        if matches!(
            *request.method(),
            Method::GET | Method::HEAD | Method::OPTIONS
        ) {
            return None;
        }
        self.cross_site(headers).map(|why| {
            (
                StatusCode::FORBIDDEN,
                format!("refused: {why}; changes are made only from the dashboard's own pages"),
            )
        })
    }

    /// Why a request that may change something does not come from the dashboard's own pages,
    /// if it does not.
    fn cross_site(&self, headers: &HeaderMap) -> Option<String> {
        let text = |name: HeaderName| {
            headers
                .get(&name)
                .map(|v| v.to_str().unwrap_or("").trim().to_owned())
        };
        let site = text(HeaderName::from_static("sec-fetch-site"));
        match text(header::ORIGIN).as_deref() {
            // A browser hides the origin of a page whose referrer policy is `no-referrer`, as
            // the dashboard's is, and of a sandboxed frame: its `Sec-Fetch-Site` tells them
            // apart, and without it nothing does.
            Some("null") if site.is_none() => {
                return Some("the request came from a hidden origin".to_owned());
            }
            Some("null") => {}
            Some(origin) => {
                return (!self.origin(origin)).then(|| format!("the request came from {origin:?}"));
            }
            None => {}
        }
        if let Some(site) = site {
            let ok = site.eq_ignore_ascii_case("same-origin") || site.eq_ignore_ascii_case("none");
            return (!ok).then(|| format!("the request came from another site ({site})"));
        }
        if let Some(referer) = text(header::REFERER) {
            // The origin of the page: what comes before its path, query or fragment.
            let end = referer
                .find("://")
                .map(|at| {
                    let rest = &referer[at + 3..];
                    at + 3 + rest.find(['/', '?', '#']).unwrap_or(rest.len())
                })
                .unwrap_or(referer.len());
            let origin = &referer[..end];
            return (!self.origin(origin)).then(|| format!("the request came from {origin:?}"));
        }
        None
    }
}

/// `host[:port]` as `(host, port)`: the host lower-cased, an IPv6 address in brackets as Rust
/// writes it; `None` if it is not a host name, an IPv4 address or a bracketed IPv6 address,
/// or the port is not a number.
fn authority(s: &str) -> Option<(String, Option<u16>)> {
    let port = |p: &str| -> Option<Option<u16>> {
        match p {
            "" => Some(None),
            p => p.strip_prefix(':')?.parse::<u16>().ok().map(Some),
        }
    };
    if let Some(rest) = s.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        let v6: Ipv6Addr = v6.parse().ok()?;
        return Some((format!("[{v6}]"), port(after)?));
    }
    let (name, after) = match s.find(':') {
        Some(at) => s.split_at(at),
        None => (s, ""),
    };
    let label_ok = |l: &str| {
        !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if name.len() > 253 || !name.split('.').all(label_ok) {
        return None;
    }
    Some((name.to_ascii_lowercase(), port(after)?))
}

/// Refuses, before any handler runs, what the dashboard does not answer (see the module's
/// doc): 421 for a host it does not answer to, 403 for a change asked by another site's page.
pub async fn check(State(hosts): State<Arc<Hosts>>, request: Request, next: Next) -> Response {
    match hosts.refusal(&request) {
        Some((status, message)) => error::respond(request.uri().path(), status, message),
        None => next.run(request).await,
    }
}

/// Adds to every answer: the content security policy, no MIME sniffing, no referrer sent
/// from the pages, no framing (`X-Frame-Options` for browsers before `frame-ancestors`), and
/// no use of the answers by other origins' pages.
pub async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (
            HeaderName::from_static("cross-origin-resource-policy"),
            "same-origin",
        ),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(host: &str, allowed: &[&str]) -> Hosts {
        let host: IpAddr = host.parse().unwrap();
        Hosts::new(
            host,
            SocketAddr::new(host, 4300),
            allowed.iter().map(|a| a.parse().unwrap()).collect(),
        )
    }

    #[test]
    fn the_host_must_be_a_local_name_with_the_port_or_none_or_an_allowed_name() {
        let h = hosts("127.0.0.1", &["dashboard.internal", "proxy.example:8443"]);
        for ok in [
            "127.0.0.1:4300",
            "127.0.0.1",
            "localhost:4300",
            "LocalHost",
            "[::1]:4300",
            "[0:0:0:0:0:0:0:1]",
            "dashboard.internal",
            "dashboard.internal:80",
            "Dashboard.Internal:4300",
            "proxy.example:8443",
        ] {
            assert!(h.host(ok), "{ok}");
        }
        for refused in [
            "evil.example:4300",
            "evil.example",
            "127.0.0.1:4301",
            "localhost:80",
            "[::1]:80",
            "127.0.0.2:4300",
            "localhost.:4300",
            "localhost:",
            "localhost:4300:4300",
            "user@localhost:4300",
            "dashboard.internal.evil.example",
            "proxy.example",
            "proxy.example:443",
            "",
            "::1",
            "[::1",
            "0.0.0.0:4300",
        ] {
            assert!(!h.host(refused), "{refused}");
        }
    }

    #[test]
    fn the_host_listened_on_is_answered_unless_it_is_every_interface() {
        let h = hosts("192.168.1.5", &[]);
        assert!(h.host("192.168.1.5:4300"));
        assert!(!h.host("192.168.1.5:4301"));
        assert!(h.host("localhost:4300"));
        let h = hosts("0.0.0.0", &[]);
        assert!(!h.host("0.0.0.0:4300"));
        assert!(!h.host("192.168.1.5:4300"));
        let h = hosts("::", &[]);
        assert!(!h.host("[::]:4300"));
        let h = hosts("fe80::1", &[]);
        assert!(h.host("[fe80::1]:4300"));
    }

    #[test]
    fn origins_must_be_the_dashboards_own() {
        let h = hosts("127.0.0.1", &["dashboard.internal", "proxy.example:8443"]);
        for ok in [
            "http://127.0.0.1:4300",
            "http://localhost:4300",
            "HTTP://LOCALHOST:4300",
            "http://[::1]:4300",
            "http://dashboard.internal",
            "https://dashboard.internal",
            "http://dashboard.internal:8080",
            "https://proxy.example:8443",
        ] {
            assert!(h.origin(ok), "{ok}");
        }
        for refused in [
            "http://evil.example",
            "http://evil.example:4300",
            "null",
            "",
            // Another server of this machine, on port 80 or another port.
            "http://127.0.0.1",
            "http://localhost:8080",
            "https://127.0.0.1:4300",
            "file://",
            "ftp://dashboard.internal",
            "https://proxy.example",
            "http://127.0.0.1:4300/path",
        ] {
            assert!(!h.origin(refused), "{refused}");
        }
    }

    #[test]
    fn a_change_needs_the_dashboards_origin_or_fetch_site_or_referer_or_none() {
        let h = hosts("127.0.0.1", &[]);
        let refused = |pairs: &[(&'static str, &str)]| {
            let mut headers = HeaderMap::new();
            for (name, value) in pairs {
                headers.insert(*name, value.parse().unwrap());
            }
            h.cross_site(&headers)
        };
        assert_eq!(refused(&[]), None, "curl and scripts send none");
        assert_eq!(refused(&[("origin", "http://127.0.0.1:4300")]), None);
        assert!(refused(&[("origin", "http://evil.example")]).is_some());
        // Origin wins over what follows it.
        assert!(
            refused(&[
                ("origin", "http://evil.example"),
                ("sec-fetch-site", "same-origin"),
                ("referer", "http://127.0.0.1:4300/deployments"),
            ])
            .is_some()
        );
        // A hidden origin (the pages' own, under `Referrer-Policy: no-referrer`, or a sandboxed
        // frame's): Sec-Fetch-Site decides, and without it the request is refused.
        assert_eq!(
            refused(&[("origin", "null"), ("sec-fetch-site", "same-origin")]),
            None
        );
        assert!(refused(&[("origin", "null"), ("sec-fetch-site", "cross-site")]).is_some());
        assert!(refused(&[("origin", "null")]).is_some());
        assert!(
            refused(&[
                ("origin", "null"),
                ("referer", "http://127.0.0.1:4300/deployments")
            ])
            .is_some()
        );
        assert_eq!(refused(&[("sec-fetch-site", "same-origin")]), None);
        assert_eq!(refused(&[("sec-fetch-site", "none")]), None);
        for site in ["cross-site", "same-site", "whatever"] {
            assert!(refused(&[("sec-fetch-site", site)]).is_some(), "{site}");
        }
        assert_eq!(
            refused(&[("referer", "http://127.0.0.1:4300/deployments")]),
            None
        );
        assert_eq!(refused(&[("referer", "http://localhost:4300")]), None);
        assert_eq!(refused(&[("referer", "http://localhost:4300?x#y")]), None);
        for referer in [
            "http://evil.example/",
            "http://127.0.0.1:4300.evil.example/",
            "http://127.0.0.1/",
            "not a url",
        ] {
            assert!(refused(&[("referer", referer)]).is_some(), "{referer}");
        }
    }

    #[test]
    fn allow_host_takes_a_name_or_an_address_with_or_without_a_port() {
        assert_eq!(
            "Dashboard.Internal".parse(),
            Ok(AllowedHost {
                name: "dashboard.internal".to_owned(),
                port: None
            })
        );
        assert_eq!(
            "[::1]:8080".parse(),
            Ok(AllowedHost {
                name: "[::1]".to_owned(),
                port: Some(8080)
            })
        );
        for bad in [
            "http://dashboard.internal",
            "dashboard.internal/",
            "*.internal",
            "",
            "a:b",
            "::1",
        ] {
            assert!(bad.parse::<AllowedHost>().is_err(), "{bad}");
        }
    }
}
