#!/usr/bin/env bash
# Messages per second through one publisher and one consumer, for each broker that
# messaging.broker offers, on this machine's loopback brokers:
#   publish   one publisher appending events one at a time, each acknowledged by the
#             broker before the next (what a service's outbox relay does)
#   delivered the same events handled by one consumer instance (consumer group,
#             deduplication by id, acknowledgement), from the first publish to the last
#             acknowledgement
#   backlog   as many events, published while no consumer runs, then drained by one
#             consumer instance: what one consumer handles when it is the bottleneck
#
# Usage: benches/messaging.sh [EVENTS] [BROKER...]   (default 20000 events; every broker)
# Generates a system per broker, builds a small program against its platform crate in
# release mode (target/bench-target, kept between runs) and runs it with a prefix of its
# own, which it deletes at the end. Needs each broker on loopback, at the default address
# of its variable or where the variable points: REDIS_URL, AMQP_URL, NATS_URL,
# KAFKA_BROKERS (.ci/run shows how to start each one, Kafka as tansu).
set -euo pipefail

events=${1:-20000}
shift || true
brokers=("$@")
[ ${#brokers[@]} -gt 0 ] || brokers=(redis rabbitmq nats kafka)
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cargo build --quiet --manifest-path "$repo/Cargo.toml"
export CARGO_TARGET_DIR="$repo/target/bench-target"

# What differs per broker: the adapter, its URL variable and default, and how to delete
# what a run created.
adapter() {
    case $1 in
    redis) echo "RedisBroker REDIS_URL redis://127.0.0.1:6379" ;;
    rabbitmq) echo "RabbitBroker AMQP_URL amqp://guest:guest@127.0.0.1:5672/%2f" ;;
    nats) echo "NatsBroker NATS_URL nats://127.0.0.1:4222" ;;
    kafka) echo "KafkaBroker KAFKA_BROKERS 127.0.0.1:9092" ;;
    *) echo "unknown broker $1" >&2; exit 2 ;;
    esac
}

cleanup() {
    case $1 in
    redis) cat <<'RUST'
async fn cleanup(url: &str, prefix: &str, _broker: &Adapter) {
    let client = redis::Client::open(url).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg(format!("{prefix}:*")).query_async(&mut connection).await.unwrap();
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL").arg(keys).query_async(&mut connection).await.unwrap();
    }
}
RUST
    ;;
    rabbitmq) cat <<'RUST'
async fn cleanup(url: &str, _prefix: &str, broker: &Adapter) {
    let connection = lapin::Connection::connect(url, lapin::ConnectionProperties::default()).await.unwrap();
    let channel = connection.create_channel().await.unwrap();
    for queue in [broker.unrouted_queue("source"), broker.queue("bench"), broker.dead_letter_queue("bench")] {
        channel.queue_delete(queue.into(), Default::default()).await.unwrap();
    }
    for exchange in [broker.events_exchange(), broker.unrouted_exchange(), broker.dead_letter_exchange()] {
        channel.exchange_delete(exchange.into(), Default::default()).await.unwrap();
    }
    connection.close(200, "done".into()).await.unwrap();
}
RUST
    ;;
    nats) cat <<'RUST'
async fn cleanup(url: &str, _prefix: &str, broker: &Adapter) {
    let client = async_nats::connect(url).await.unwrap();
    let jetstream = async_nats::jetstream::new(client);
    let names = [
        broker.stream_name("source"),
        broker.dead_letter_stream("bench"),
        format!("KV_{}", broker.seen_bucket("bench")),
    ];
    for name in names {
        let _ = jetstream.delete_stream(&name).await;
    }
}
RUST
    ;;
    kafka) cat <<'RUST'
async fn cleanup(url: &str, prefix: &str, broker: &Adapter) {
    use rdkafka::admin::{AdminClient, AdminOptions};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let mut config = rdkafka::config::ClientConfig::new();
    config.set("bootstrap.servers", url);
    let metadata = config
        .create::<BaseConsumer>()
        .unwrap()
        .fetch_metadata(None, Duration::from_secs(10))
        .unwrap();
    let topics: Vec<String> = metadata
        .topics()
        .iter()
        .map(|topic| topic.name().to_owned())
        .filter(|name| name.starts_with(&format!("{prefix}.")))
        .collect();
    let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
    let admin: AdminClient<DefaultClientContext> = config.create().unwrap();
    let options = AdminOptions::new();
    admin.delete_topics(&topics, &options).await.unwrap();
    admin.delete_groups(&[broker.group_id("bench").as_str()], &options).await.unwrap();
}
RUST
    ;;
    *) echo "no cleanup for $1" >&2; exit 2 ;;
    esac
}

echo "== $events events per broker, one publisher, one consumer"
printf '%-10s%14s%16s%14s\n' broker "publish/s" "delivered/s" "backlog/s"
for broker in "${brokers[@]}"; do
    read -r type var default <<<"$(adapter "$broker")"
    system="$work/$broker"
    "$repo/target/debug/new-service" new bench --yes --no-git --output "$system" \
        --service catalog:rest --no-gateway --ci none --messaging "$broker" >/dev/null
    mkdir -p "$system/crates/platform/examples"
    {
        cat <<RUST
//! One publisher and one consumer through the broker: prints "publish/s delivered/s
//! backlog/s".

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use platform::messaging::{Broker, CloudEvent, Delivery, HandlerError, Subscription, handler_fn};

type Adapter = platform::messaging::$type;

#[tokio::main]
async fn main() {
    let events: usize = std::env::args().nth(1).unwrap().parse().unwrap();
    let url = std::env::var("$var").unwrap_or_else(|_| "$default".into());
RUST
        cat <<'RUST'
    let prefix = format!("bench-{}", std::process::id());
    let broker = Adapter::new(&url, &prefix).unwrap();
    let handled = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&handled);
    let handler = handler_fn(move |_event| {
        let count = Arc::clone(&count);
        async move {
            count.fetch_add(1, Ordering::Relaxed);
            Ok::<(), HandlerError>(())
        }
    });
    let subscription = Subscription {
        group: "bench".into(),
        consumer: "bench-1".into(),
        streams: vec!["source".into()],
        delivery: Delivery::default(),
    };
    let publish = async |from: usize| {
        for n in from..from + events {
            let data = serde_json::json!({ "id": n.to_string(), "name": "item" });
            let event = CloudEvent::new("/bench/source", "bench.source.item.created.v1", Some(n.to_string()), data);
            broker.publish("source", &event).await.unwrap();
        }
    };
    let wait_for = async |count: usize, started: Instant| {
        while handled.load(Ordering::Relaxed) < count {
            assert!(started.elapsed() < Duration::from_secs(600), "consumer stalled");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        started.elapsed()
    };

    // Publisher and consumer together.
    let subscriber = broker.subscribe(subscription.clone(), Arc::clone(&handler)).await.unwrap();
    let started = Instant::now();
    publish(0).await;
    let published = started.elapsed();
    let delivered = wait_for(events, started).await;
    subscriber.shutdown().await;

    // A backlog drained by one consumer.
    publish(events).await;
    let started = Instant::now();
    let subscriber = broker.subscribe(subscription, handler).await.unwrap();
    let drained = wait_for(2 * events, started).await;
    subscriber.shutdown().await;
    println!(
        "{:.0} {:.0} {:.0}",
        events as f64 / published.as_secs_f64(),
        events as f64 / delivered.as_secs_f64(),
        events as f64 / drained.as_secs_f64()
    );
    cleanup(&url, &prefix, &broker).await;
}

RUST
        cleanup "$broker"
    } >"$system/crates/platform/examples/throughput.rs"
    result=$(cd "$system" && cargo run --quiet --release -p platform --example throughput -- "$events")
    read -r publish delivered backlog <<<"$result"
    printf '%-10s%14s%16s%14s\n' "$broker" "$publish" "$delivered" "$backlog"
done
