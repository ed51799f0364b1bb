//! The registry (`Registry<Native>`) fed arbitrary byte streams on connections from several
//! peers, console lines (setup-overlay, start, ...), closes and ticks. The first input byte
//! picks how far it is brought first (no nodes, four registered, overlay set up, run in
//! progress). Nothing may panic, and every byte it sends must be frames nodes accept.
#![no_main]

#[path = "harness.rs"]
mod harness;

use std::net::SocketAddr;

use harness::Driver;
use libfuzzer_sys::fuzz_target;
use overlay::registry::{Registry, RegistryConfig};
use overlay::wire::native::Native;
use overlay::wire::{Codec, Control, Status};

fn control(message: &Control) -> Vec<u8> {
    let mut out = Vec::new();
    Native::encode_control(message, &mut out);
    out
}

fn peer(n: u8) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, n], 40_000 + u16::from(n)))
}

fn listen(n: u8) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, n], 10_000 + u16::from(n)))
}

fuzz_target!(|data: &[u8]| {
    let Some((&phase, script)) = data.split_first() else {
        return;
    };
    let mut driver = Driver::new(Registry::<Native>::new(RegistryConfig {
        seed: u64::from(phase),
        ..RegistryConfig::default()
    }));
    let conns: Vec<_> = (1..=4).map(|n| driver.accept(peer(n))).collect();
    let mut ids = Vec::new();
    if phase & 3 >= 1 {
        driver.record = true;
        for (n, conn) in (1..=4).zip(&conns) {
            driver.feed(*conn, &control(&Control::Register { addr: listen(n) }));
        }
        driver.record = false;
        for (conn, message) in driver.outbox.drain(..) {
            if let Control::RegisterStatus {
                status: Status::Ok(id),
                ..
            } = message
            {
                ids.push((conn, id));
            }
        }
    }
    if phase & 3 >= 2 {
        driver.command("setup-overlay 2");
        for (conn, id) in &ids {
            driver.feed(
                *conn,
                &control(&Control::SetupStatus {
                    status: Status::Ok(*id),
                    info: String::new(),
                }),
            );
        }
    }
    if phase & 3 == 3 {
        driver.command("start 10");
        driver.tick(1, 4);
    }
    let mut next = 5u8;
    harness::play(&mut driver, script, |driver, _| {
        next = next.wrapping_add(1).max(5);
        driver.accept(peer(next));
    });
});
