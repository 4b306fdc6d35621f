//! Requests and responses as Docker's daemon shapes them: the `/vX.Y/`
//! prefix, query values (moby's `BoolValue`, JSON `filters`), JSON bodies
//! ending in a newline (Go's `json.Encoder`), `{"message": ...}` errors with
//! the status the error's kind has, and the headers every answer carries.

use std::collections::BTreeMap;

use berth_engine::filters::Filters;
use berth_engine::EngineError;
use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::{header, Response, StatusCode};

use crate::{API_VERSION, MAX_API_VERSION, MIN_API_VERSION};

pub type Body = BoxBody<Bytes, std::io::Error>;

/// A request as the routes see it: the path without its version prefix,
/// split in segments (percent-decoded), and the query.
pub struct Req {
    pub method: hyper::Method,
    /// The `/vX.Y/` prefix's version, if there was one.
    pub version: Option<(u32, u32)>,
    pub segments: Vec<String>,
    pub query: Vec<(String, String)>,
}

impl Req {
    /// Parses the request line's path and query; a version prefix outside
    /// what is served is an error (Docker's words).
    pub fn parse(method: hyper::Method, path: &str, query: Option<&str>) -> Result<Req, ApiError> {
        let mut segments: Vec<String> = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(percent_decode)
            .collect();
        let version = segments.first().and_then(|s| parse_version(s));
        if let Some(v) = version {
            segments.remove(0);
            if v < MIN_API_VERSION {
                return Err(ApiError::bad_request(format!(
                    "client version {}.{} is too old. Minimum supported API version is {}.{}, please upgrade your client to a newer version",
                    v.0, v.1, MIN_API_VERSION.0, MIN_API_VERSION.1
                )));
            }
            if v > MAX_API_VERSION {
                return Err(ApiError::bad_request(format!(
                    "client version {}.{} is too new. Maximum supported API version is {}.{}",
                    v.0, v.1, MAX_API_VERSION.0, MAX_API_VERSION.1
                )));
            }
        }
        let query = query
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        Ok(Req {
            method,
            version,
            segments,
            query,
        })
    }

    /// The request is answered as API `v` or older would be (no prefix: the
    /// advertised 1.41).
    pub fn at_most(&self, v: (u32, u32)) -> bool {
        at_most(self.version, v)
    }

    /// The last value of query parameter `k`.
    pub fn q(&self, k: &str) -> Option<&str> {
        self.query
            .iter()
            .rev()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }

    /// moby's `BoolValue`: absent, empty, `0`, `no`, `false`, `none` are
    /// false; anything else is true.
    pub fn flag(&self, k: &str) -> bool {
        self.q(k).is_some_and(|v| {
            let v = v.trim().to_ascii_lowercase();
            !matches!(v.as_str(), "" | "0" | "no" | "false" | "none")
        })
    }

    /// An integer parameter; absent is `None`, malformed a 400.
    pub fn int(&self, k: &str) -> Result<Option<i64>, ApiError> {
        match self.q(k) {
            None | Some("") => Ok(None),
            Some(v) => v.trim().parse().map(Some).map_err(|_| {
                ApiError::bad_request(format!("strconv.Atoi: parsing {v:?}: invalid syntax"))
            }),
        }
    }

    /// The `filters` parameter: `{"key": {"value": true}}` or the older
    /// `{"key": ["value"]}`.
    pub fn filters(&self) -> Result<Filters, ApiError> {
        let mut f = Filters::default();
        let Some(raw) = self.q("filters").filter(|s| !s.is_empty()) else {
            return Ok(f);
        };
        let v: serde_json::Value = serde_json::from_str(raw)
            .map_err(|e| ApiError::bad_request(format!("invalid filter: {e}")))?;
        let serde_json::Value::Object(m) = v else {
            return Err(ApiError::bad_request("invalid filter: not an object"));
        };
        for (k, vals) in m {
            match vals {
                serde_json::Value::Object(set) => {
                    for (val, on) in set {
                        if on.as_bool() == Some(true) {
                            f.add(k.clone(), val);
                        }
                    }
                }
                serde_json::Value::Array(list) => {
                    for val in list {
                        if let Some(s) = val.as_str() {
                            f.add(k.clone(), s);
                        }
                    }
                }
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "invalid filter: values of {k:?} are neither a list nor a set"
                    )))
                }
            }
        }
        Ok(f)
    }
}

/// Whether a request whose prefix said `version` (none: the advertised
/// 1.41) is answered as API `v` or older would be.
pub(crate) fn at_most(version: Option<(u32, u32)>, v: (u32, u32)) -> bool {
    version.unwrap_or((1, 41)) <= v
}

/// `v1.41` → `(1, 41)`.
pub(crate) fn parse_version(s: &str) -> Option<(u32, u32)> {
    let (major, minor) = s.strip_prefix('v')?.split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && b[i + 1].is_ascii_hexdigit()
            && b[i + 2].is_ascii_hexdigit()
        {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("0");
            out.push(u8::from_str_radix(hex, 16).unwrap_or(b'%'));
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An error as Docker's daemon answers it.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> ApiError {
        let status =
            StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        ApiError::new(status, e.to_string())
    }
}

/// The headers every answer carries, as dockerd's.
pub fn base(status: StatusCode) -> hyper::http::response::Builder {
    use header::{HeaderName, HeaderValue};
    // Static names and values: nothing parsed or copied per answer.
    Response::builder()
        .status(status)
        .header(
            HeaderName::from_static("api-version"),
            HeaderValue::from_static(API_VERSION),
        )
        .header(
            HeaderName::from_static("docker-experimental"),
            HeaderValue::from_static("false"),
        )
        .header(
            HeaderName::from_static("ostype"),
            HeaderValue::from_static("linux"),
        )
        .header(
            header::SERVER,
            HeaderValue::from_static(concat!("berth/", env!("CARGO_PKG_VERSION"), " (linux)")),
        )
}

pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

pub fn empty() -> Body {
    full(Bytes::new())
}

/// A JSON answer, newline-terminated like Go's encoder writes it.
pub fn json(status: StatusCode, v: &impl serde::Serialize) -> Response<Body> {
    json_bytes(status, json_body(v))
}

/// `v` as an answer's body: JSON and a newline, as dockerd writes it.
pub fn json_body(v: &impl serde::Serialize) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(v).unwrap_or_else(|_| b"null".to_vec());
    bytes.push(b'\n');
    bytes
}

/// A JSON body already serialized.
pub fn json_bytes(status: StatusCode, bytes: impl Into<Bytes>) -> Response<Body> {
    base(status)
        .header(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/json"),
        )
        .body(full(bytes))
        .unwrap_or_else(|_| Response::new(empty()))
}

pub fn error(e: &ApiError) -> Response<Body> {
    let mut m = BTreeMap::new();
    m.insert("message", e.message.as_str());
    json(e.status, &m)
}

/// A body written as it comes (wait results, logs, events, progress): the
/// response's head goes out at once, each chunk when it is sent.
pub struct Stream(tokio::sync::mpsc::Receiver<Bytes>);

impl http_body::Body for Stream {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|c| c.map(|b| Ok(http_body::Frame::data(b))))
    }
}

/// A streamed body and its sender; the body ends when the sender is
/// dropped, and `send` fails once the client is gone.
pub fn stream() -> (tokio::sync::mpsc::Sender<Bytes>, Body) {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    (tx, Stream(rx).boxed())
}

/// A status with no body (204, 304).
pub fn no_content(status: StatusCode) -> Response<Body> {
    base(status)
        .body(empty())
        .unwrap_or_else(|_| Response::new(empty()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn req(path: &str, q: Option<&str>) -> Result<Req, ApiError> {
        Req::parse(hyper::Method::GET, path, q)
    }

    #[test]
    fn version_prefixes() {
        let r = req("/v1.41/containers/json", None).unwrap();
        assert_eq!(r.segments, ["containers", "json"]);
        let r = req("/containers/json", None).unwrap();
        assert_eq!(r.segments, ["containers", "json"]);
        let e = req("/v1.23/info", None).err().unwrap();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(e.message, "client version 1.23 is too old. Minimum supported API version is 1.24, please upgrade your client to a newer version");
        let e = req("/v1.50/info", None).err().unwrap();
        assert_eq!(
            e.message,
            "client version 1.50 is too new. Maximum supported API version is 1.47"
        );
        // Not a version: a path segment like any other.
        let r = req("/volumes/v1.x", None).unwrap();
        assert_eq!(r.segments, ["volumes", "v1.x"]);
    }

    #[test]
    fn segments_are_percent_decoded() {
        let r = req("/images/localhost%3A5000%2Fbb/json", None).unwrap();
        assert_eq!(r.segments, ["images", "localhost:5000/bb", "json"]);
        let r = req("/images/a%2/json", None).unwrap();
        assert_eq!(r.segments, ["images", "a%2", "json"]);
        let r = req("/images/a%zz%/json", None).unwrap();
        assert_eq!(r.segments, ["images", "a%zz%", "json"]);
    }

    #[test]
    fn query_values() {
        let r = req("/x", Some("all=1&size=false&none=&t=10&bad=x&filters=%7B%22label%22%3A%7B%22a%3Db%22%3Atrue%7D%2C%22name%22%3A%5B%22c1%22%5D%7D")).unwrap();
        assert!(r.flag("all"));
        assert!(!r.flag("size"));
        assert!(!r.flag("none"));
        assert!(!r.flag("missing"));
        assert_eq!(r.int("t").unwrap(), Some(10));
        assert!(r.int("bad").is_err());
        let f = r.filters().unwrap();
        assert_eq!(f.get("label"), ["a=b"]);
        assert_eq!(f.get("name"), ["c1"]);
        let r = req("/x", Some("filters=%5B1%5D")).unwrap();
        assert_eq!(r.filters().err().unwrap().status, StatusCode::BAD_REQUEST);
    }
}
