//! The outbox relay on SQLite and (when configured) PostgreSQL: committed writes reach
//! subscribers and live listeners in commit order; a failing subscriber gets its event
//! again as a job; an unreachable NATS delays everything and loses nothing; with NATS
//! (`PREFIQ_TEST_NATS_URL`), JetStream holds exactly the outbox's events even when a
//! crashed relay sends them twice.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use prefiq::Context;
use prefiq_data::entity::repo::{Repository, TenantScope};
use prefiq_data::entity::sql::Sql;
use prefiq_data::outbox;
use prefiq_data::testing::{databases, repository};
use prefiq_worker::handlers::DeliverEvent;
use prefiq_worker::relay::Relay;
use prefiq_worker::{
    Databases, Event, EventBus, EventHandler, EventsConfig, JobHandler, JobInput, Jobs,
    Subscription,
};
use serde_json::json;

const NOTE: &str = "name: note\nfields:\n  - {name: body, type: data}\n";

fn scope(tenant: &str) -> TenantScope {
    TenantScope::new(&Context::system("en").with_tenant(tenant)).unwrap()
}

#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<Event>>,
}

#[async_trait::async_trait]
impl EventHandler for Recorder {
    async fn handle(&self, event: &Event) -> Result<(), String> {
        self.events.lock().unwrap().push(event.clone());
        Ok(())
    }
}

/// Fails its first call, then records.
#[derive(Default)]
struct FailsOnce {
    calls: AtomicUsize,
    events: Mutex<Vec<Event>>,
}

#[async_trait::async_trait]
impl EventHandler for FailsOnce {
    async fn handle(&self, event: &Event) -> Result<(), String> {
        if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
            return Err("the first call fails".into());
        }
        self.events.lock().unwrap().push(event.clone());
        Ok(())
    }
}

fn subscription(name: &str, pattern: &str, handler: Arc<dyn EventHandler>) -> Arc<Subscription> {
    Arc::new(Subscription {
        module: "m".into(),
        name: name.into(),
        pattern: pattern.into(),
        handler,
    })
}

/// Creates two notes, updates the first and deletes the second; returns their ids.
async fn write_some(repo: &Repository) -> (String, String) {
    let s = scope("acme");
    let a = repo.create(&s, "note", json!({"body": "a"})).await.unwrap();
    let b = repo.create(&s, "note", json!({"body": "b"})).await.unwrap();
    let (a, b) = (
        a["id"].as_str().unwrap().to_owned(),
        b["id"].as_str().unwrap().to_owned(),
    );
    repo.update(&s, "note", &a, json!({"body": "a2"}), None)
        .await
        .unwrap();
    repo.delete(&s, "note", &b).await.unwrap();
    // A refused write leaves no event.
    assert!(repo.create(&s, "note", json!({"nope": 1})).await.is_err());
    (a, b)
}

async fn backlog(repo: &Repository) -> i64 {
    let database = repo.main_database();
    let mut reader = database.get().unwrap().reader().await.unwrap();
    outbox::backlog(&mut reader.conn()).await.unwrap().0
}

#[tokio::test]
async fn subscribers_get_committed_events_in_order_and_a_failure_becomes_a_job() {
    for db in databases("outbox relay").await {
        let repo = repository(&db, "note.yaml", NOTE).await;
        let recorder = Arc::new(Recorder::default());
        let flaky = Arc::new(FailsOnce::default());
        let bus = Arc::new(EventBus::new(vec![
            subscription("recorder", "note.*", recorder.clone()),
            subscription("flaky", "note.created", flaky.clone()),
            subscription("never", "invoice.*", Arc::new(Recorder::default())),
        ]));
        let mut live = bus.listen();
        let mut relay = Relay::new(Databases::of(&repo), bus.clone(), EventsConfig::default());
        let (a, b) = write_some(&repo).await;
        assert_eq!(backlog(&repo).await, 4);

        let round = relay.drain().await.unwrap();
        assert_eq!((round.delivered, round.retries), (4, 1));
        let seen: Vec<(String, String)> = recorder
            .events
            .lock()
            .unwrap()
            .iter()
            .map(|e| (e.record_id.clone(), e.action.clone()))
            .collect();
        let expected = [
            (&a, "created"),
            (&b, "created"),
            (&a, "updated"),
            (&b, "deleted"),
        ];
        assert_eq!(
            seen,
            expected.map(|(id, action)| (id.clone(), action.to_owned()))
        );
        let events = recorder.events.lock().unwrap().clone();
        assert!(events.windows(2).all(|w| w[0].seq < w[1].seq));
        assert_eq!(events[2].data["body"], "a2");
        assert_eq!(
            (events[0].tenant.as_str(), events[0].entity.as_str()),
            ("acme", "note")
        );
        for _ in 0..4 {
            assert_eq!(live.try_recv().unwrap().tenant, "acme");
        }
        assert_eq!(backlog(&repo).await, 0);
        // Nothing is sent twice.
        assert_eq!(relay.drain().await.unwrap().delivered, 0);

        // The flaky subscriber's first event is a job on the `events` queue; run it.
        let jobs = Jobs::new(Databases::of(&repo));
        let queued = jobs.list(Some("events"), Some("queued"), 10).await.unwrap();
        assert_eq!(queued.len(), 1, "{queued:?}");
        let job = &queued[0].1;
        assert_eq!(job.kind, "events.deliver");
        assert_eq!(job.payload["subscription"], "m::flaky");
        assert_eq!(job.payload["event"]["record_id"], a.as_str());
        let cell = Arc::new(OnceLock::new());
        cell.set(bus.clone()).ok();
        let deliver = DeliverEvent::new(cell);
        let input = JobInput {
            id: job.id,
            kind: job.kind.clone(),
            context: Context::system("en").with_tenant("acme"),
            payload: job.payload.clone(),
            attempt: 1,
            max_attempts: 25,
        };
        deliver.run(&input).await.unwrap();
        let retried = flaky.events.lock().unwrap().clone();
        assert_eq!(
            retried.len(),
            2,
            "the second create, then the retried first"
        );
        assert_eq!(retried[1].record_id, a);
        db.cleanup().await;
    }
}

#[tokio::test]
async fn with_nats_unreachable_nothing_is_delivered_or_marked() {
    for db in databases("relay with NATS down").await {
        let repo = repository(&db, "note.yaml", NOTE).await;
        let recorder = Arc::new(Recorder::default());
        let bus = Arc::new(EventBus::new(vec![subscription(
            "recorder",
            "*",
            recorder.clone(),
        )]));
        let config = EventsConfig {
            // Nothing listens on port 1.
            nats_url: Some("nats://127.0.0.1:1".into()),
            ..EventsConfig::default()
        };
        let mut relay = Relay::new(Databases::of(&repo), bus.clone(), config);
        write_some(&repo).await;
        assert!(relay.pass().await.is_err());
        assert!(recorder.events.lock().unwrap().is_empty());
        assert_eq!(backlog(&repo).await, 4);
        // Once events can leave again, all of them do.
        let mut relay = Relay::new(Databases::of(&repo), bus, EventsConfig::default());
        assert_eq!(relay.drain().await.unwrap().delivered, 4);
        assert_eq!(recorder.events.lock().unwrap().len(), 4);
        db.cleanup().await;
    }
}

#[tokio::test]
async fn jetstream_holds_exactly_the_outbox_events_even_when_sent_twice() {
    let Ok(url) = std::env::var("PREFIQ_TEST_NATS_URL") else {
        #[allow(clippy::print_stderr)]
        {
            eprintln!("SKIPPED relay to NATS JetStream: PREFIQ_TEST_NATS_URL is not set");
        }
        return;
    };
    for db in databases("relay to NATS").await {
        let repo = repository(&db, "note.yaml", NOTE).await;
        let bus = Arc::new(EventBus::new(Vec::new()));
        let tag = uuid::Uuid::now_v7().simple().to_string();
        let config = EventsConfig {
            nats_url: Some(url.clone()),
            stream: format!("TEST_{tag}"),
            subject_prefix: format!("t{tag}"),
            ..EventsConfig::default()
        };
        let mut relay = Relay::new(Databases::of(&repo), bus, config.clone());
        let s = scope("acme");
        for i in 0..50 {
            repo.create(&s, "note", json!({"body": format!("n{i}")}))
                .await
                .unwrap();
        }
        assert_eq!(relay.drain().await.unwrap().delivered, 50);
        // A relay that crashed before marking sends everything again.
        let database = repo.main_database();
        {
            let mut tx = database.get().unwrap().begin().await.unwrap();
            tx.conn()
                .execute(&Sql::new(
                    "UPDATE prefiq_outbox SET published_at = NULL",
                    vec![],
                ))
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }
        let mut again = Relay::new(
            Databases::of(&repo),
            Arc::new(EventBus::new(Vec::new())),
            config.clone(),
        );
        assert_eq!(again.drain().await.unwrap().delivered, 50);

        let client = async_nats::connect(url.as_str()).await.unwrap();
        let jetstream = async_nats::jetstream::new(client);
        let mut stream = jetstream.get_stream(&config.stream).await.unwrap();
        let info = stream.info().await.unwrap();
        assert_eq!(info.state.messages, 50, "no duplicates, nothing missing");
        let first = stream.get_raw_message(1).await.unwrap();
        assert_eq!(first.subject.as_str(), format!("t{tag}.acme.note.created"));
        let event: Event = serde_json::from_slice(&first.payload).unwrap();
        assert_eq!(event.data["body"], "n0");
        jetstream.delete_stream(&config.stream).await.unwrap();
        db.cleanup().await;
    }
}

/// A backlog of several batches: on PostgreSQL one round pipelines them (each batch is
/// delivered while the previous is marked and the next read); on both, every event
/// arrives once, in order, and is marked.
#[tokio::test]
async fn a_backlog_of_many_batches_arrives_once_in_order_and_is_marked() {
    for db in databases("outbox relay batches").await {
        let repo = repository(&db, "note.yaml", NOTE).await;
        let recorder = Arc::new(Recorder::default());
        let bus = Arc::new(EventBus::new(vec![subscription(
            "recorder",
            "note.*",
            recorder.clone(),
        )]));
        let config = EventsConfig {
            batch_size: 7,
            ..EventsConfig::default()
        };
        let mut relay = Relay::new(Databases::of(&repo), bus, config);
        let s = scope("acme");
        let mut expected = Vec::new();
        for i in 0..30 {
            let note = repo
                .create(&s, "note", json!({"body": format!("{i}")}))
                .await
                .unwrap();
            let id = note["id"].as_str().unwrap().to_owned();
            expected.push((id.clone(), "created".to_owned()));
            if i % 3 == 0 {
                repo.update(&s, "note", &id, json!({"body": "again"}), None)
                    .await
                    .unwrap();
                expected.push((id, "updated".to_owned()));
            }
        }
        assert_eq!(backlog(&repo).await, expected.len() as i64);
        let first = relay.pass().await.unwrap();
        if db.url.starts_with("postgres") {
            // 40 events in batches of 7: one round of six pipelined batches.
            assert_eq!(first.delivered, expected.len());
        } else {
            assert_eq!(first.delivered, 7);
        }
        relay.drain().await.unwrap();
        let seen: Vec<(String, String)> = recorder
            .events
            .lock()
            .unwrap()
            .iter()
            .map(|e| (e.record_id.clone(), e.action.clone()))
            .collect();
        assert_eq!(seen, expected);
        assert_eq!(backlog(&repo).await, 0);
        assert_eq!(relay.drain().await.unwrap().delivered, 0, "nothing twice");
        db.cleanup().await;
    }
}

/// Two replicas in one process: A relays and publishes to NATS; B's live listeners get
/// every event from NATS, in order, and A's get each once (A's bridge skips its own).
#[tokio::test]
async fn other_replicas_live_listeners_get_each_event_once_over_nats() {
    let Ok(nats) = std::env::var("PREFIQ_TEST_NATS_URL") else {
        eprintln!("skipped: PREFIQ_TEST_NATS_URL is not set (no NATS to test against)");
        return;
    };
    let db = prefiq_data::testing::TestDatabase::sqlite().unwrap();
    let repo = repository(&db, "note.yaml", NOTE).await;
    let tag = uuid::Uuid::now_v7().simple().to_string();
    let config = EventsConfig {
        nats_url: Some(nats.clone()),
        stream: format!("LIVE_{tag}"),
        subject_prefix: format!("live{tag}"),
        ..EventsConfig::default()
    };
    let (a, b) = (
        Arc::new(EventBus::new(Vec::new())),
        Arc::new(EventBus::new(Vec::new())),
    );
    let (mut live_a, mut live_b) = (a.listen(), b.listen());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    for (bus, origin) in [(&a, "a"), (&b, "b")] {
        tokio::spawn(prefiq_worker::live::bridge(
            config.clone(),
            bus.clone(),
            origin.into(),
            stopped.clone(),
        ));
    }
    // The bridges subscribe before anything is published.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let mut relay = Relay::new(Databases::of(&repo), a.clone(), config.clone()).with_origin("a");
    let (first, second) = write_some(&repo).await;
    assert_eq!(relay.drain().await.unwrap().delivered, 4);
    let expected = [
        (first.clone(), "created"),
        (second.clone(), "created"),
        (first, "updated"),
        (second, "deleted"),
    ];
    for live in [&mut live_a, &mut live_b] {
        for (id, action) in &expected {
            let event = tokio::time::timeout(std::time::Duration::from_secs(5), live.recv())
                .await
                .unwrap()
                .unwrap();
            assert_eq!((&event.record_id, event.action.as_str()), (id, *action));
        }
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        live_a.try_recv().is_err(),
        "A's bridge skipped A's own events"
    );
    assert!(live_b.try_recv().is_err(), "B got each event once");
    stop.send(true).unwrap();
    if let Ok(client) = async_nats::connect(nats.as_str()).await {
        let _ = async_nats::jetstream::new(client)
            .delete_stream(&config.stream)
            .await;
    }
    db.cleanup().await;
}
