//! What the binding's test files share.

use std::time::Duration;

use c10d_tch::Rendezvous;

/// A port free on the loopback now (the store's).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Rank `rank` of `world` on the loopback at `port`, rank 0 hosting the
/// store, with `prefix` for its keys.
pub fn rendezvous(
    rank: usize,
    world: usize,
    port: u16,
    timeout: Duration,
    prefix: &str,
) -> Rendezvous {
    Rendezvous {
        host: "127.0.0.1".into(),
        port,
        rank,
        world,
        local_rank: rank,
        hosts_store: rank == 0,
        timeout,
        prefix: prefix.into(),
    }
}
