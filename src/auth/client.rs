//! Typed password sign-in calls (icloud-auth.md section 2): idmsa `signin/init` (E1),
//! `signin/complete` (E2), `repair/complete` (E3), and the setup service's `accountLogin` (E5)
//! and `validate` (E6), each answer classified into an outcome or an [`AuthError`] (section 6).
//! The second-factor calls are in `second_factor`, the transport in `transport`.
//!
//! This module knows single exchanges; the order of exchanges is `flow`'s job.

use reqwest::Method;
use serde_json::{Value, json};

use super::account::AccountInfo;
use super::error::AuthError;
use super::session_store::SessionData;
use super::srp::{Proofs, Protocol};
use super::transport::{
    AppleClient, Call, LOCKED_ACCOUNT, Origin, Reply, b64, decode_base64, first_service_error,
    has_body_error, locked_detail,
};

/// Answer of E1.
#[derive(Debug, Clone)]
pub(crate) struct InitAnswer {
    pub salt: Vec<u8>,
    pub b: Vec<u8>,
    pub iterations: u64,
    pub protocol: Protocol,
    pub c: Value,
}

/// Outcome of E2 with a correct password.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Completion {
    /// Signed in; accountLogin tells whether a second factor is still needed.
    Done,
    /// HSA2 second factor required (409).
    SecondFactor,
    /// 412: finish with repair/complete (accounts without 2FA).
    NeedsRepair,
}

/// Outcome of E5/E6.
#[derive(Debug, Clone)]
pub(crate) enum SetupOutcome {
    Accepted(AccountInfo),
    /// The saved session or token is not (or no longer) accepted.
    Refused {
        status: u16,
        detail: String,
    },
}

impl AppleClient {
    /// E1: send A, get the server's SRP values.
    pub async fn signin_init(
        &self,
        session: &mut SessionData,
        account_name: &str,
        a_pub: &[u8],
    ) -> Result<InitAnswer, AuthError> {
        const NAME: &str = "signin/init";
        let body =
            json!({"a": b64(a_pub), "accountName": account_name, "protocols": ["s2k", "s2k_fo"]});
        let call = Call {
            name: NAME,
            method: Method::POST,
            url: self.endpoints.auth_url("/signin/init"),
            headers: self.auth_headers(
                session,
                Origin::AuthRoot,
                "application/json, text/javascript",
            ),
            body: Some(body.to_string().into_bytes()),
            retry_status: true,
            retry_network: true,
            json_answer: true,
        };
        let reply = self.send(session, call).await?;
        if !reply.status.is_success() {
            return Err(self.failure(NAME, &reply, account_name));
        }
        if let Some(e) = Self::hidden_rejection(NAME, &reply) {
            return Err(e);
        }
        let protocol_error = |detail: &str| AuthError::Protocol {
            endpoint: NAME,
            detail: detail.to_string(),
        };
        let doc = reply
            .json()
            .ok_or_else(|| protocol_error("the answer is not JSON"))?;
        let field = |k: &str| doc.get(k).and_then(Value::as_str);
        let salt = field("salt")
            .and_then(decode_base64)
            .ok_or_else(|| protocol_error("missing or invalid salt"))?;
        let b = field("b")
            .and_then(decode_base64)
            .ok_or_else(|| protocol_error("missing or invalid b"))?;
        let iterations = doc
            .get("iteration")
            .and_then(Value::as_u64)
            .ok_or_else(|| protocol_error("missing or invalid iteration"))?;
        let protocol = field("protocol")
            .and_then(Protocol::parse)
            .ok_or_else(|| protocol_error("missing or unknown protocol"))?;
        let c = doc
            .get("c")
            .cloned()
            .ok_or_else(|| protocol_error("missing c"))?;
        Ok(InitAnswer {
            salt,
            b,
            iterations,
            protocol,
            c,
        })
    }

    /// E2: send the proofs (and saved trust token).
    pub async fn signin_complete(
        &self,
        session: &mut SessionData,
        account_name: &str,
        c: &Value,
        proofs: &Proofs,
    ) -> Result<Completion, AuthError> {
        const NAME: &str = "signin/complete";
        let trust_tokens: Vec<&str> = session
            .trust_token
            .as_deref()
            .filter(|t| !t.is_empty())
            .into_iter()
            .collect();
        let body = json!({
            "accountName": account_name,
            "c": c,
            "m1": b64(&proofs.m1),
            "m2": b64(&proofs.m2),
            "rememberMe": true,
            "trustTokens": trust_tokens,
        });
        let call = Call {
            name: NAME,
            method: Method::POST,
            url: self
                .endpoints
                .auth_url("/signin/complete?isRememberMeEnabled=true"),
            headers: self.auth_headers(
                session,
                Origin::AuthRoot,
                "application/json, text/javascript",
            ),
            body: Some(body.to_string().into_bytes()),
            retry_status: true,
            retry_network: true,
            json_answer: false,
        };
        let reply = self.send(session, call).await?;
        let status = reply.status.as_u16();
        if status == 401 {
            if let Some(detail) = locked_detail(&reply) {
                return Err(AuthError::AccountLocked {
                    username: account_name.to_string(),
                    detail,
                });
            }
            return Err(AuthError::WrongPassword {
                username: account_name.to_string(),
            });
        }
        if status == 400 && locked_detail(&reply).is_none() {
            return Err(AuthError::Protocol {
                endpoint: NAME,
                detail: format!(
                    "Apple called the request malformed ({}); this is a bug in icloudpd-rs or a protocol change",
                    reply.describe()
                ),
            });
        }
        let completion = match status {
            409 => {
                if let Some(keys) = security_keys(&reply) {
                    return Err(AuthError::SecurityKeys { key_names: keys });
                }
                Completion::SecondFactor
            }
            412 => Completion::NeedsRepair,
            _ if reply.status.is_success() => Completion::Done,
            _ => return Err(self.failure(NAME, &reply, account_name)),
        };
        if let Some(e) = Self::hidden_rejection(NAME, &reply) {
            return Err(e);
        }
        Ok(completion)
    }

    /// E3: finish a 412 sign-in.
    pub async fn repair_complete(&self, session: &mut SessionData) -> Result<(), AuthError> {
        const NAME: &str = "repair/complete";
        let call = Call {
            name: NAME,
            method: Method::POST,
            url: self.endpoints.auth_url("/repair/complete"),
            headers: self.auth_headers(session, Origin::Home, "application/json, text/javascript"),
            body: Some(b"{}".to_vec()),
            retry_status: true,
            retry_network: true,
            json_answer: false,
        };
        self.send_expecting_success(session, call).await?;
        Ok(())
    }

    /// E5: exchange the session token (and trust token) for a web session.
    pub async fn account_login(
        &self,
        session: &mut SessionData,
    ) -> Result<SetupOutcome, AuthError> {
        let body = json!({
            "accountCountryCode": session.account_country.clone().unwrap_or_default(),
            "dsWebAuthToken": session.session_token.clone().unwrap_or_default(),
            "extended_login": true,
            "trustToken": session.trust_token.clone().unwrap_or_default(),
        });
        self.setup_call(
            session,
            "accountLogin",
            "/accountLogin",
            body.to_string().into_bytes(),
        )
        .await
    }

    /// E6: check the saved cookies.
    pub async fn validate(&self, session: &mut SessionData) -> Result<SetupOutcome, AuthError> {
        self.setup_call(session, "validate", "/validate", b"null".to_vec())
            .await
    }

    async fn setup_call(
        &self,
        session: &mut SessionData,
        name: &'static str,
        path: &str,
        body: Vec<u8>,
    ) -> Result<SetupOutcome, AuthError> {
        let call = Call {
            name,
            method: Method::POST,
            url: self.endpoints.setup_url(path),
            headers: self.setup_headers(),
            body: Some(body),
            retry_status: false,
            retry_network: false,
            json_answer: true,
        };
        let reply = self.send(session, call).await?;
        let status = reply.status.as_u16();
        if reply.status.is_server_error() || status == 429 {
            // Falling through to SRP would only add load to a struggling service (kei's rule).
            return Err(self.failure(name, &reply, &session.username.clone()));
        }
        if !reply.status.is_success() {
            return Ok(SetupOutcome::Refused {
                status,
                detail: reply.describe(),
            });
        }
        if let Some(AuthError::Rejected { detail, status, .. }) =
            Self::hidden_rejection(name, &reply)
        {
            return Ok(SetupOutcome::Refused { status, detail });
        }
        let Some(doc) = reply.json() else {
            return Err(AuthError::Protocol {
                endpoint: name,
                detail: "the account document is not JSON".into(),
            });
        };
        if has_body_error(&doc) {
            let (code, message) = first_service_error(&doc).unwrap_or_default();
            if code == LOCKED_ACCOUNT {
                return Err(AuthError::AccountLocked {
                    username: session.username.clone(),
                    detail: format!(" ({message})"),
                });
            }
            return Ok(SetupOutcome::Refused {
                status,
                detail: format!("{message} (code {code})"),
            });
        }
        let info = AccountInfo::from_body(&doc).map_err(|detail| AuthError::Protocol {
            endpoint: name,
            detail,
        })?;
        Ok(SetupOutcome::Accepted(info))
    }
}

/// Key names when a 409 announces a FIDO/WebAuthn challenge (`fsaChallenge` or `keyNames`).
fn security_keys(reply: &Reply) -> Option<Vec<String>> {
    let doc = reply.json()?;
    let names: Vec<String> = doc
        .get("keyNames")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let challenge = doc.get("fsaChallenge").is_some_and(Value::is_object);
    (challenge || !names.is_empty()).then_some(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::transport::tests::reply;

    #[test]
    fn fido_detection() {
        assert_eq!(
            security_keys(&reply(409, &[], r#"{"authType":"hsa2"}"#)),
            None
        );
        assert_eq!(security_keys(&reply(409, &[], "not json")), None);
        assert_eq!(
            security_keys(&reply(409, &[], r#"{"keyNames":["YubiKey 5C"]}"#)),
            Some(vec!["YubiKey 5C".to_string()])
        );
        assert_eq!(
            security_keys(&reply(
                409,
                &[],
                r#"{"fsaChallenge":{"challenge":"x","keyHandles":[],"rpId":"apple.com"}}"#
            )),
            Some(vec![])
        );
    }
}
