//! The node's webhook queue: per user, one event in flight and the others waiting behind it in
//! arrival order, so a user's events reach the backend in order; across users, in parallel.
//! Waiting and in-flight events together are bounded (`webhook.queue_size`): an event that
//! finds the queue full is refused at once, and its sender told.

use std::collections::{HashMap, VecDeque};
use switchboard::UserId;

/// What became of an event offered to the queue.
#[derive(Debug, PartialEq)]
pub enum Offered<J> {
    /// Its user had nothing in flight: send it now.
    Start(J),
    /// It waits behind its user's event in flight.
    Queued,
    /// The queue is full: it is refused.
    Full(J),
}

/// Events waiting or in flight, per user.
#[derive(Debug)]
pub struct Queue<J> {
    /// A user is here while one of its events is in flight; the deque holds those behind it.
    users: HashMap<UserId, VecDeque<J>>,
    len: usize,
    capacity: usize,
}

impl<J> Queue<J> {
    /// An empty queue that holds at most `capacity` events.
    pub fn new(capacity: usize) -> Self {
        Queue {
            users: HashMap::new(),
            len: 0,
            capacity,
        }
    }

    /// Events waiting or in flight.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Offer `user`'s event `job`.
    pub fn offer(&mut self, user: &UserId, job: J) -> Offered<J> {
        if self.len >= self.capacity {
            return Offered::Full(job);
        }
        self.len += 1;
        match self.users.get_mut(user) {
            Some(waiting) => {
                waiting.push_back(job);
                Offered::Queued
            }
            None => {
                self.users.insert(user.clone(), VecDeque::new());
                Offered::Start(job)
            }
        }
    }

    /// `user`'s event in flight is done: its next one, to send now.
    pub fn done(&mut self, user: &UserId) -> Option<J> {
        let waiting = self.users.get_mut(user)?;
        self.len -= 1;
        let next = waiting.pop_front();
        if next.is_none() {
            self.users.remove(user);
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_event_per_user_in_flight_the_rest_in_order_behind_it() {
        let (a, b) = (UserId::from("a"), UserId::from("b"));
        let mut q = Queue::new(10);
        assert_eq!(q.offer(&a, 1), Offered::Start(1));
        assert_eq!(q.offer(&a, 2), Offered::Queued);
        assert_eq!(q.offer(&a, 3), Offered::Queued);
        assert_eq!(
            q.offer(&b, 10),
            Offered::Start(10),
            "another user goes in parallel"
        );
        assert_eq!(q.done(&a), Some(2));
        assert_eq!(q.done(&a), Some(3));
        assert_eq!(q.done(&a), None);
        assert_eq!(q.offer(&a, 4), Offered::Start(4), "idle again");
        assert_eq!(q.done(&a), None);
        assert_eq!(q.done(&b), None);
        assert_eq!(q.len(), 0);
    }

    #[test]
    fn waiting_and_in_flight_events_are_bounded_together() {
        let (a, b) = (UserId::from("a"), UserId::from("b"));
        let mut q = Queue::new(2);
        assert_eq!(q.offer(&a, 1), Offered::Start(1));
        assert_eq!(q.offer(&a, 2), Offered::Queued);
        assert_eq!(q.offer(&b, 3), Offered::Full(3));
        assert_eq!(q.len(), 2);
        assert_eq!(q.done(&a), Some(2));
        assert_eq!(q.offer(&b, 4), Offered::Start(4), "room again");
        assert_eq!(
            q.done(&b),
            None,
            "a user with nothing in flight is not done twice"
        );
        assert_eq!(q.done(&b), None);
        assert_eq!(q.len(), 1);
    }
}
