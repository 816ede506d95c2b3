//! Where the cloud API credentials come from, without any key on disk: the instance's RAM role
//! through the metadata service (`ram/security-credentials/ROLE`: short-lived STS keys and a
//! security token, refreshed before they expire), or, for `check` run by hand, the standard
//! `ALIBABA_CLOUD_ACCESS_KEY_ID` / `_SECRET` / `_SECURITY_TOKEN` environment variables. The
//! secret and the token never leave memory: `Debug` redacts them, they are not serialisable,
//! and no error message quotes a credentials document.

use std::time::Duration;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::sources::metadata::{MetadataClient, MetadataError};

/// Refresh this long before the keys expire (the service rotates them well before).
pub const REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// A value that must never be printed.
#[derive(Clone, PartialEq, Eq)]
struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where a set of credentials came from, for the evidence (never the keys themselves).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    /// The instance RAM role, by name.
    RamRole(String),
    /// The ALIBABA_CLOUD_* environment variables.
    Environment,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// Not secret: it names the key (and appears in the signed request).
    pub access_key_id: String,
    secret: Secret,
    security_token: Option<Secret>,
    /// When STS keys stop working; None for long-term keys.
    pub expiration: Option<OffsetDateTime>,
    pub source: CredentialSource,
}

/// Why no credentials could be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoCredentials {
    /// No RAM role attached (the check is skipped, with how to attach one).
    NoRole,
    /// The metadata service failed or answered something unusable (the check is unknown).
    Failed(String),
}

impl Credentials {
    pub fn new(id: &str, secret: &str, token: Option<&str>) -> Credentials {
        Credentials {
            access_key_id: id.to_string(),
            secret: Secret(secret.to_string()),
            security_token: token.map(|t| Secret(t.to_string())),
            expiration: None,
            source: CredentialSource::Environment,
        }
    }

    pub fn secret(&self) -> &str {
        &self.secret.0
    }

    pub fn security_token(&self) -> Option<&str> {
        self.security_token.as_ref().map(|t| t.0.as_str())
    }

    /// Every secret string, for tests and redaction of anything that might echo them.
    pub fn secrets(&self) -> Vec<&str> {
        let mut v = vec![self.secret()];
        v.extend(self.security_token());
        v
    }

    /// Whether these keys must be fetched again before use at `now`.
    pub fn needs_refresh(&self, now: OffsetDateTime) -> bool {
        self.expiration
            .is_some_and(|e| e - time::Duration::seconds(REFRESH_MARGIN.as_secs() as i64) <= now)
    }

    /// From `ALIBABA_CLOUD_ACCESS_KEY_ID` and `_SECRET` (and `_SECURITY_TOKEN` for STS keys);
    /// None unless both the id and the secret are set.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Option<Credentials> {
        let id = var("ALIBABA_CLOUD_ACCESS_KEY_ID").filter(|v| !v.trim().is_empty())?;
        let secret = var("ALIBABA_CLOUD_ACCESS_KEY_SECRET").filter(|v| !v.trim().is_empty())?;
        let token = var("ALIBABA_CLOUD_SECURITY_TOKEN").filter(|v| !v.trim().is_empty());
        Some(Credentials::new(
            id.trim(),
            secret.trim(),
            token.as_deref().map(str::trim),
        ))
    }

    /// The instance RAM role's keys, through the metadata service (hardened mode when it
    /// answers).
    pub fn from_ram_role(client: &mut MetadataClient) -> Result<Credentials, NoCredentials> {
        let failed = |e: MetadataError| NoCredentials::Failed(e.to_string());
        client.acquire_token().map_err(failed)?;
        let list = client
            .get("ram/security-credentials/")
            .map_err(failed)?
            .ok_or(NoCredentials::NoRole)?;
        let role = parse_role_list(&list).ok_or(NoCredentials::NoRole)?;
        let path = format!("ram/security-credentials/{role}");
        let doc = client
            .get(&path)
            .map_err(failed)?
            .ok_or_else(|| NoCredentials::Failed(format!("metadata service: /latest/meta-data/{path} is not published (404) though the role is listed")))?;
        parse_role_document(&role, &doc).map_err(|why| {
            NoCredentials::Failed(format!("metadata service: /latest/meta-data/{path}: {why}"))
        })
    }
}

/// `ram/security-credentials/`: the attached role's name (one per instance); None if empty
/// or not a plausible role name.
pub fn parse_role_list(text: &str) -> Option<String> {
    let role = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    let role = role.trim_end_matches('/');
    (!role.is_empty()
        && role.len() <= 64
        && role
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')))
    .then(|| role.to_string())
}

/// The role's credentials document. The error names what is wrong, never a value from it.
pub fn parse_role_document(role: &str, text: &str) -> Result<Credentials, String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        format!(
            "expected a JSON credentials document, got unparsable text ({} bytes; {})",
            text.len(),
            json_error_kind(&e)
        )
    })?;
    let field = |name: &str| -> Result<String, String> {
        v.get(name)
            .and_then(|x| x.as_str())
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .ok_or_else(|| format!("the credentials document has no {name}"))
    };
    if let Some(code) = v.get("Code").and_then(|c| c.as_str()) {
        if code != "Success" {
            return Err(format!(
                "the credentials document says Code = {code:?}, not \"Success\""
            ));
        }
    }
    let expiration = field("Expiration")?;
    let expiration = OffsetDateTime::parse(&expiration, &Rfc3339)
        .map_err(|_| "the credentials document's Expiration is not an RFC 3339 time".to_string())?;
    Ok(Credentials {
        access_key_id: field("AccessKeyId")?,
        secret: Secret(field("AccessKeySecret")?),
        security_token: Some(Secret(field("SecurityToken")?)),
        expiration: Some(expiration),
        source: CredentialSource::RamRole(role.to_string()),
    })
}

/// What serde_json's error category is called, without the input its message quotes.
fn json_error_kind(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Io => "I/O error",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "unexpected data",
        serde_json::error::Category::Eof => "truncated",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"{"AccessKeyId":"STS.made-up-id","AccessKeySecret":"made-up-secret-0001","Expiration":"2026-12-04T18:00:00Z","SecurityToken":"made-up-token-0001","LastUpdated":"2026-12-04T12:00:00Z","Code":"Success"}"#;

    #[test]
    fn the_role_document_is_parsed_and_never_printed() {
        let c = parse_role_document("EcsDiagRole", DOC).unwrap();
        assert_eq!(c.access_key_id, "STS.made-up-id");
        assert_eq!(c.secret(), "made-up-secret-0001");
        assert_eq!(c.security_token(), Some("made-up-token-0001"));
        assert_eq!(c.source, CredentialSource::RamRole("EcsDiagRole".into()));
        let shown = format!("{c:?}");
        for s in c.secrets() {
            assert!(!shown.contains(s), "{shown}");
        }
        // Refreshed five minutes before expiry.
        let exp = c.expiration.unwrap();
        assert!(!c.needs_refresh(exp - time::Duration::minutes(6)));
        assert!(c.needs_refresh(exp - time::Duration::minutes(4)));
    }

    #[test]
    fn bad_documents_name_the_problem_not_the_values() {
        for (doc, want) in [
            ("not json made-up-secret-0001", "unparsable"),
            (
                r#"{"AccessKeyId":"a","Expiration":"2026-12-04T18:00:00Z","SecurityToken":"t","AccessKeySecret":""}"#,
                "no AccessKeySecret",
            ),
            (
                r#"{"Code":"Failed","AccessKeySecret":"made-up-secret-0001"}"#,
                "Code = \"Failed\"",
            ),
            (
                r#"{"AccessKeyId":"a","AccessKeySecret":"made-up-secret-0001","SecurityToken":"t","Expiration":"tomorrow"}"#,
                "Expiration",
            ),
        ] {
            let e = parse_role_document("r", doc).unwrap_err();
            assert!(e.contains(want), "{e}");
            assert!(!e.contains("made-up-secret"), "{e}");
        }
    }

    #[test]
    fn role_list_and_environment() {
        assert_eq!(
            parse_role_list("EcsDiagRole\n").as_deref(),
            Some("EcsDiagRole")
        );
        assert_eq!(
            parse_role_list("EcsDiagRole/").as_deref(),
            Some("EcsDiagRole")
        );
        assert_eq!(parse_role_list("\n"), None);
        assert_eq!(parse_role_list("../../etc"), None);
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(Credentials::from_env(env(&[])), None);
        assert_eq!(
            Credentials::from_env(env(&[("ALIBABA_CLOUD_ACCESS_KEY_ID", "id")])),
            None,
            "no secret: no credentials"
        );
        let c = Credentials::from_env(env(&[
            ("ALIBABA_CLOUD_ACCESS_KEY_ID", "id"),
            ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "made-up"),
            ("ALIBABA_CLOUD_SECURITY_TOKEN", "tok"),
        ]))
        .unwrap();
        assert_eq!((c.secret(), c.security_token()), ("made-up", Some("tok")));
        assert!(
            !c.needs_refresh(OffsetDateTime::now_utc()),
            "long-term keys never expire here"
        );
    }
}
