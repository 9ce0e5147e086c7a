//! The cases every provider passes. Each takes a [`Fixture`] (a way to connect to one provider's
//! real server) and uses topics and groups of its own, so that cases run side by side on a shared
//! server.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use microframework_messaging::{
    Broker, ConsumerConfig, HandlerError, MESSAGE_ID, Message, Messaging, Outgoing, Subscription,
};
use microframework_telemetry::TraceContext;
use tokio::sync::mpsc;

/// How to reach one provider's server.
#[async_trait]
pub(crate) trait Fixture: Send + Sync + 'static {
    /// A new connection.
    async fn broker(&self) -> Arc<dyn Broker>;
    /// Whether messages with the same key arrive in publish order.
    fn orders_by_key(&self) -> bool {
        true
    }
    /// Whether the broker has request-reply.
    fn request_reply(&self) -> bool {
        false
    }
}

/// A name no other case or run uses, under `mfc.` (the NATS fixture's stream captures `mfc.>`).
pub(crate) fn unique(base: &str) -> String {
    format!("mfc.{base}-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// Fast retries for tests.
pub(crate) fn consumer() -> ConsumerConfig {
    ConsumerConfig {
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(200),
        handler_timeout: Duration::from_secs(5),
        ..ConsumerConfig::default()
    }
}

/// Installs a registry-based subscriber once, so that trace contexts travel through spans.
pub(crate) fn tracing_registry() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        use tracing_subscriber::layer::SubscriberExt;
        let subscriber = tracing_subscriber::Registry::default()
            .with(tracing_subscriber::EnvFilter::new("info"))
            .with(tracing_subscriber::fmt::layer().with_test_writer());
        let _ = tracing::subscriber::set_global_default(subscriber);
    });
}

/// Receives what handlers send, waiting at most 30 s in all for `n` items.
pub(crate) async fn collect<T>(rx: &mut mpsc::UnboundedReceiver<T>, n: usize) -> Vec<T> {
    let mut out = Vec::with_capacity(n);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while out.len() < n {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(item)) => out.push(item),
            _ => panic!("received {} of {n} messages within 30 s", out.len()),
        }
    }
    out
}

/// Nothing more arrives within `wait`.
pub(crate) async fn quiet<T: std::fmt::Debug>(rx: &mut mpsc::UnboundedReceiver<T>, wait: Duration) {
    if let Ok(Some(extra)) = tokio::time::timeout(wait, rx.recv()).await {
        panic!("unexpected delivery: {extra:?}");
    }
}

/// Waits up to 30 s for `check`.
pub(crate) async fn eventually<F: AsyncFnMut() -> bool>(what: &str, mut check: F) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "not within 30 s: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn messaging(broker: Arc<dyn Broker>) -> Messaging {
    Messaging::with_broker("conformance", broker)
}

/// Every message published reaches the group once, with its payload, key and headers; each has
/// an id and a trace context.
pub(crate) async fn publish_and_consume(f: &dyn Fixture) {
    let m = messaging(f.broker().await);
    let topic = unique("orders");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let handle = m
        .subscribe(
            Subscription::new(&topic, move |msg: Message| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(msg);
                    Ok(())
                }
            })
            .group(unique("g")),
            &consumer(),
        )
        .await
        .unwrap();
    let mut ids = HashSet::new();
    for i in 0..50 {
        let msg =
            Outgoing::new(&topic, format!("payload {i}")).key(format!("k{}", i % 5)).header("x-seq", i.to_string());
        ids.insert(m.publish(msg).await.unwrap());
    }
    let got = collect(&mut rx, 50).await;
    let mut seen = HashSet::new();
    for msg in &got {
        assert!(seen.insert(msg.id.clone()), "delivered twice: {}", msg.id);
        assert!(ids.contains(&msg.id), "unknown id {}", msg.id);
        let seq: usize = msg.header("x-seq").unwrap().parse().unwrap();
        assert_eq!(msg.payload, format!("payload {seq}").as_bytes());
        assert_eq!(msg.key.as_deref(), Some(format!("k{}", seq % 5).as_str()));
        assert_eq!(msg.header(MESSAGE_ID), Some(msg.id.as_str()));
        assert!(msg.header("traceparent").and_then(TraceContext::parse).is_some());
        assert_eq!(msg.attempt, 1);
        assert_eq!(msg.topic, topic);
    }
    quiet(&mut rx, Duration::from_millis(300)).await;
    handle.drain(Duration::from_secs(5)).await;
}

/// Messages with the same key are handled in publish order, even with several lanes.
pub(crate) async fn per_key_ordering(f: &dyn Fixture) {
    if !f.orders_by_key() {
        return;
    }
    let m = messaging(f.broker().await);
    let topic = unique("ordered");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let handle = m
        .subscribe(
            Subscription::new(&topic, move |msg: Message| {
                let tx = tx.clone();
                async move {
                    // Uneven handler times would reorder a key spread over lanes.
                    let seq: u64 = msg.header("x-seq").unwrap().parse().unwrap();
                    tokio::time::sleep(Duration::from_millis(seq % 3)).await;
                    let _ = tx.send((msg.key.clone().unwrap(), seq));
                    Ok(())
                }
            })
            .group(unique("g")),
            &ConsumerConfig { concurrency: 4, ..consumer() },
        )
        .await
        .unwrap();
    let batch: Vec<Outgoing> = (0..90)
        .map(|i| Outgoing::new(&topic, "x").key(format!("key-{}", i % 3)).header("x-seq", i.to_string()))
        .collect();
    m.publish_batch(batch).await.unwrap();
    let got = collect(&mut rx, 90).await;
    let mut per_key: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (key, seq) in got {
        per_key.entry(key).or_default().push(seq);
    }
    for (key, seqs) in per_key {
        let mut sorted = seqs.clone();
        sorted.sort_unstable();
        assert_eq!(seqs, sorted, "key {key} out of order");
        assert_eq!(seqs.len(), 30);
    }
    handle.drain(Duration::from_secs(5)).await;
}

/// A failing handler sees the message again, after a backoff, with the attempt counted; once it
/// succeeds the message is acknowledged and not delivered again, also not to the group's next
/// consumer.
pub(crate) async fn nack_redelivers_and_ack_settles(f: &dyn Fixture) {
    let m = messaging(f.broker().await);
    let topic = unique("flaky");
    let group = unique("g");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let handler = move |msg: Message| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(msg.attempt);
            if msg.attempt < 3 { Err(HandlerError::retry("not yet")) } else { Ok(()) }
        }
    };
    let handle = m.subscribe(Subscription::new(&topic, handler.clone()).group(&group), &consumer()).await.unwrap();
    m.publish(Outgoing::new(&topic, "once")).await.unwrap();
    assert_eq!(collect(&mut rx, 3).await, vec![1, 2, 3]);
    quiet(&mut rx, Duration::from_millis(500)).await;
    handle.drain(Duration::from_secs(5)).await;

    // The group's next consumer starts after the acknowledged message.
    let handle = m.subscribe(Subscription::new(&topic, handler).group(&group), &consumer()).await.unwrap();
    quiet(&mut rx, Duration::from_millis(800)).await;
    handle.drain(Duration::from_secs(5)).await;
}

/// A message that always fails is dead-lettered after `max_attempts` deliveries, does not hold
/// up the messages behind it, can be listed, and handled again after a redrive.
pub(crate) async fn dead_letter_and_redrive(f: &dyn Fixture) {
    let m = messaging(f.broker().await);
    let topic = unique("poison");
    let healed = Arc::new(AtomicU32::new(0));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let h = healed.clone();
    let handle = m
        .subscribe(
            Subscription::new(&topic, move |msg: Message| {
                let tx = tx.clone();
                let healed = h.load(Ordering::SeqCst) == 1;
                async move {
                    if msg.payload.as_ref() == b"poison" && !healed {
                        return Err(HandlerError::retry("always fails"));
                    }
                    let _ = tx.send(String::from_utf8_lossy(&msg.payload).into_owned());
                    Ok(())
                }
            })
            .group(unique("g")),
            &ConsumerConfig { max_attempts: 3, concurrency: 1, ..consumer() },
        )
        .await
        .unwrap();
    let poison = m.publish(Outgoing::new(&topic, "poison")).await.unwrap();
    for i in 0..5 {
        m.publish(Outgoing::new(&topic, format!("ok {i}"))).await.unwrap();
    }
    // The five behind it arrive (one lane, so a blocking poison message would stop them).
    let mut got = collect(&mut rx, 5).await;
    got.sort();
    assert_eq!(got, (0..5).map(|i| format!("ok {i}")).collect::<Vec<_>>());
    let mut letters = Vec::new();
    eventually("the poison message is dead-lettered", async || {
        letters = m.dead_letters(Some(&topic), 10).await.unwrap();
        !letters.is_empty()
    })
    .await;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].id(), poison);
    assert_eq!(letters[0].attempts, 3);
    assert!(letters[0].error.contains("always fails"));
    assert_eq!(letters[0].message.payload.as_ref(), b"poison");

    healed.store(1, Ordering::SeqCst);
    assert!(m.redrive(&poison).await.unwrap());
    assert_eq!(collect(&mut rx, 1).await, vec!["poison".to_owned()]);
    quiet(&mut rx, Duration::from_millis(300)).await;
    assert!(m.dead_letters(Some(&topic), 10).await.unwrap().is_empty());
    assert!(!m.redrive(&poison).await.unwrap(), "a redriven letter is gone");
    handle.drain(Duration::from_secs(5)).await;
}

/// A payload that cannot be deserialised is dead-lettered at its first delivery.
pub(crate) async fn undeserialisable_payload_is_dead_lettered_at_once(f: &dyn Fixture) {
    #[derive(serde::Deserialize)]
    struct Event {
        #[allow(dead_code)]
        id: u64,
    }
    let m = messaging(f.broker().await);
    let topic = unique("typed");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let handle = m
        .subscribe(
            Subscription::json(&topic, move |e: Event, _msg| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(e.id);
                    Ok(())
                }
            })
            .group(unique("g")),
            &consumer(),
        )
        .await
        .unwrap();
    m.publish(Outgoing::new(&topic, "{not json")).await.unwrap();
    m.publish_json(&topic, &serde_json::json!({"id": 7})).await.unwrap();
    assert_eq!(collect(&mut rx, 1).await, vec![7]);
    let mut letters = Vec::new();
    eventually("the malformed message is dead-lettered", async || {
        letters = m.dead_letters(Some(&topic), 10).await.unwrap();
        !letters.is_empty()
    })
    .await;
    assert_eq!(letters[0].attempts, 1);
    assert!(letters[0].error.contains("not the expected JSON"), "{}", letters[0].error);
    handle.drain(Duration::from_secs(5)).await;
}

/// The consumer's handler runs in the publisher's trace.
pub(crate) async fn trace_context_travels(f: &dyn Fixture) {
    tracing_registry();
    let m = messaging(f.broker().await);
    let topic = unique("traced");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let handle = m
        .subscribe(
            Subscription::new(&topic, move |_msg: Message| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(TraceContext::current().map(|cx| cx.trace_id()));
                    Ok(())
                }
            })
            .group(unique("g")),
            &consumer(),
        )
        .await
        .unwrap();
    let incoming = TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
    let span = tracing::info_span!("request", trace_id = tracing::field::Empty);
    incoming.attach_to(&span);
    {
        use tracing::Instrument;
        m.publish(Outgoing::new(&topic, "traced")).instrument(span).await.unwrap();
    }
    assert_eq!(collect(&mut rx, 1).await, vec![Some(incoming.trace_id())]);
    handle.drain(Duration::from_secs(5)).await;
}

/// Two fan-out subscribers both get a message; two consumers of one group share the messages.
pub(crate) async fn fanout_and_groups(f: &dyn Fixture) {
    let m = messaging(f.broker().await);
    let topic = unique("events");
    let group = unique("g");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let sub = |name: &'static str| {
        let tx = tx.clone();
        move |msg: Message| {
            let tx = tx.clone();
            async move {
                let _ = tx.send((name, String::from_utf8_lossy(&msg.payload).into_owned()));
                Ok(())
            }
        }
    };
    let a = m.subscribe(Subscription::new(&topic, sub("fan-a")).fanout(), &consumer()).await.unwrap();
    let b = m.subscribe(Subscription::new(&topic, sub("fan-b")).fanout(), &consumer()).await.unwrap();
    let c = m.subscribe(Subscription::new(&topic, sub("group")).group(&group), &consumer()).await.unwrap();
    let d = m.subscribe(Subscription::new(&topic, sub("group")).group(&group), &consumer()).await.unwrap();
    for i in 0..10 {
        m.publish(Outgoing::new(&topic, format!("m{i}"))).await.unwrap();
    }
    let got = collect(&mut rx, 30).await;
    let count = |name: &str| got.iter().filter(|(n, _)| *n == name).count();
    assert_eq!((count("fan-a"), count("fan-b"), count("group")), (10, 10, 10), "{got:?}");
    let group_payloads: HashSet<_> = got.iter().filter(|(n, _)| *n == "group").map(|(_, p)| p.clone()).collect();
    assert_eq!(group_payloads.len(), 10, "a group gets each message once");
    quiet(&mut rx, Duration::from_millis(300)).await;
    for h in [a, b, c, d] {
        h.drain(Duration::from_secs(5)).await;
    }
}

/// Draining lets the running handler finish and acknowledge, returns the unstarted deliveries to
/// the broker, and the group's next consumer gets exactly those: nothing lost, nothing twice.
pub(crate) async fn drain_loses_nothing(f: &dyn Fixture) {
    let m = messaging(f.broker().await);
    let topic = unique("drain");
    let group = unique("g");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (started_tx, mut started_rx) = mpsc::unbounded_channel();
    let slow = {
        let tx = tx.clone();
        move |msg: Message| {
            let tx = tx.clone();
            let started = started_tx.clone();
            async move {
                let _ = started.send(());
                tokio::time::sleep(Duration::from_millis(300)).await;
                let _ = tx.send(String::from_utf8_lossy(&msg.payload).into_owned());
                Ok(())
            }
        }
    };
    let handle = m
        .subscribe(Subscription::new(&topic, slow).group(&group), &ConsumerConfig { concurrency: 1, ..consumer() })
        .await
        .unwrap();
    for i in 0..6 {
        m.publish(Outgoing::new(&topic, format!("m{i}")).key("one-lane")).await.unwrap();
    }
    collect(&mut started_rx, 1).await;
    handle.drain(Duration::from_secs(10)).await;
    let mut handled = Vec::new();
    while let Ok(p) = rx.try_recv() {
        handled.push(p);
    }
    assert!(!handled.is_empty(), "the running handler finished during the drain");

    let fast = {
        let tx = tx.clone();
        move |msg: Message| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(String::from_utf8_lossy(&msg.payload).into_owned());
                Ok(())
            }
        }
    };
    let m2 = messaging(f.broker().await);
    let handle = m2.subscribe(Subscription::new(&topic, fast).group(&group), &consumer()).await.unwrap();
    let rest = collect(&mut rx, 6 - handled.len()).await;
    quiet(&mut rx, Duration::from_millis(800)).await;
    let mut all: Vec<String> = handled.into_iter().chain(rest).collect();
    all.sort();
    assert_eq!(all, (0..6).map(|i| format!("m{i}")).collect::<Vec<_>>(), "each message handled exactly once");
    handle.drain(Duration::from_secs(5)).await;
}

/// A request gets the responder's reply.
pub(crate) async fn request_reply(f: &dyn Fixture) {
    if !f.request_reply() {
        return;
    }
    let m = messaging(f.broker().await);
    let topic = unique("rpc");
    let responder = m.clone();
    let handle = m
        .subscribe(
            Subscription::new(&topic, move |msg: Message| {
                let responder = responder.clone();
                async move {
                    let answer = format!("hello {}", String::from_utf8_lossy(&msg.payload));
                    responder.reply(&msg, Outgoing::new("reply", answer)).await?;
                    Ok(())
                }
            })
            .group(unique("g")),
            &consumer(),
        )
        .await
        .unwrap();
    let reply = m.request(Outgoing::new(&topic, "ada"), Duration::from_secs(10)).await.unwrap();
    assert_eq!(reply.payload.as_ref(), b"hello ada");
    handle.drain(Duration::from_secs(5)).await;
}

/// One `#[tokio::test]` per case for the fixture `$fixture` (an expression giving a `Fixture`).
#[macro_export]
macro_rules! conformance {
    ($fixture:expr) => {
        $crate::conformance!(@cases $fixture;
            publish_and_consume,
            per_key_ordering,
            nack_redelivers_and_ack_settles,
            dead_letter_and_redrive,
            undeserialisable_payload_is_dead_lettered_at_once,
            trace_context_travels,
            fanout_and_groups,
            drain_loses_nothing,
            request_reply,
        );
    };
    (@cases $fixture:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let fixture = $fixture;
                $crate::suite::$case(&fixture).await;
            }
        )*
    };
}
