//! The client and the app settings read from the environment: optional in
//! dev mode, required outside it, and every variable documented in
//! `.env.example`.

use std::collections::HashMap;

use advert_01::api::auth::ApiAccess;
use advert_01::config::{ExportTarget, MailTarget, RawSettings, SettingsError, DEFAULT_MAIL_FROM};
use advert_01::jobs::client::{client_from, EngineTarget, APP_ID};
use advert_01::jobs::webhook::destination::DestinationPolicy;
use ingot::{ConfigError, Mode};

const SIGNING_KEY: &str = "signkey-prod-0123456789abcdef0123456789abcdef";
const FALLBACK_KEY: &str = "signkey-prod-fedcba9876543210fedcba9876543210";

fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    move |k| map.get(k).cloned()
}

#[test]
fn the_embedded_engine_needs_no_keys() {
    let target = EngineTarget { base_url: Some("http://127.0.0.1:18288".into()), force_dev: true };
    let c = client_from(env(&[]), &target).unwrap();
    assert_eq!((c.app_id(), c.mode()), (APP_ID, Mode::Dev));
    assert_eq!((c.api_origin(), c.event_api_origin()), ("http://127.0.0.1:18288", "http://127.0.0.1:18288"));
}

#[test]
fn dev_mode_from_inngest_dev_needs_no_keys() {
    let c = client_from(env(&[("INNGEST_DEV", "1")]), &EngineTarget::default()).unwrap();
    assert_eq!((c.mode(), c.api_origin()), (Mode::Dev, "http://127.0.0.1:8288"));
    let c = client_from(env(&[("INNGEST_DEV", "http://127.0.0.1:9999")]), &EngineTarget::default()).unwrap();
    assert_eq!((c.mode(), c.api_origin()), (Mode::Dev, "http://127.0.0.1:9999"));
}

#[test]
fn outside_dev_mode_the_keys_are_required() {
    let none = EngineTarget::default();
    assert_eq!(client_from(env(&[]), &none).unwrap_err(), ConfigError::MissingSigningKey);
    assert_eq!(client_from(env(&[("INNGEST_BASE_URL", "http://engine:8288")]), &none).unwrap_err(), ConfigError::MissingSigningKey);
    assert_eq!(client_from(env(&[("INNGEST_SIGNING_KEY", SIGNING_KEY)]), &none).unwrap_err(), ConfigError::MissingEventKey);
    assert_eq!(
        client_from(env(&[("INNGEST_DEV", "0"), ("INNGEST_SIGNING_KEY", "signkey-prod-not-hex"), ("INNGEST_EVENT_KEY", "ek")]), &none)
            .unwrap_err(),
        ConfigError::InvalidSigningKey { var: "INNGEST_SIGNING_KEY" }
    );
    assert!(matches!(client_from(env(&[("INNGEST_DEV", "perhaps")]), &none), Err(ConfigError::InvalidDev(_))));
}

#[test]
fn cloud_mode_with_keys_and_a_fallback() {
    let vars = [
        ("INNGEST_DEV", "0"),
        ("INNGEST_SIGNING_KEY", SIGNING_KEY),
        ("INNGEST_SIGNING_KEY_FALLBACK", FALLBACK_KEY),
        ("INNGEST_EVENT_KEY", "event-key"),
        ("INNGEST_BASE_URL", "https://ingot.example.com/"),
    ];
    let c = client_from(env(&vars), &EngineTarget::default()).unwrap();
    assert_eq!((c.mode(), c.api_origin(), c.event_api_origin()), (Mode::Cloud, "https://ingot.example.com", "https://ingot.example.com"));
    // --engine-url wins over INNGEST_BASE_URL.
    let c = client_from(env(&vars), &EngineTarget { base_url: Some("http://10.1.2.3:8288".into()), force_dev: false }).unwrap();
    assert_eq!(c.api_origin(), "http://10.1.2.3:8288");
    assert_eq!(
        client_from(
            env(&[("INNGEST_SIGNING_KEY", SIGNING_KEY), ("INNGEST_EVENT_KEY", "k"), ("INNGEST_SIGNING_KEY_FALLBACK", "nope!")]),
            &EngineTarget::default()
        )
        .unwrap_err(),
        ConfigError::InvalidSigningKey { var: "INNGEST_SIGNING_KEY_FALLBACK" }
    );
}

#[test]
fn app_settings_have_dev_fallbacks_and_are_required_outside_dev() {
    let s = RawSettings::from_lookup(env(&[("ADVERT_DATA_DIR", "/tmp/a1")])).resolve(true).unwrap();
    assert_eq!(s.mail, MailTarget::Outbox("/tmp/a1/outbox".into()));
    assert_eq!(s.export, ExportTarget::Local("/tmp/a1/exports".into()));
    assert_eq!((s.database.to_str().unwrap(), s.mail_from.as_str()), ("/tmp/a1/advert-01.db", DEFAULT_MAIL_FROM));
    assert!(s.webhook_secret_is_dev);

    let err = RawSettings::from_lookup(env(&[])).resolve(false).unwrap_err();
    assert!(matches!(err, SettingsError::Missing { var: "SMTP_URL", .. }), "{err}");
    let err = RawSettings::from_lookup(env(&[("SMTP_URL", "smtp://mail:25")])).resolve(false).unwrap_err();
    assert!(matches!(err, SettingsError::Missing { var: "WEBHOOK_SECRET", .. }), "{err}");
    assert!(err.to_string().contains("INNGEST_DEV=1"), "{err}");
    let err =
        RawSettings::from_lookup(env(&[("SMTP_URL", "smtp://mail:25"), ("WEBHOOK_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")]))
            .resolve(false)
            .unwrap_err();
    assert!(matches!(err, SettingsError::Missing { var: "ADVERT_API_TOKEN", .. }), "{err}");
    // Dev mode: the API is open and webhooks still go to public addresses only.
    assert!(matches!(s.api_access, ApiAccess::Open));
    assert_eq!(s.webhook_destinations, DestinationPolicy::PublicOnly);

    let prod = [
        ("SMTP_URL", "smtps://user:pw@mail.example.com:465"),
        ("WEBHOOK_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        ("EXPORT_S3_BUCKET", "pdfs"),
        ("EXPORT_S3_ENDPOINT", "http://minio:9000"),
        ("EXPORT_S3_ALLOW_HTTP", "yes"),
        ("WEBHOOK_TIMEOUT_SECS", "2.5"),
        ("WEBHOOK_CONCURRENCY", "4"),
        ("ADVERT_API_TOKEN", "0123456789abcdef0123456789abcdef"),
        ("WEBHOOK_ALLOW_PRIVATE", "true"),
        ("EXPORT_PREFIX", "/advert-01/pdf/"),
    ];
    let s = RawSettings::from_lookup(env(&prod)).resolve(false).unwrap();
    assert!(matches!(&s.api_access, ApiAccess::Token(t) if t.matches("0123456789abcdef0123456789abcdef")));
    assert_eq!((s.webhook_destinations, s.export_prefix.as_str()), (DestinationPolicy::AnyAddress, "advert-01/pdf"));
    assert!(!format!("{s:?}").contains("0123456789abcdef"), "the token never shows in Debug");
    assert!(matches!(&s.mail, MailTarget::Smtp { url, .. } if url.starts_with("smtps://")));
    let ExportTarget::S3(s3) = &s.export else { panic!("S3 expected: {:?}", s.export) };
    assert_eq!((s3.bucket.as_str(), s3.region.as_str(), s3.allow_http), ("pdfs", "us-east-1", true));
    assert_eq!((s.webhook_timeout.as_millis(), s.webhook_concurrency, s.webhook_secret_is_dev), (2500, 4, false));
    // Secrets never show in Debug.
    assert!(!format!("{s:?}").contains("user:pw"));

    for (var, value) in [
        ("SMTP_URL", "mail.example.com"),
        ("WEBHOOK_SECRET", "whsec_c2hvcnQ="),
        ("WEBHOOK_TIMEOUT_SECS", "-1"),
        ("WEBHOOK_CONCURRENCY", "0"),
        ("EXPORT_S3_ALLOW_HTTP", "maybe"),
        ("ADVERT_API_TOKEN", "too-short"),
        ("ADVERT_API_TOKEN", "a token with spaces in it"),
        ("WEBHOOK_ALLOW_PRIVATE", "sometimes"),
        ("EXPORT_PREFIX", "advert-01/../other"),
        ("EXPORT_PREFIX", "pdf\\..\\up"),
        ("EXPORT_PREFIX", "a//b"),
    ] {
        let mut vars = prod.to_vec();
        vars.retain(|(k, _)| *k != var);
        vars.push((var, value));
        let err = RawSettings::from_lookup(env(&vars)).resolve(false).unwrap_err();
        assert!(matches!(err, SettingsError::Invalid { var: v, .. } if v == var), "{var}: {err}");
    }
}

#[test]
fn every_variable_is_documented_in_env_example() {
    let example = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/.env.example")).unwrap();
    for var in [
        "INNGEST_DEV",
        "INNGEST_BASE_URL",
        "INNGEST_EVENT_KEY",
        "INNGEST_SIGNING_KEY",
        "INNGEST_SIGNING_KEY_FALLBACK",
        "ADVERT_ADDR",
        "ADVERT_ENGINE_ADDR",
        "ADVERT_ENGINE_DB",
        "ADVERT_DATA_DIR",
        "ADVERT_DATABASE",
        "SMTP_URL",
        "SMTP_TIMEOUT_SECS",
        "MAIL_FROM",
        "MAIL_OUTBOX_DIR",
        "EXPORT_DIR",
        "EXPORT_PREFIX",
        "EXPORT_S3_BUCKET",
        "EXPORT_S3_ENDPOINT",
        "EXPORT_S3_REGION",
        "EXPORT_S3_ACCESS_KEY_ID",
        "EXPORT_S3_SECRET_ACCESS_KEY",
        "EXPORT_S3_ALLOW_HTTP",
        "WEBHOOK_SECRET",
        "WEBHOOK_TIMEOUT_SECS",
        "WEBHOOK_CONCURRENCY",
        "WEBHOOK_ALLOW_PRIVATE",
        "ADVERT_API_TOKEN",
    ] {
        assert!(example.lines().any(|l| l.trim_start_matches("# ").starts_with(&format!("{var}="))), "{var} is not in .env.example");
    }
}
