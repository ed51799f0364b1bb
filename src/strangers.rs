//! Connections accepted from peers that have not yet shown who they are: at a node, until the
//! connector's hello (and, with a secret, its proof); at the registry, until it registers a
//! node. Any host can open connections, so strangers get a bounded pool of their own, a
//! bounded share of it per remote address, and a deadline: whatever they do, they cannot take
//! the slots of a node's table links, of its registry connection or of registered nodes
//! (docs/RELIABILITY.md, issue 12 item 4).
//!
//! The rule when a new connection arrives and there is no room: a newer connection pushes out
//! an older stranger, never the other way round, so a peer that reconnects again and again
//! cannot keep a newcomer out (a refusal of newcomers would let it hold the pool forever, as
//! the registry's stranger timeout was defeated by reconnecting). Which one goes:
//! - the oldest stranger of the new connection's own address, when that address already holds
//!   its share ([`Strangers::new`]'s `per_address_max`);
//! - otherwise, when the pool is full, the oldest stranger of the address that holds the most.
//!
//! So an honest connector from an address that holds fewer strangers than some other address
//! is never pushed out by that other address's connections; it only needs the moment its
//! handshake or registration takes (one round trip) before it leaves the pool.
//!
//! No I/O, no clock: time arrives as an argument.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use crate::machine::{ConnId, ConnMap, Nanos};

/// The strangers of one machine.
#[derive(Debug)]
pub struct Strangers {
    capacity: usize,
    per_address_max: usize,
    timeout: Nanos,
    /// Every stranger in the order it arrived, with its deadline; entries of connections that
    /// left stay until they reach the front (then they go at once: the front is always a
    /// stranger's, so an idle machine is not woken for one that left) or a compaction
    /// (`order` holds at most [`Strangers::ORDER_SLACK`] x capacity entries).
    order: VecDeque<(Nanos, ConnId, IpAddr)>,
    /// The strangers now, by connection.
    present: ConnMap<IpAddr>,
    /// How many strangers each address holds (no entry for none).
    per_address: HashMap<IpAddr, usize>,
}

impl Strangers {
    /// Left entries `order` may carry, in multiples of the capacity, before it is compacted.
    const ORDER_SLACK: usize = 4;

    /// A pool of `capacity` strangers, at most `per_address_max` of them from one address, each
    /// given `timeout` to stop being one.
    pub fn new(capacity: usize, per_address_max: usize, timeout: Nanos) -> Strangers {
        assert!(capacity > 0 && per_address_max > 0 && per_address_max <= capacity);
        Strangers {
            capacity,
            per_address_max,
            timeout,
            order: VecDeque::new(),
            present: ConnMap::default(),
            per_address: HashMap::new(),
        }
    }

    /// Strangers now.
    pub fn len(&self) -> usize {
        self.present.len()
    }

    pub fn is_empty(&self) -> bool {
        self.present.is_empty()
    }

    /// Whether `conn` is a stranger.
    pub fn contains(&self, conn: ConnId) -> bool {
        self.present.contains_key(&conn)
    }

    /// A new connection `conn` from `ip`, accepted at `now`. Returns the older stranger it
    /// pushes out, if there was no room (the caller closes that one).
    #[must_use]
    pub fn admit(&mut self, now: Nanos, conn: ConnId, ip: IpAddr) -> Option<ConnId> {
        let own = self.per_address.get(&ip).copied().unwrap_or(0);
        let pushed_out = if own >= self.per_address_max {
            self.oldest_of(ip)
        } else if self.present.len() >= self.capacity {
            let heaviest = self
                .per_address
                .iter()
                .max_by_key(|(_, count)| **count)
                .map(|(address, _)| *address);
            heaviest.and_then(|address| self.oldest_of(address))
        } else {
            None
        };
        if let Some(old) = pushed_out {
            self.leave(old);
        }
        if self.order.len() >= Self::ORDER_SLACK * self.capacity {
            let present = &self.present;
            self.order.retain(|(_, kept, _)| present.contains_key(kept));
        }
        self.order.push_back((now + self.timeout, conn, ip));
        self.present.insert(conn, ip);
        *self.per_address.entry(ip).or_default() += 1;
        debug_assert!(self.present.len() <= self.capacity);
        pushed_out
    }

    /// `conn` is no stranger any more (it showed who it is, or it closed). Returns whether it
    /// was one.
    pub fn leave(&mut self, conn: ConnId) -> bool {
        let Some(ip) = self.present.remove(&conn) else {
            return false;
        };
        if let Some(count) = self.per_address.get_mut(&ip) {
            *count -= 1;
            if *count == 0 {
                self.per_address.remove(&ip);
            }
        }
        while let Some((_, front, _)) = self.order.front()
            && !self.present.contains_key(front)
        {
            self.order.pop_front();
        }
        true
    }

    /// The next stranger whose deadline has passed at `now` (it is no stranger any more: the
    /// caller closes it), or `None`.
    pub fn expired(&mut self, now: Nanos) -> Option<ConnId> {
        while let Some(&(deadline, conn, _)) = self.order.front() {
            if deadline > now {
                return None;
            }
            self.order.pop_front();
            if self.leave(conn) {
                return Some(conn);
            }
        }
        None
    }

    /// When the earliest deadline of a stranger falls (`None` without strangers: connections
    /// that showed who they are wake no one).
    pub fn next_deadline(&self) -> Option<Nanos> {
        self.order.front().map(|(deadline, _, _)| *deadline)
    }

    fn oldest_of(&self, ip: IpAddr) -> Option<ConnId> {
        self.order
            .iter()
            .find(|(_, conn, address)| *address == ip && self.present.contains_key(conn))
            .map(|(_, conn, _)| *conn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn only_strangers_have_deadlines() {
        let mut pool = Strangers::new(10, 5, 100);
        assert_eq!(pool.admit(0, ConnId(1), ip(1)), None);
        assert_eq!(pool.admit(5, ConnId(2), ip(2)), None);
        assert_eq!(pool.admit(9, ConnId(3), ip(3)), None);
        // One in the middle leaves: the front is still the oldest stranger's.
        assert!(pool.leave(ConnId(2)));
        assert_eq!(pool.next_deadline(), Some(100));
        // The oldest leaves: the next deadline is the next stranger's, not the one that left.
        assert!(pool.leave(ConnId(1)));
        assert_eq!(pool.next_deadline(), Some(109));
        // Nobody left is a stranger: nothing to wake for.
        assert!(pool.leave(ConnId(3)));
        assert_eq!(pool.next_deadline(), None);
        assert_eq!(pool.expired(1_000), None);
    }

    #[test]
    fn an_address_over_its_share_pushes_out_its_own_oldest() {
        let mut pool = Strangers::new(10, 2, 100);
        assert_eq!(pool.admit(0, ConnId(1), ip(9)), None);
        assert_eq!(pool.admit(1, ConnId(2), ip(1)), None);
        assert_eq!(pool.admit(2, ConnId(3), ip(9)), None);
        assert_eq!(pool.admit(3, ConnId(4), ip(9)), Some(ConnId(1)));
        assert_eq!(pool.admit(4, ConnId(5), ip(9)), Some(ConnId(3)));
        assert!(pool.contains(ConnId(2)));
        assert_eq!(pool.len(), 3);
    }

    #[test]
    fn a_full_pool_pushes_out_the_oldest_of_the_heaviest_address() {
        let mut pool = Strangers::new(4, 3, 100);
        for (n, address) in [(1, 9), (2, 9), (3, 1), (4, 9)] {
            assert_eq!(pool.admit(n, ConnId(n), ip(address)), None);
        }
        // 9 holds three, 1 holds one: a newcomer from 2 pushes out 9's oldest.
        assert_eq!(pool.admit(5, ConnId(5), ip(2)), Some(ConnId(1)));
        assert_eq!(pool.admit(6, ConnId(6), ip(3)), Some(ConnId(2)));
        // Now every address holds one or two: the honest ones are pushed out only by their
        // equals, never by an address holding fewer.
        assert!(pool.contains(ConnId(3)) && pool.contains(ConnId(5)));
    }

    #[test]
    fn strangers_expire_in_order_and_those_that_left_do_not() {
        let mut pool = Strangers::new(4, 4, 10);
        let _ = pool.admit(0, ConnId(1), ip(1));
        let _ = pool.admit(5, ConnId(2), ip(1));
        let _ = pool.admit(6, ConnId(3), ip(1));
        assert!(pool.leave(ConnId(2)));
        assert!(!pool.leave(ConnId(2)));
        assert_eq!(pool.next_deadline(), Some(10));
        assert_eq!(pool.expired(9), None);
        assert_eq!(pool.expired(16), Some(ConnId(1)));
        assert_eq!(pool.expired(16), Some(ConnId(3)));
        assert_eq!(pool.expired(16), None);
        assert!(pool.is_empty());
    }

    /// A reconnecting flood from one address, in any number, leaves the pool bounded, its
    /// bookkeeping bounded, and a stranger of another address in place.
    #[test]
    fn a_flood_from_one_address_stays_within_its_share() {
        let mut pool = Strangers::new(64, 16, 1_000_000);
        let _ = pool.admit(0, ConnId(0), ip(1));
        for n in 1..100_000u64 {
            let _ = pool.admit(n, ConnId(n), ip(9));
            if n % 3 == 0 {
                pool.leave(ConnId(n - 1));
            }
            assert!(pool.len() <= 17);
            assert!(pool.order.len() <= Strangers::ORDER_SLACK * 64 + 1);
        }
        assert!(pool.contains(ConnId(0)));
    }
}
