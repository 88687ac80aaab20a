//! The desk's CSRF tokens are bound to their session, on SQLite and (when configured)
//! PostgreSQL: a victim's session cookies with the attacker's own CSRF cookie and token
//! (from the attacker's session) are refused, and the victim's own token works.
#![allow(clippy::unwrap_used)]

mod common;

use axum::http::StatusCode;
use common::boot;
use common::browser::Browser;
use prefiq_data::testing::databases;

const PASSWORD: &str = "correct horse battery";

#[tokio::test]
async fn csrf_token_of_another_session_is_refused_on_backends() {
    for db in databases("cortex desk csrf").await {
        let api = boot(&db).await;
        let identity = api.identity();
        identity
            .create_tenant("acme", "victim@acme.test", PASSWORD)
            .await
            .unwrap();
        identity
            .create_user(
                "acme",
                "attacker@acme.test",
                PASSWORD,
                &[],
                &serde_json::Map::new(),
            )
            .await
            .unwrap();
        let victim = Browser::new(&api, "acme");
        victim.login("victim@acme.test", PASSWORD).await;
        let attacker = Browser::new(&api, "acme");
        attacker.login("attacker@acme.test", PASSWORD).await;
        let own = victim.cookie("prefiq_csrf").unwrap();
        let planted = attacker.cookie("prefiq_csrf").unwrap();
        assert_ne!(own, planted, "two sessions, two tokens");
        // Two logins of the same user are two sessions as well.
        let again = Browser::new(&api, "acme");
        again.login("victim@acme.test", PASSWORD).await;
        let other_session = again.cookie("prefiq_csrf").unwrap();
        assert_ne!(own, other_session);

        // (CSRF cookie the request carries, token in the form, expected status)
        let cases = [
            (planted.as_str(), planted.as_str(), StatusCode::FORBIDDEN),
            (own.as_str(), planted.as_str(), StatusCode::FORBIDDEN),
            (
                other_session.as_str(),
                other_session.as_str(),
                StatusCode::FORBIDDEN,
            ),
            (planted.as_str(), own.as_str(), StatusCode::SEE_OTHER),
        ];
        for (cookie, token, expected) in cases {
            victim.set_cookie("prefiq_csrf", cookie);
            let page = victim
                .post(
                    "/app/e/todo/new",
                    &[
                        ("f.description", "sent with the victim's cookies"),
                        ("_csrf", token),
                    ],
                )
                .await;
            assert_eq!(
                page.status, expected,
                "cookie {cookie}, token {token}: {}",
                page.body
            );
        }
        // Only the victim's own form made a record.
        let bearer = api.bearer("acme", "victim@acme.test", PASSWORD).await;
        let (_, todos) = api
            .call(
                "GET",
                "/api/v1/resources/todo",
                &[("authorization", &bearer)],
                None,
            )
            .await;
        assert_eq!(todos["data"].as_array().unwrap().len(), 1, "{todos}");
        db.cleanup().await;
    }
}
