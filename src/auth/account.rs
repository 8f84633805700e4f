//! The part of the `accountLogin` / `validate` answer (icloud-auth.md section 5) that later
//! modules and the sign-in decisions need, and the flags read from it.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What we keep of the account document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct AccountInfo {
    /// `dsInfo.dsid`, sent as the `dsid` query parameter on CloudKit calls.
    pub dsid: String,
    /// `webservices.ckdatabasews.url`, kept verbatim (including any `:443`).
    pub ckdatabasews_url: Option<String>,
    /// `dsInfo.hsaVersion`: 0 none, 1 legacy two-step, 2 two-factor.
    pub hsa_version: i64,
    pub hsa_challenge_required: bool,
    pub hsa_trusted_browser: bool,
    /// `dsInfo.hasICloudQualifyingDevice`.
    pub has_qualifying_device: bool,
    /// Advanced Data Protection (`iCDPEnabled`, top level or in `dsInfo`).
    pub adp_enabled: bool,
    /// `dsInfo.isWebAccessAllowed`, when present.
    pub web_access_allowed: Option<bool>,
    /// `dsInfo.locked`.
    pub locked: bool,
    /// `domainToUse`: the account belongs to the other domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain_to_use: Option<String>,
}

impl AccountInfo {
    /// Parse an account document; `Err` names what is missing.
    pub fn from_body(body: &Value) -> Result<Self, String> {
        if !body.is_object() {
            return Err("the account document is not a JSON object".into());
        }
        let domain_to_use = body
            .get("domainToUse")
            .and_then(Value::as_str)
            .map(str::to_string);
        let ds = body.get("dsInfo");
        let dsid = match ds.and_then(|d| d.get("dsid")) {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            // A wrong-domain answer may carry nothing else; the caller reports the domain first.
            _ if domain_to_use.is_some() => String::new(),
            _ => return Err("no dsInfo.dsid in the account document".into()),
        };
        let flag = |v: Option<&Value>| v.and_then(Value::as_bool).unwrap_or(false);
        let ds_get = |key: &str| ds.and_then(|d| d.get(key));
        Ok(AccountInfo {
            dsid,
            ckdatabasews_url: body
                .pointer("/webservices/ckdatabasews/url")
                .and_then(Value::as_str)
                .map(str::to_string),
            hsa_version: ds_get("hsaVersion").and_then(Value::as_i64).unwrap_or(0),
            hsa_challenge_required: flag(body.get("hsaChallengeRequired")),
            hsa_trusted_browser: flag(body.get("hsaTrustedBrowser")),
            has_qualifying_device: flag(ds_get("hasICloudQualifyingDevice")),
            adp_enabled: flag(body.get("iCDPEnabled")) || flag(ds_get("iCDPEnabled")),
            web_access_allowed: ds_get("isWebAccessAllowed").and_then(Value::as_bool),
            locked: flag(ds_get("locked")),
            domain_to_use,
        })
    }

    /// Two-factor (HSA2) still needed (section 5.4, the formula both reference clients use).
    pub fn needs_two_factor(&self) -> bool {
        self.hsa_version == 2
            && (self.hsa_challenge_required || !self.hsa_trusted_browser)
            && self.has_qualifying_device
    }

    /// Legacy two-step verification (hsaVersion 1) still needed; unsupported.
    pub fn needs_two_step(&self) -> bool {
        !self.needs_two_factor()
            && self.hsa_version >= 1
            && (self.hsa_challenge_required || !self.hsa_trusted_browser)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn two_factor_formula() {
        let doc = |ver: i64, req: bool, trusted: bool, dev: bool| {
            AccountInfo::from_body(&json!({
                "dsInfo": {"dsid": "1", "hsaVersion": ver, "hasICloudQualifyingDevice": dev},
                "webservices": {"ckdatabasews": {"url": "https://p61-ckdatabasews.icloud.com:443"}},
                "hsaChallengeRequired": req, "hsaTrustedBrowser": trusted
            }))
            .expect("parse")
        };
        assert!(doc(2, true, false, true).needs_two_factor());
        assert!(doc(2, false, false, true).needs_two_factor());
        assert!(!doc(2, false, true, true).needs_two_factor());
        assert!(!doc(2, true, false, false).needs_two_factor());
        assert!(!doc(0, true, false, true).needs_two_factor());
        assert!(doc(1, true, false, false).needs_two_step());
        assert!(!doc(2, false, true, true).needs_two_step());
        assert_eq!(
            doc(2, false, true, true).ckdatabasews_url.as_deref(),
            Some("https://p61-ckdatabasews.icloud.com:443")
        );
    }

    #[test]
    fn non_2fa_document_has_no_flags() {
        let info =
            AccountInfo::from_body(&json!({"dsInfo": {"dsid": "12345678901"}, "webservices": {}}))
                .expect("parse");
        assert!(!info.needs_two_factor());
        assert!(!info.needs_two_step());
        assert_eq!(info.ckdatabasews_url, None);
    }

    #[test]
    fn adp_and_domain_flags() {
        let info = AccountInfo::from_body(&json!({"dsInfo": {"dsid": 7}, "iCDPEnabled": true}))
            .expect("parse");
        assert!(info.adp_enabled);
        assert_eq!(info.dsid, "7");
        let info = AccountInfo::from_body(&json!({"domainToUse": "iCloud.com.cn"})).expect("parse");
        assert_eq!(info.domain_to_use.as_deref(), Some("iCloud.com.cn"));
        assert!(AccountInfo::from_body(&json!({"webservices": {}})).is_err());
        assert!(AccountInfo::from_body(&json!([1])).is_err());
    }
}
