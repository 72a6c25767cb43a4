//! Manual smoke test against a running broker (not part of the test suite):
//! `cargo run -p riptide-workloads --example smoke -- 127.0.0.1:9092 [topic]`

// madsim's tokio::time::Instant is std's (see the crate root).
#![cfg_attr(madsim, allow(clippy::disallowed_methods))]

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use riptide_workloads::{
    Client, ClientConfig, Connection, ConnectionOptions, OffsetSpec, TcpConnector,
};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:9092".to_string());
    let topic = args.next().unwrap_or_else(|| "riptide-smoke".to_string());
    for start in [0, 3] {
        let opts = ConnectionOptions {
            api_versions_version: start,
            ..ConnectionOptions::default()
        };
        match Connection::open(&TcpConnector, &addr, &opts).await {
            Ok(conn) => {
                for api in [
                    ApiKey::ApiVersions,
                    ApiKey::Metadata,
                    ApiKey::Produce,
                    ApiKey::Fetch,
                    ApiKey::ListOffsets,
                    ApiKey::CreateTopics,
                ] {
                    println!(
                        "ApiVersions from v{start}: {api:?} broker {:?} -> use {:?}",
                        conn.versions().range(api),
                        conn.pick_version(api).ok()
                    );
                }
            }
            Err(e) => println!("ApiVersions from v{start}: {e}"),
        }
    }
    let mut client = Client::new(TcpConnector, vec![addr], ClientConfig::default());

    println!(
        "create_topic: {:?}",
        client.create_topic(&topic, 2, &[]).await
    );
    for p in 0..2 {
        for i in 0..3 {
            let key = Some(Bytes::from(format!("k{i}")));
            let value = Bytes::from(format!("value-{p}-{i}"));
            let r = client.produce(&topic, p, key, value, -1).await;
            println!("produce p{p} #{i}: {r:?}");
        }
        let earliest = client.list_offsets(&topic, p, OffsetSpec::Earliest).await;
        let latest = client.list_offsets(&topic, p, OffsetSpec::Latest).await;
        println!("list_offsets p{p}: earliest {earliest:?} latest {latest:?}");
        match client.fetch(&topic, p, 1, 100, 1 << 20).await {
            Ok(r) => {
                println!(
                    "fetch p{p} from 1: hw {} lso {}",
                    r.high_watermark, r.log_start_offset
                );
                for rec in r.records {
                    println!(
                        "  {} {:?} {:?} ts={}",
                        rec.offset, rec.key, rec.value, rec.timestamp
                    );
                }
            }
            Err(e) => println!("fetch p{p}: {e} (definite: {})", e.is_definite()),
        }
    }
    let t0 = tokio::time::Instant::now();
    let waited = client.fetch(&topic, 0, 3, 500, 1 << 20).await;
    println!(
        "long-poll fetch at the end: {:?} after {:?}",
        waited.map(|r| r.records.len()),
        t0.elapsed()
    );
    let missing = client.fetch(&topic, 7, 0, 0, 1024).await;
    println!("fetch missing partition: {missing:?}");
    println!("{client:?}");
}
