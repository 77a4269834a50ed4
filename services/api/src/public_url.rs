//! The API's public base URL: where clients reach it (scheme, host, port and
//! an optional path prefix of a reverse proxy). Every absolute link the API
//! writes starts with it: SensorThings `@iot.selfLink`, `@iot.nextLink` and
//! navigation links, the DCAT catalog's IRIs and download URLs. It is
//! configured (`--public-base-url`), never read from a request's `Host` or
//! `X-Forwarded-*` headers, which any client sets as it likes: links built
//! from them would point wherever the client wanted (to `evil.example`) in
//! documents that harvesters and caches pass on to others.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

/// An absolute `http` or `https` URL without query, fragment or user
/// information, kept without a trailing slash so that paths append as
/// `{base}/sta/v1.1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicBaseUrl(Arc<str>);

impl PublicBaseUrl {
    /// Parses a configured base URL, e.g. `https://daten.stadt.example/hoheit`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let url = reqwest::Url::parse(text.trim())
            .map_err(|e| format!("`{text}` is not an absolute URL ({e}), e.g. https://daten.stadt.example"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("`{text}`: the public base URL must be http or https, not {}", url.scheme()));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(format!("`{text}`: the public base URL needs a host"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(format!("`{text}`: the public base URL takes no query or fragment"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!("`{text}`: the public base URL takes no user name or password"));
        }
        Ok(Self(url.as_str().trim_end_matches('/').into()))
    }

    /// `http://` and the address the API listens on: the default, right for
    /// the local set-up, where clients reach the API directly.
    pub fn for_listen(addr: SocketAddr) -> Self {
        Self(format!("http://{addr}").into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PublicBaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_base_is_an_http_url_without_query_kept_without_a_trailing_slash() {
        assert_eq!(
            PublicBaseUrl::parse("https://daten.stadt.example/").unwrap().as_str(),
            "https://daten.stadt.example"
        );
        assert_eq!(
            PublicBaseUrl::parse("https://daten.stadt.example:8443/hoheit/").unwrap().as_str(),
            "https://daten.stadt.example:8443/hoheit"
        );
        assert_eq!(PublicBaseUrl::for_listen("127.0.0.1:8080".parse().unwrap()).as_str(), "http://127.0.0.1:8080");
        assert_eq!(PublicBaseUrl::for_listen("[::1]:8080".parse().unwrap()).as_str(), "http://[::1]:8080");
        for bad in [
            "daten.stadt.example",
            "ftp://daten.stadt.example",
            "https://daten.stadt.example/?x=1",
            "https://daten.stadt.example/#top",
            "https://user:secret@daten.stadt.example",
            "file:///etc/passwd",
            "",
        ] {
            assert!(PublicBaseUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
