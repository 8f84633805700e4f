//! The second-factor calls (icloud-auth.md section 2.7, 2.8): trusted-device code push (E7) and
//! submission (E8), trusted phone numbers (E9, HTML `boot_args` or JSON), SMS code request (E10)
//! and submission (E11), and trust (E12).

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::error::AuthError;
use super::session_store::SessionData;
use super::transport::{AppleClient, Call, Origin, Reply, has_body_error, locked_detail};

/// Apple's error code for a wrong verification code.
const WRONG_CODE: &str = "-21669";

/// A trusted phone number for SMS codes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedPhone {
    pub id: u64,
    /// As Apple shows it, e.g. `+1 (•••) •••-••81`.
    pub number: String,
}

impl AppleClient {
    /// E7: ask Apple to show a code on the trusted devices.
    pub async fn request_device_code(&self, session: &mut SessionData) -> Result<(), AuthError> {
        const NAME: &str = "verify/trusteddevice/securitycode (request)";
        let mut headers = self.auth_headers(session, Origin::Home, "application/json");
        headers.remove(reqwest::header::CONTENT_TYPE);
        let call = Call {
            name: NAME,
            method: Method::PUT,
            url: self
                .endpoints
                .auth_url("/verify/trusteddevice/securitycode"),
            headers,
            body: None,
            retry_status: true,
            retry_network: false,
            json_answer: false,
        };
        self.send_expecting_success(session, call).await?;
        Ok(())
    }

    /// E8: submit a trusted-device code; `Ok(false)` when Apple says it is wrong.
    pub async fn submit_device_code(
        &self,
        session: &mut SessionData,
        code: &str,
    ) -> Result<bool, AuthError> {
        const NAME: &str = "verify/trusteddevice/securitycode";
        let call = Call {
            name: NAME,
            method: Method::POST,
            url: self
                .endpoints
                .auth_url("/verify/trusteddevice/securitycode"),
            headers: self.auth_headers(session, Origin::Home, "application/json"),
            body: Some(
                json!({"securityCode": {"code": code}})
                    .to_string()
                    .into_bytes(),
            ),
            retry_status: true,
            retry_network: false,
            json_answer: false,
        };
        let reply = self.send(session, call).await?;
        self.code_verdict(NAME, &reply, session)
    }

    fn code_verdict(
        &self,
        name: &'static str,
        reply: &Reply,
        session: &SessionData,
    ) -> Result<bool, AuthError> {
        if reply.status.is_success() {
            return Ok(!reply.json().is_some_and(|doc| has_body_error(&doc)));
        }
        if is_wrong_code(reply) {
            return Ok(false);
        }
        Err(self.failure(name, reply, &session.username))
    }

    /// E9: the trusted phone numbers (from the HTML boot_args page, or JSON).
    pub async fn trusted_phones(
        &self,
        session: &mut SessionData,
    ) -> Result<Vec<TrustedPhone>, AuthError> {
        const NAME: &str = "auth (trusted phone numbers)";
        let mut headers = self.auth_headers(session, Origin::Home, "text/html, application/json");
        headers.remove(reqwest::header::CONTENT_TYPE);
        let call = Call {
            name: NAME,
            method: Method::GET,
            url: self.endpoints.auth_url(""),
            headers,
            body: None,
            retry_status: true,
            retry_network: true,
            json_answer: false,
        };
        let reply = self.send_expecting_success(session, call).await?;
        Ok(parse_trusted_phones(&String::from_utf8_lossy(&reply.body)))
    }

    /// E10: send an SMS code to a trusted phone number.
    pub async fn request_sms_code(
        &self,
        session: &mut SessionData,
        phone_id: u64,
    ) -> Result<(), AuthError> {
        const NAME: &str = "verify/phone";
        let call = Call {
            name: NAME,
            method: Method::PUT,
            url: self.endpoints.auth_url("/verify/phone"),
            headers: self.auth_headers(session, Origin::Home, "application/json"),
            body: Some(
                json!({"phoneNumber": {"id": phone_id}, "mode": "sms"})
                    .to_string()
                    .into_bytes(),
            ),
            retry_status: true,
            retry_network: false,
            json_answer: false,
        };
        self.send_expecting_success(session, call).await?;
        Ok(())
    }

    /// E11: submit an SMS code; `Ok(false)` when Apple says it is wrong.
    pub async fn submit_sms_code(
        &self,
        session: &mut SessionData,
        phone_id: u64,
        code: &str,
    ) -> Result<bool, AuthError> {
        const NAME: &str = "verify/phone/securitycode";
        let body =
            json!({"phoneNumber": {"id": phone_id}, "securityCode": {"code": code}, "mode": "sms"});
        let call = Call {
            name: NAME,
            method: Method::POST,
            url: self.endpoints.auth_url("/verify/phone/securitycode"),
            headers: self.auth_headers(session, Origin::Home, "application/json"),
            body: Some(body.to_string().into_bytes()),
            retry_status: true,
            retry_network: false,
            json_answer: false,
        };
        let reply = self.send(session, call).await?;
        self.code_verdict(NAME, &reply, session)
    }

    /// E12: make this client trusted; the trust token arrives in a captured header.
    pub async fn trust(&self, session: &mut SessionData) -> Result<(), AuthError> {
        const NAME: &str = "2sv/trust";
        let previous = session.trust_token.clone();
        let call = Call {
            name: NAME,
            method: Method::GET,
            url: self.endpoints.auth_url("/2sv/trust"),
            headers: self.auth_headers(session, Origin::Home, "application/json, text/javascript"),
            body: None,
            retry_status: true,
            retry_network: true,
            json_answer: false,
        };
        let reply = self.send_expecting_success(session, call).await?;
        if reply
            .header("x-apple-twosv-trust-token")
            .is_some_and(|t| !t.is_empty())
        {
            session.trust_established_at = Some(chrono::Utc::now());
        } else {
            tracing::warn!("Apple answered the trust request without a trust token");
            session.trust_token = previous;
        }
        Ok(())
    }
}

fn is_wrong_code(reply: &Reply) -> bool {
    reply.header("x-apple-i-ercd") == Some(WRONG_CODE)
        || reply
            .service_error()
            .is_some_and(|(code, _)| code == WRONG_CODE)
        || (reply.status == StatusCode::BAD_REQUEST && locked_detail(reply).is_none())
}

/// Trusted phone numbers from the E9 page: the `boot_args` JSON script of the HTML page, or a
/// JSON document with the same content.
pub fn parse_trusted_phones(body: &str) -> Vec<TrustedPhone> {
    let doc = serde_json::from_str::<Value>(body.trim())
        .ok()
        .or_else(|| boot_args(body).and_then(|s| serde_json::from_str(s).ok()));
    let Some(doc) = doc else {
        return Vec::new();
    };
    let list = [
        "/direct/twoSV/phoneNumberVerification/trustedPhoneNumbers",
        "/trustedPhoneNumbers",
    ]
    .iter()
    .find_map(|p| doc.pointer(p).and_then(Value::as_array));
    list.into_iter()
        .flatten()
        .filter_map(|entry| {
            let id = entry.get("id").and_then(Value::as_u64)?;
            let number = entry
                .get("numberWithDialCode")
                .or_else(|| entry.get("obfuscatedNumber"))
                .and_then(Value::as_str)?
                .to_string();
            Some(TrustedPhone { id, number })
        })
        .collect()
}

/// The content of `<script type="application/json" class="boot_args">`.
fn boot_args(html: &str) -> Option<&str> {
    let mut rest = html;
    while let Some(start) = rest.find("<script") {
        let after = &rest[start..];
        let tag_end = after.find('>')?;
        let tag = &after[..tag_end];
        let content = &after[tag_end + 1..];
        let close = content.find("</script>")?;
        if tag.contains(r#"type="application/json""#) && tag.contains(r#"class="boot_args""#) {
            return Some(&content[..close]);
        }
        rest = &content[close..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::transport::tests::reply;

    #[test]
    fn boot_args_phone_list() {
        let html = r#"<html><script type="application/json" class="pre">{"x":1}</script>
            <script type="application/json" class="boot_args">{"direct":{"twoSV":{"phoneNumberVerification":
            {"trustedPhoneNumbers":[{"numberWithDialCode":"+1 (•••) •••-••81","obfuscatedNumber":"(•••) •••-••81","id":1},
            {"obfuscatedNumber":"x"},{"id":3,"obfuscatedNumber":"(•••) •••-••03"}]}}}}</script></html>"#;
        assert_eq!(
            parse_trusted_phones(html),
            vec![
                TrustedPhone {
                    id: 1,
                    number: "+1 (•••) •••-••81".into()
                },
                TrustedPhone {
                    id: 3,
                    number: "(•••) •••-••03".into()
                }
            ]
        );
        assert!(parse_trusted_phones("<html>nothing</html>").is_empty());
        assert_eq!(
            parse_trusted_phones(
                r#"{"trustedPhoneNumbers":[{"id":2,"numberWithDialCode":"+49"}]}"#
            )
            .len(),
            1
        );
    }

    #[test]
    fn wrong_code_and_locked_detection() {
        let wrong = reply(
            400,
            &[("x-apple-i-ercd", "-21669")],
            r#"{"service_errors":[{"code":"-21669","title":"Incorrect Verification Code","message":"Incorrect verification code."}],"hasError":true}"#,
        );
        assert!(is_wrong_code(&wrong));
        assert_eq!(locked_detail(&wrong), None);
        let locked = reply(
            403,
            &[],
            r#"{"serviceErrors":[{"code":"-20209","message":"This Apple Account has been locked."}]}"#,
        );
        assert_eq!(
            locked_detail(&locked).as_deref(),
            Some(" (This Apple Account has been locked.)")
        );
        assert!(!is_wrong_code(&locked));
    }
}
