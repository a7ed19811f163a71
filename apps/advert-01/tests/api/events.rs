//! The typed events: names, wire shapes, the examples the app shows, and
//! sending by name checking the payload first. (That the wrong payload does
//! not compile is shown by the `compile_fail` doctests of `jobs::client`.)

use advert_01::jobs::client::{self, *};
use advert_01::jobs::webhook::destination::DestinationPolicy;
use ingot::event::IntoEvent as _;
use ingot::{Event, TypedEvent};
use serde_json::json;

#[test]
fn each_type_carries_its_event_name() {
    assert_eq!(HelloWorld::NAME, "test/hello.world");
    assert_eq!(SendEmail::NAME, "email/send");
    assert_eq!(GenerateStrategy::NAME, "strategy/generate");
    assert_eq!(StrategyGenerated::NAME, "strategy/generated");
    assert_eq!(ExportPdf::NAME, "export/pdf");
    assert_eq!(PdfReady::NAME, "export/pdf.ready");
    assert_eq!(DeliverWebhook::NAME, "webhook/deliver");
    let e = TypedEvent::<HelloWorld>::new(HelloWorld { name: Some("Ada".into()) }).with_id("k1").into_event().unwrap();
    assert_eq!((e.name.as_str(), e.data.clone(), e.id.as_deref()), ("test/hello.world", json!({"name": "Ada"}), Some("k1")));
    let e = SendEmail { to: "a@b.c".into(), subject: "s".into(), text: "t".into(), html: None, reply_to: None }.into_event().unwrap();
    assert_eq!((e.name.as_str(), e.data), ("email/send", json!({"to": "a@b.c", "subject": "s", "text": "t"})));
}

#[test]
fn payloads_read_from_json_as_users_write_them() {
    let examples = client::examples();
    let get = |name: &str| examples[name].clone();
    let s: GenerateStrategy = serde_json::from_value(get("strategy/generate")).unwrap();
    assert_eq!((s.goal, s.channels.len(), s.start_date.to_string()), (Goal::Leads, 3, "2026-04-01".to_string()));
    let _: HelloWorld = serde_json::from_value(get("test/hello.world")).unwrap();
    let _: SendEmail = serde_json::from_value(get("email/send")).unwrap();
    let x: ExportPdf = serde_json::from_value(get("export/pdf")).unwrap();
    assert!(matches!(x.document, DocumentRef::Note { .. }));
    let _: DeliverWebhook = serde_json::from_value(get("webhook/deliver")).unwrap();
    assert_eq!(examples.as_object().unwrap().len(), SENDABLE.len());
    // Defaults and refusals.
    let h: HelloWorld = serde_json::from_value(json!({})).unwrap();
    assert_eq!(h.name, None);
    let mut bad = get("strategy/generate");
    bad["goal"] = json!("fame");
    assert!(serde_json::from_value::<GenerateStrategy>(bad).is_err());
    let doc: DocumentRef = serde_json::from_value(json!({"kind": "strategy", "id": "01X"})).unwrap();
    assert_eq!(doc, DocumentRef::Strategy { id: "01X".into() });
}

#[tokio::test]
async fn sending_by_name_checks_the_payload_before_the_engine() {
    // No engine listens here: these must fail before any request is made.
    let c = client::client_from(|_| None, &EngineTarget { base_url: Some("http://127.0.0.1:9".into()), force_dev: true }).unwrap();
    let err = client::send_named(&c, "email/send", json!({"name": "Ada"}), DestinationPolicy::PublicOnly).await.unwrap_err();
    assert!(matches!(err, SendNamedError::InvalidData { .. }), "{err}");
    assert!(err.to_string().contains("missing field `to`"), "{err}");
    let err = client::send_named(&c, "nope/nothing", json!({}), DestinationPolicy::PublicOnly).await.unwrap_err();
    assert!(matches!(err, SendNamedError::UnknownEvent { .. }), "{err}");
}
