//! Bearer tokens for the HTTP API (`[api] tokens_file`).
//!
//! The file holds one `ROLE TOKEN` a line (`#` starts a comment): `submit` tokens may submit,
//! read, list, follow and cancel judgings and list problems; `admin` tokens may also upload
//! problems. `GET /health` and `GET /metrics` are open unless `[api] public` says otherwise.
//! Tokens are compared in constant time (every token, every byte), so response times do not
//! tell how much of a guess was right. Without a tokens file every request is allowed, as
//! before.

use std::path::{Path, PathBuf};

use axum::http::{Method, StatusCode};

use super::config::ApiSettings;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Submit,
    Admin,
}

#[derive(Debug, thiserror::Error)]
pub enum TokensError {
    #[error("cannot read the tokens file `{path}' ([api] tokens_file)")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{path}' line {line}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

/// Shortest token taken: a guessable token is no protection.
pub const MIN_TOKEN_CHARS: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokens {
    tokens: Vec<(Vec<u8>, Role)>,
}

impl Tokens {
    pub fn load(path: &Path) -> Result<Tokens, TokensError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Tokens::parse(&text, path),
            Err(source) => Err(TokensError::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Parse a tokens file (pure; `path` for messages).
    pub fn parse(text: &str, path: &Path) -> Result<Tokens, TokensError> {
        let mut tokens: Vec<(Vec<u8>, Role)> = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let invalid = |message: String| TokensError::Invalid {
                path: path.to_path_buf(),
                line: index + 1,
                message,
            };
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            let [role, token] = words.as_slice() else {
                return Err(invalid(
                    "expected `ROLE TOKEN' (ROLE: submit or admin; TOKEN without spaces)".into(),
                ));
            };
            let role = match *role {
                "submit" => Role::Submit,
                "admin" => Role::Admin,
                other => return Err(invalid(format!("unknown role `{other}' (submit or admin)"))),
            };
            if token.chars().count() < MIN_TOKEN_CHARS {
                return Err(invalid(format!(
                    "the token is shorter than {MIN_TOKEN_CHARS} characters (make one with \
                     `openssl rand -hex 32')"
                )));
            }
            if tokens.iter().any(|(known, _)| known == token.as_bytes()) {
                return Err(invalid("the token is given twice".into()));
            }
            tokens.push((token.as_bytes().to_vec(), role));
        }
        if tokens.is_empty() {
            return Err(TokensError::Invalid {
                path: path.to_path_buf(),
                line: 0,
                message: "no tokens: every request would be refused (remove [api] tokens_file \
                          to run without authentication)"
                    .into(),
            });
        }
        Ok(Tokens { tokens })
    }

    /// The role of `given`, comparing it with every token in constant time.
    fn role_of(&self, given: &[u8]) -> Option<Role> {
        let mut found = None;
        for (token, role) in &self.tokens {
            if constant_time_eq(token, given) {
                found = Some(*role);
            }
        }
        found
    }
}

/// `a == b`, taking the same time wherever they differ (only the lengths may show).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut difference = u8::from(a.len() != b.len());
    for (x, y) in a.iter().zip(b.iter()) {
        difference |= x ^ y;
    }
    std::hint::black_box(difference) == 0
}

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    Nothing,
    AnyToken,
    Admin,
}

/// Who may call what.
#[derive(Debug, Clone)]
pub struct Auth {
    tokens: Option<Tokens>,
    public_health: bool,
    public_metrics: bool,
}

/// A refused request: 401 (no or unknown token) or 403 (a token without the role).
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    pub status: StatusCode,
    pub message: String,
}

impl Auth {
    pub fn new(settings: &ApiSettings, tokens: Option<Tokens>) -> Auth {
        Auth {
            tokens,
            public_health: settings.public_health,
            public_metrics: settings.public_metrics,
        }
    }

    /// Tokens are required.
    pub fn is_on(&self) -> bool {
        self.tokens.is_some()
    }

    fn need(&self, method: &Method, path: &str) -> Need {
        match path {
            "/health" if self.public_health => Need::Nothing,
            "/metrics" if self.public_metrics => Need::Nothing,
            _ if *method == Method::PUT && path.starts_with("/problems/") => Need::Admin,
            _ => Need::AnyToken,
        }
    }

    /// Whether a request to `path` with this `Authorization` header may go on (pure).
    pub fn check(
        &self,
        method: &Method,
        path: &str,
        authorization: Option<&[u8]>,
    ) -> Result<(), Refusal> {
        let Some(tokens) = &self.tokens else {
            return Ok(());
        };
        let need = self.need(method, path);
        if need == Need::Nothing {
            return Ok(());
        }
        let unauthorized = |message: &str| Refusal {
            status: StatusCode::UNAUTHORIZED,
            message: message.to_owned(),
        };
        let Some(header) = authorization else {
            return Err(unauthorized(
                "no token: send `Authorization: Bearer TOKEN' with a token of this judge's \
                 [api] tokens_file",
            ));
        };
        let Some(token) = header.strip_prefix(b"Bearer ") else {
            return Err(unauthorized(
                "the Authorization header is not `Bearer TOKEN'",
            ));
        };
        match (tokens.role_of(token.trim_ascii()), need) {
            (None, _) => Err(unauthorized(
                "the bearer token is not one of this judge's tokens ([api] tokens_file)",
            )),
            (Some(Role::Submit), Need::Admin) => Err(Refusal {
                status: StatusCode::FORBIDDEN,
                message: format!(
                    "{method} {path} needs an admin token; this token's role is submit"
                ),
            }),
            (Some(_), _) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUBMIT: &str = "submit-token-0123456789";
    const ADMIN: &str = "admin-token-0123456789";

    fn auth(public_health: bool, public_metrics: bool) -> Auth {
        let tokens = Tokens::parse(
            &format!("# judges\nsubmit {SUBMIT}\n\nadmin {ADMIN}  # the organisers\n"),
            Path::new("tokens"),
        )
        .unwrap();
        let settings = ApiSettings {
            tokens_file: Some("tokens".into()),
            public_health,
            public_metrics,
        };
        Auth::new(&settings, Some(tokens))
    }

    #[test]
    fn each_route_needs_its_role() {
        let bearer = |t: &str| format!("Bearer {t}");
        let cases: &[(bool, Method, &str, Option<String>, u16)] = &[
            (true, Method::GET, "/health", None, 200),
            (true, Method::GET, "/metrics", None, 200),
            (false, Method::GET, "/metrics", None, 401),
            (false, Method::GET, "/metrics", Some(bearer(SUBMIT)), 200),
            (true, Method::POST, "/judgings", None, 401),
            (true, Method::POST, "/judgings", Some(bearer(SUBMIT)), 200),
            (true, Method::POST, "/judgings", Some(bearer(ADMIN)), 200),
            (true, Method::GET, "/judgings/1", Some(bearer("x")), 401),
            (
                true,
                Method::GET,
                "/judgings/1",
                Some(bearer(&SUBMIT[1..])),
                401,
            ),
            (
                true,
                Method::GET,
                "/judgings/1",
                Some(format!("{SUBMIT}x")),
                401,
            ),
            (true, Method::GET, "/judgings/1", Some(SUBMIT.into()), 401),
            (true, Method::GET, "/problems", Some(bearer(SUBMIT)), 200),
            (true, Method::PUT, "/problems/p", Some(bearer(SUBMIT)), 403),
            (true, Method::PUT, "/problems/p", Some(bearer(ADMIN)), 200),
            (true, Method::PUT, "/problems/p", None, 401),
        ];
        for (public, method, path, header, expected) in cases {
            let result =
                auth(*public, *public).check(method, path, header.as_deref().map(str::as_bytes));
            let status = result.as_ref().map_or_else(|r| r.status.as_u16(), |()| 200);
            assert_eq!(status, *expected, "{method} {path} {header:?}: {result:?}");
        }
        // Without tokens everything is allowed.
        let open = Auth::new(
            &ApiSettings {
                tokens_file: None,
                public_health: false,
                public_metrics: false,
            },
            None,
        );
        assert_eq!(open.check(&Method::PUT, "/problems/p", None), Ok(()));
    }

    #[test]
    fn constant_time_eq_is_equality() {
        for (a, b) in [("", ""), ("abc", "abc")] {
            assert!(constant_time_eq(a.as_bytes(), b.as_bytes()));
        }
        for (a, b) in [("abc", "abd"), ("abc", "ab"), ("", "a"), ("a", "")] {
            assert!(!constant_time_eq(a.as_bytes(), b.as_bytes()), "{a} {b}");
        }
        // Lengths that differ by a multiple of 256 are not equal either.
        let long = "a".repeat(256);
        assert!(!constant_time_eq(long.as_bytes(), b""));
    }

    #[test]
    fn bad_tokens_files_name_the_line() {
        let cases = [
            ("submit\n", "line 1", "ROLE TOKEN"),
            (
                "# c\nreader 0123456789abcdef0\n",
                "line 2",
                "unknown role `reader'",
            ),
            ("admin short\n", "line 1", "shorter than 16"),
            (
                "admin 0123456789abcdef\nsubmit 0123456789abcdef\n",
                "line 2",
                "twice",
            ),
            ("# nothing\n", "no tokens", "remove [api] tokens_file"),
        ];
        for (text, at, needle) in cases {
            let message = Tokens::parse(text, Path::new("/etc/judged/tokens"))
                .unwrap_err()
                .to_string();
            for n in [at, needle, "/etc/judged/tokens"] {
                assert!(message.contains(n), "{text:?}: {message}");
            }
        }
    }
}
