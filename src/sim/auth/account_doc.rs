//! The account document `accountLogin` and `validate` answer (icloud-auth.md section 5), in the
//! recorded shape and key order. It never carries `error`, `reason`, `errorMessage` or
//! `errorReason` keys, which py would read as a failure.

use serde_json::{Map, Value, json};

use crate::sim::SimState;

/// The document for the simulated account; `trusted` says whether the second factor is done.
pub fn account_document(state: &SimState, trusted: bool) -> Value {
    let hsa = state.auth.secrets.has_second_factor();
    let adp = state.config.adp;
    let mut doc = Map::new();
    doc.insert("dsInfo".into(), ds_info(state, hsa));
    doc.insert("hasMinimumDeviceForPhotosWeb".into(), true.into());
    doc.insert("iCDPEnabled".into(), adp.into());
    doc.insert("webservices".into(), webservices(state));
    doc.insert("pcsEnabled".into(), true.into());
    doc.insert("configBag".into(), config_bag(state));
    if hsa {
        doc.insert("hsaTrustedBrowser".into(), trusted.into());
    }
    doc.insert(
        "appsOrder".into(),
        json!([
            "mail",
            "contacts",
            "calendar",
            "photos",
            "iclouddrive",
            "notes3",
            "reminders",
            "pages",
            "numbers",
            "keynote",
            "newspublisher",
            "find",
            "settings"
        ]),
    );
    doc.insert("version".into(), 2.into());
    doc.insert("isExtendedLogin".into(), true.into());
    doc.insert("pcsServiceIdentitiesIncluded".into(), false.into());
    if hsa {
        doc.insert("hsaChallengeRequired".into(), (!trusted).into());
    }
    doc.insert(
        "requestInfo".into(),
        json!({"country": "US", "timeZone": "EST", "region": "NC"}),
    );
    doc.insert("pcsDeleted".into(), false.into());
    doc.insert(
        "iCloudInfo".into(),
        json!({"SafariBookmarksHasMigratedToCloudKit": false}),
    );
    doc.insert(
        "apps".into(),
        json!({
            "calendar": {}, "reminders": {}, "keynote": {"isQualifiedForBeta": true},
            "settings": {"canLaunchWithOneFactor": true}, "mail": {},
            "numbers": {"isQualifiedForBeta": true}, "photos": {},
            "pages": {"isQualifiedForBeta": true}, "notes3": {},
            "find": {"canLaunchWithOneFactor": true}, "iclouddrive": {},
            "newspublisher": {"isHidden": true}, "contacts": {}
        }),
    );
    Value::Object(doc)
}

fn ds_info(state: &SimState, hsa: bool) -> Value {
    let account = &state.account;
    let email = account.username.as_str();
    let first = email.split('@').next().unwrap_or("sim");
    let mut ds = json!({
        "lastName": "User",
        "iCDPEnabled": state.config.adp,
        "tantorMigrated": false,
        "dsid": account.dsid,
        "hsaEnabled": true,
        "ironcadeMigrated": true,
        "locale": "en-us_US",
        "brZoneConsolidated": false,
        "ICDRSCapableDeviceList": "",
        "isManagedAppleID": false,
        "isCustomDomainsFeatureAvailable": true,
        "isHideMyEmailFeatureAvailable": true,
        "ContinueOnDeviceEligibleDeviceInfo": [],
        "gilligan-invited": true,
        "appleIdAliases": [],
        "hsaVersion": 2,
        "ubiquityEOLEnabled": true,
        "isPaidDeveloper": false,
        "countryCode": "USA",
        "notificationId": uuid_from(&account.dsid, "notification"),
        "primaryEmailVerified": true,
        "aDsID": uuid_from(&account.dsid, "adsid"),
        "locked": false,
        "ICDRSCapableDeviceCount": 0,
    });
    // Two halves: one `json!` of all the keys exceeds the macro recursion limit.
    let rest = json!({
        "hasICloudQualifyingDevice": true,
        "primaryEmail": email,
        "appleIdEntries": [{"isPrimary": true, "type": "EMAIL", "value": email}],
        "gilligan-enabled": true,
        "isWebAccessAllowed": true,
        "fullName": format!("{first} User"),
        "mailFlags": {
            "isThreadingAvailable": false, "isSearchV2Provisioned": false,
            "rawBits": vec![0; 64], "isCKMail": false, "isMppSupportedInCurrentCountry": true
        },
        "languageCode": "en-us",
        "appleId": email,
        "analyticsOptInStatus": false,
        "firstName": first,
        "iCloudAppleIdAlias": "",
        "notesMigrated": true,
        "beneficiaryInfo": {"isBeneficiary": false},
        "hasPaymentInfo": true,
        "pcsDeleted": false,
        "appleIdAlias": "",
        "brMigrated": true,
        "statusCode": 2,
        "familyEligible": true,
    });
    if let (Some(map), Value::Object(rest)) = (ds.as_object_mut(), rest) {
        map.extend(rest);
    }
    if !hsa {
        // The recorded document of an account without 2FA has neither key.
        if let Some(map) = ds.as_object_mut() {
            map.shift_remove("hsaEnabled");
            map.shift_remove("hsaVersion");
        }
    }
    ds
}

/// A stable UUID-shaped identifier derived from the dsid.
fn uuid_from(dsid: &str, label: &str) -> String {
    use sha2::{Digest, Sha256};
    let h = Sha256::digest(format!("{label}:{dsid}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&h[..16]);
    uuid::Uuid::from_bytes(bytes).to_string().to_uppercase()
}

/// URL of a service host such as `p01-drivews`: on Apple's host names, shaped like the
/// `ckdatabasews` URL (explicit port); otherwise the simulator's own endpoint.
fn service_url(state: &SimState, host: &str) -> String {
    if state.config.apple_hosts {
        state
            .urls
            .ckdatabasews
            .replacen("p01-ckdatabasews", host, 1)
    } else {
        state.urls.endpoint.clone()
    }
}

fn webservices(state: &SimState) -> Value {
    let active = |host: &str| json!({"url": service_url(state, host), "status": "active"});
    let pcs = |host: &str| json!({"pcsRequired": true, "url": service_url(state, host), "status": "active"});
    json!({
        "reminders": active("p01-remindersws"),
        // pcsRequired stays true even without ADP: that is the recorded shape (A.7.1).
        "ckdatabasews": {"pcsRequired": true, "url": state.urls.ckdatabasews, "status": "active"},
        "photosupload": pcs("p01-uploadphotosws"),
        "photos": {
            "pcsRequired": true,
            "uploadUrl": service_url(state, "p01-uploadphotosws"),
            "url": service_url(state, "p01-photosws"),
            "status": "active"
        },
        "drivews": pcs("p01-drivews"),
        "uploadimagews": active("p01-uploadimagews"),
        "schoolwork": {},
        "cksharews": active("p01-ckshare"),
        "findme": active("p01-fmipweb"),
        "ckdeviceservice": {"url": service_url(state, "p01-ckdevice")},
        "iworkthumbnailws": active("p01-iworkthumbnailws"),
        "mccgateway": active("p01-mccgateway"),
        "calendar": {"isMakoAccount": false, "url": service_url(state, "p01-calendarws"), "status": "active"},
        "docws": pcs("p01-docws"),
        "settings": active("p01-settingsws"),
        "premiummailsettings": active("p01-maildomainws"),
        "ubiquity": active("p01-ubiquityws"),
        "keyvalue": active("p01-keyvalueservice"),
        "mpp": {"url": "https://relay.icloud-mpp.com", "status": "active"},
        "archivews": active("p01-archivews"),
        "push": active("p01-pushws"),
        "iwmb": active("p01-iwmb"),
        "iworkexportws": active("p01-iworkexportws"),
        "sharedlibrary": active("sharedlibrary"),
        "geows": active("p01-geows"),
        "account": {
            "iCloudEnv": {"shortId": "p", "vipSuffix": "prod"},
            "url": service_url(state, "p01-setup"),
            "status": "active"
        },
        "contacts": active("p01-contactsws"),
        "developerapi": active("developer-api"),
    })
}

fn config_bag(state: &SimState) -> Value {
    let auth = format!("{}/appleauth/auth", state.urls.auth_root);
    let setup = format!("{}/setup/ws/1", state.urls.setup_root);
    json!({
        "urls": {
            "accountCreateUI": "https://appleid.apple.com/widget/account/?widgetKey=#!create",
            "accountLoginUI": format!("{auth}/signin?widgetKey="),
            "accountLogin": format!("{setup}/accountLogin"),
            "accountRepairUI": "https://appleid.apple.com/widget/account/?widgetKey=#!repair",
            "downloadICloudTerms": format!("{setup}/downloadLiteTerms"),
            "repairDone": format!("{setup}/repairDone"),
            "accountAuthorizeUI": format!("{auth}/authorize/signin?client_id="),
            "vettingUrlForEmail": "https://id.apple.com/IDMSEmailVetting/vetShareEmail",
            "accountCreate": format!("{setup}/createLiteAccount"),
            "getICloudTerms": format!("{setup}/getTerms"),
            "vettingUrlForPhone": "https://id.apple.com/IDMSEmailVetting/vetSharePhone"
        },
        "accountCreateEnabled": true
    })
}
