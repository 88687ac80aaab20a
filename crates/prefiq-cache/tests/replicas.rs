//! The cache across replicas: two `Cache` services in one test process stand for two
//! replicas, each with its own connection to the real Redis (`PREFIQ_TEST_REDIS_URL`) or
//! NATS (`PREFIQ_TEST_NATS_URL`) server. Without those variables the transport cases
//! report that they were skipped; the local cases always run.

#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use prefiq_cache::transport::Transport;
use prefiq_cache::{Cache, CacheConfig, Namespace, NamespaceSpec};

fn config() -> CacheConfig {
    CacheConfig {
        // Each test run talks on its own channel, so that concurrent runs do not meet.
        channel: format!("codexion-cache.test.{}", uuid::Uuid::now_v7().simple()),
        ..CacheConfig::default()
    }
}

fn redis() -> Option<Transport> {
    match std::env::var("PREFIQ_TEST_REDIS_URL") {
        Ok(url) => Some(Transport::Redis(url)),
        Err(_) => {
            eprintln!("skipped: PREFIQ_TEST_REDIS_URL is not set (no Redis to test against)");
            None
        }
    }
}

fn nats() -> Option<Transport> {
    match std::env::var("PREFIQ_TEST_NATS_URL") {
        Ok(url) => Some(Transport::Nats(url)),
        Err(_) => {
            eprintln!("skipped: PREFIQ_TEST_NATS_URL is not set (no NATS to test against)");
            None
        }
    }
}

/// Two replicas on `transport`, both connected. The stop switch must outlive them.
async fn replicas(transport: &Transport) -> (Cache, Cache, tokio::sync::watch::Sender<bool>) {
    let config = config();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let a = Cache::new(config.clone());
    let b = Cache::new(config);
    a.start(Some(transport.clone()), stopped.clone()).unwrap();
    b.start(Some(transport.clone()), stopped).unwrap();
    eventually("both replicas connect", || a.connected() && b.connected()).await;
    (a, b, stop)
}

async fn eventually(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !condition() {
        assert!(Instant::now() < deadline, "{what}: not within 5 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn load(namespace: &Namespace<String>, tenant: &str, key: &str, value: &str) -> String {
    namespace
        .get_or_load(tenant, key, || async { Ok::<_, ()>(value.to_owned()) })
        .await
        .unwrap()
}

/// What `b` holds of each `(tenant, key)` after `invalidate` runs on `a`.
async fn check_invalidation(
    transport: Option<Transport>,
    invalidate: impl Fn(&Namespace<String>, &Cache),
    expected: &[(&str, &str, Option<&str>)],
) {
    let Some(transport) = transport else { return };
    let (a, b, _stop) = replicas(&transport).await;
    let spec = NamespaceSpec::new("test.values").depends_on("todo");
    let on_a: Namespace<String> = a.namespace(spec.clone());
    let on_b: Namespace<String> = b.namespace(spec);
    for (tenant, key, _) in expected {
        load(&on_b, tenant, key, &format!("{tenant}/{key}")).await;
        assert!(on_b.get(tenant, key).is_some());
    }
    invalidate(&on_a, &a);
    eventually("the invalidation reaches the other replica", || {
        expected
            .iter()
            .all(|(tenant, key, held)| on_b.get(tenant, key).as_deref().is_some() == held.is_some())
    })
    .await;
    // And nothing else went: what should be held is still held, with its value.
    tokio::time::sleep(Duration::from_millis(50)).await;
    for (tenant, key, held) in expected {
        assert_eq!(on_b.get(tenant, key).as_deref(), *held, "{tenant}/{key}");
    }
}

#[tokio::test]
async fn a_key_invalidated_on_one_replica_is_dropped_on_the_other_over_redis() {
    check_invalidation(
        redis(),
        |ns, _| ns.invalidate("acme", "k1"),
        &[
            ("acme", "k1", None),
            ("acme", "k2", Some("acme/k2")),
            ("globex", "k1", Some("globex/k1")),
        ],
    )
    .await;
}

#[tokio::test]
async fn a_tenant_invalidated_on_one_replica_is_dropped_on_the_other_over_redis() {
    check_invalidation(
        redis(),
        |ns, _| ns.invalidate_tenant("acme"),
        &[
            ("acme", "k1", None),
            ("acme", "k2", None),
            ("globex", "k1", Some("globex/k1")),
        ],
    )
    .await;
}

#[tokio::test]
async fn an_event_of_a_dependency_invalidates_the_tenant_on_every_replica_over_redis() {
    check_invalidation(
        redis(),
        |_, cache| {
            assert_eq!(cache.entity_changed("acme", "todo"), 1);
            assert_eq!(cache.entity_changed("acme", "journal_entry"), 0);
        },
        &[("acme", "k1", None), ("globex", "k1", Some("globex/k1"))],
    )
    .await;
}

#[tokio::test]
async fn a_key_invalidated_on_one_replica_is_dropped_on_the_other_over_nats() {
    check_invalidation(
        nats(),
        |ns, _| ns.invalidate("acme", "k1"),
        &[
            ("acme", "k1", None),
            ("acme", "k2", Some("acme/k2")),
            ("globex", "k1", Some("globex/k1")),
        ],
    )
    .await;
}

#[tokio::test]
async fn a_listening_cache_hears_other_replicas_announcements() {
    let Some(transport) = redis() else { return };
    let (a, b, _stop) = replicas(&transport).await;
    let heard = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = heard.clone();
    b.listen("authz.model", move |tenant, key| {
        sink.lock()
            .unwrap()
            .push((tenant.to_owned(), key.map(str::to_owned)));
    });
    a.announce("authz.model", "acme", None);
    eventually("the announcement is heard", || {
        heard.lock().unwrap().contains(&("acme".to_owned(), None))
    })
    .await;
}

#[tokio::test]
async fn the_shared_tier_serves_one_replicas_load_to_the_other_until_invalidated() {
    let Some(transport) = redis() else { return };
    let (a, b, _stop) = replicas(&transport).await;
    let loads = Arc::new(AtomicUsize::new(0));
    // Redis keys outlive the test: a name of its own keeps runs apart.
    let name = format!("test.shared.{}", uuid::Uuid::now_v7().simple());
    let spec = NamespaceSpec::new(name.as_str());
    let on_a: Namespace<Vec<String>> = a.namespace(spec.clone());
    let on_b: Namespace<Vec<String>> = b.namespace(spec);
    let read = |namespace: Namespace<Vec<String>>, loads: Arc<AtomicUsize>| async move {
        namespace
            .get_or_load_shared("acme", "roles", || async {
                loads.fetch_add(1, Ordering::SeqCst);
                Ok::<_, ()>(vec!["Accounts User".to_owned()])
            })
            .await
            .unwrap()
    };
    assert_eq!(read(on_a.clone(), loads.clone()).await, ["Accounts User"]);
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    // The store into Redis is in the background: wait for it.
    let Transport::Redis(url) = &transport else {
        return;
    };
    let mut redis = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let stored = format!("cxv:{name}:4:acme:roles");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !redis::cmd("EXISTS")
        .arg(&stored)
        .query_async::<bool>(&mut redis)
        .await
        .unwrap()
    {
        assert!(Instant::now() < deadline, "the shared entry never appeared");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(read(on_b.clone(), loads.clone()).await, ["Accounts User"]);
    assert_eq!(
        loads.load(Ordering::SeqCst),
        1,
        "b read a's value from Redis"
    );
    on_a.invalidate("acme", "roles");
    eventually("b drops its copy", || on_b.get("acme", "roles").is_none()).await;
    read(on_b.clone(), loads.clone()).await;
    assert_eq!(
        loads.load(Ordering::SeqCst),
        2,
        "after the invalidation b loads again"
    );
}

#[tokio::test]
async fn a_reconnection_drops_every_entry_because_messages_were_missed() {
    let Some(transport) = redis() else { return };
    let Transport::Redis(url) = &transport else {
        return;
    };
    let (_a, b, _stop) = replicas(&transport).await;
    let on_b: Namespace<String> = b.namespace(NamespaceSpec::new("test.reconnect"));
    load(&on_b, "acme", "k", "v").await;
    assert!(on_b.get("acme", "k").is_some());
    // Cut every pub/sub connection, as a Redis restart would.
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let _: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut connection)
        .await
        .unwrap();
    eventually("b drops what it held", || on_b.get("acme", "k").is_none()).await;
    eventually("b reconnects", || b.connected()).await;
}

#[tokio::test]
async fn without_a_transport_entries_are_trusted_for_the_unshared_ttl_only() {
    let cache = Cache::new(CacheConfig {
        unshared_ttl_ms: 50,
        ..config()
    });
    let namespace: Namespace<String> = cache.namespace(NamespaceSpec::new("test.unshared"));
    load(&namespace, "acme", "k", "v").await;
    assert_eq!(namespace.get("acme", "k").as_deref(), Some("v"));
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert_eq!(namespace.get("acme", "k"), None);
}

#[tokio::test]
async fn keys_never_answer_another_tenants_lookup() {
    let cache = Cache::new(config());
    let namespace: Namespace<String> = cache.namespace(NamespaceSpec::new("test.tenants"));
    load(&namespace, "acme", "k", "acme's").await;
    assert_eq!(namespace.get("globex", "k"), None);
    assert_eq!(
        load(&namespace, "globex", "k", "globex's").await,
        "globex's"
    );
    assert_eq!(namespace.get("acme", "k").as_deref(), Some("acme's"));
}

#[tokio::test]
async fn a_load_that_raced_an_invalidation_is_not_stored() {
    let cache = Cache::new(config());
    let namespace: Namespace<String> = cache.namespace(NamespaceSpec::new("test.race"));
    let ticket = namespace.ticket();
    // The source changed and said so while the old value was being read.
    namespace.invalidate("acme", "k");
    assert!(!namespace.insert("acme", "k", "old".into(), ticket));
    assert_eq!(namespace.get("acme", "k"), None);
    assert!(namespace.insert("acme", "k", "new".into(), namespace.ticket()));
    assert_eq!(namespace.get("acme", "k").as_deref(), Some("new"));
}

#[tokio::test]
async fn invalidating_by_predicate_drops_only_the_matches_here() {
    let cache = Cache::new(config());
    let namespace: Namespace<String> = cache.namespace(NamespaceSpec::new("test.predicate"));
    for (key, user) in [("key1", "ann"), ("key2", "bob"), ("key3", "ann")] {
        load(&namespace, "acme", key, user).await;
    }
    load(&namespace, "globex", "key1", "ann").await;
    namespace.invalidate_matching("acme", |_, user| user == "ann");
    let held: Vec<_> = [
        ("acme", "key1"),
        ("acme", "key2"),
        ("acme", "key3"),
        ("globex", "key1"),
    ]
    .iter()
    .map(|(t, k)| namespace.get(t, k))
    .collect();
    assert_eq!(
        held,
        [None, Some("bob".to_owned()), None, Some("ann".to_owned())]
    );
}
