//! Events to NATS JetStream: one stream holding `{prefix}.>`, made if missing; each event
//! on `{prefix}.{tenant}.{entity}.{action}` with its id as `Nats-Msg-Id`, so JetStream
//! drops a re-send within the stream's duplicate window.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;

use crate::WorkerError;
use crate::config::EventsConfig;
use crate::event::Event;

/// How long JetStream remembers message ids: a relay that crashed and re-sends within it
/// adds nothing to the stream.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(15 * 60);

/// How long a publish waits for its acknowledgement.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection to JetStream for publishing events.
#[derive(Clone)]
pub struct NatsSink {
    jetstream: jetstream::Context,
    prefix: String,
    max_in_flight: usize,
}

impl NatsSink {
    /// Connects to `events.nats_url` and makes the stream if it is missing.
    pub async fn connect(config: &EventsConfig) -> Result<NatsSink, WorkerError> {
        let url = config
            .nats_url
            .as_deref()
            .ok_or_else(|| WorkerError::Config("events.nats_url is not set".into()))?;
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(5))
            .connect(url)
            .await
            .map_err(|e| WorkerError::Nats(format!("cannot connect to {url}: {e}")))?;
        let max_in_flight = config.max_in_flight.clamp(1, 65_536);
        let jetstream = jetstream::context::ContextBuilder::new()
            .timeout(ACK_TIMEOUT)
            .max_ack_inflight(max_in_flight)
            .backpressure_on_inflight(true)
            .build(client);
        jetstream
            .get_or_create_stream(jetstream::stream::Config {
                name: config.stream.clone(),
                subjects: vec![format!("{}.>", config.subject_prefix)],
                duplicate_window: DUPLICATE_WINDOW,
                ..Default::default()
            })
            .await
            .map_err(|e| {
                WorkerError::Nats(format!("cannot make the stream {}: {e}", config.stream))
            })?;
        Ok(NatsSink {
            jetstream,
            prefix: config.subject_prefix.clone(),
            max_in_flight,
        })
    }

    /// Publishes `events` in order, at most `events.max_in_flight` unacknowledged at once;
    /// returns once every one is acknowledged, or at the first failure (the caller
    /// re-sends them all: those already stored are dropped as duplicates).
    /// `origin` names the publishing process (see [`crate::live`]); `parents` holds each
    /// event's `traceparent` (its delivery's span) when trace export is on.
    pub async fn publish(
        &self,
        events: &[Arc<Event>],
        parents: &[Option<String>],
        origin: &str,
    ) -> Result<(), WorkerError> {
        let mut acks = std::collections::VecDeque::with_capacity(self.max_in_flight);
        for (i, event) in events.iter().enumerate() {
            let body = serde_json::to_vec(event.as_ref())
                .map_err(|e| WorkerError::Nats(format!("cannot encode event {}: {e}", event.id)))?;
            let message = jetstream::message::PublishMessage::build()
                .payload(body.into())
                .message_id(&event.id)
                .header("Codexion-Seq", event.seq.to_string().as_str())
                .header(crate::live::ORIGIN_HEADER, origin)
                .header(
                    prefiq::telemetry::TRACEPARENT,
                    // The delivery's span, or the write's, when trace export is on; else
                    // a stand-in span id (W3C forbids all zeros) that still names the
                    // trace.
                    parents
                        .get(i)
                        .cloned()
                        .flatten()
                        .or_else(|| event.trace_parent.clone())
                        .unwrap_or_else(|| format!("00-{}-0000000000000001-01", event.trace_id))
                        .as_str(),
                );
            let ack = self
                .jetstream
                .send_publish(event.subject(&self.prefix), message)
                .await
                .map_err(|e| {
                    WorkerError::Nats(format!("cannot publish event {}: {e}", event.id))
                })?;
            acks.push_back(ack);
            if acks.len() >= self.max_in_flight
                && let Some(ack) = acks.pop_front()
            {
                ack.await.map_err(|e| {
                    WorkerError::Nats(format!("an event was not acknowledged: {e}"))
                })?;
            }
        }
        for ack in acks {
            ack.await
                .map_err(|e| WorkerError::Nats(format!("an event was not acknowledged: {e}")))?;
        }
        Ok(())
    }
}
