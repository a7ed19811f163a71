//! `email/send` end to end: the mail that arrived at a real SMTP server on
//! loopback; a transient 451 retried; a permanent 550 failing at once; and
//! the dev outbox when there is no SMTP server.

use advert_01::jobs::client::SendEmail;
use advert_01::jobs::email;

use crate::smtp::SmtpServer;
use crate::support::TestApp;

fn email(to: &str) -> SendEmail {
    SendEmail {
        to: to.to_string(),
        subject: "Welcome aboard".to_string(),
        text: "Your advert-01 account is ready.".to_string(),
        html: Some("<p>Your advert-01 account is <b>ready</b>.</p>".to_string()),
        reply_to: Some("Support <support@example.com>".to_string()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mail_arrives_at_the_smtp_server() {
    let smtp = SmtpServer::start().await;
    let app = TestApp::start(&[("SMTP_URL", smtp.url()), ("MAIL_FROM", "advert-01 <hello@advert.example>".to_string())]).await;
    let event_id = app.send::<SendEmail>(email("Ada Lovelace <ada@example.com>")).await;
    let run = app.wait_run(&event_id, email::ID).await.unwrap();
    assert_eq!(run.status, "Completed", "{run:?}");
    assert_eq!(run.output["delivery"]["via"], "smtp", "{run:?}");
    assert_eq!(run.output["delivery"]["code"], "250", "{run:?}");

    let mails = smtp.mails();
    assert_eq!(mails.len(), 1, "{mails:?}");
    let m = &mails[0];
    assert_eq!(m.from, "hello@advert.example");
    assert_eq!(m.to, ["ada@example.com"]);
    for needle in [
        "Subject: Welcome aboard",
        "To: \"Ada Lovelace\" <ada@example.com>",
        "Reply-To: Support <support@example.com>",
        &format!("Message-ID: <{event_id}@advert-01>"),
        "Your advert-01 account is ready.",
        "multipart/alternative",
        "text/html",
    ] {
        assert!(m.data.contains(needle), "{needle:?} not in the mail:\n{}", m.data);
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_smtp_failure_is_retried() {
    let smtp = SmtpServer::start().await;
    let app = TestApp::start(&[("SMTP_URL", smtp.url())]).await;
    let event_id = app.send::<SendEmail>(email("flaky@example.com")).await;
    let run = app.wait_run(&event_id, email::ID).await.unwrap();
    assert_eq!(run.status, "Completed", "{run:?}");
    // 451 the first time, accepted the second.
    assert_eq!(smtp.rcpt_count("flaky@example.com"), 2);
    assert_eq!(smtp.mails().len(), 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_rejection_fails_without_retrying() {
    let smtp = SmtpServer::start().await;
    let app = TestApp::start(&[("SMTP_URL", smtp.url())]).await;
    let event_id = app.send::<SendEmail>(email("reject@example.com")).await;
    let run = app.wait_run(&event_id, email::ID).await.unwrap();
    assert_eq!(run.status, "Failed", "{run:?}");
    let out = run.output.to_string();
    assert!(out.contains("rejected the message permanently") && out.contains("550"), "{out}");
    // The run is over after one try: no retry followed the 550.
    assert_eq!(smtp.rcpt_count("reject@example.com"), 1);
    assert!(smtp.mails().is_empty());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_smtp_dev_mode_writes_an_eml_to_the_outbox() {
    let app = TestApp::start(&[]).await;
    let event_id = app.send::<SendEmail>(email("grace@example.com")).await;
    let run = app.wait_run(&event_id, email::ID).await.unwrap();
    assert_eq!(run.status, "Completed", "{run:?}");
    assert_eq!(run.output["delivery"]["via"], "outbox", "{run:?}");
    let path = run.output["delivery"]["path"].as_str().unwrap().to_string();
    assert!(path.ends_with(".eml") && path.contains("outbox"), "{path}");
    let eml = std::fs::read_to_string(&path).unwrap();
    assert!(eml.contains("To: grace@example.com") && eml.contains("Subject: Welcome aboard"), "{eml}");
    assert!(eml.contains(&format!("Message-ID: <{event_id}@advert-01>")), "{eml}");
    let files: Vec<_> = std::fs::read_dir(app.dir.path().join("outbox")).unwrap().collect();
    assert_eq!(files.len(), 1);
    app.stop().await;
}
