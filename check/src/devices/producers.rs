//! What is published in a case: messages to users, threads and rooms, and agent runs (events
//! valid or not, message deltas at the right offset or not, lost producers), each mirrored in
//! the shadow of its stream.

use super::messages::{self, MESSAGES};
use super::*;

impl World {
    pub(super) fn publish_user(
        &mut self,
        user: usize,
        thread: Option<usize>,
        big: bool,
    ) -> Result<(), String> {
        self.published += 1;
        let n = self.published;
        let target = match thread {
            None => Target::User(USERS[user].into()),
            Some(t) => Target::Thread {
                user: USERS[user].into(),
                thread: THREADS[t].into(),
            },
        };
        let delivery = self.h.publish(target, message(n, big));
        self.offer(|d| d.user == user && (thread.is_none() || d.thread == thread));
        let stream = StreamId::User(USERS[user].into());
        let entry = Entry {
            item: Item::Message(n),
            thread,
        };
        let bytes = self.next_frame_bytes(&stream, thread, n, big);
        self.appended(&stream, entry, bytes, &delivery)
    }

    pub(super) fn publish_room(&mut self, room: usize, big: bool) -> Result<(), String> {
        self.published += 1;
        let n = self.published;
        let delivery = self
            .h
            .publish(Target::Room(ROOMS[room].into()), message(n, big));
        self.offer(|d| d.rooms.contains(&room));
        let stream = StreamId::Room(ROOMS[room].into());
        let members = self
            .devices
            .iter()
            .any(|d| d.connected && d.rooms.contains(&room));
        if members || self.shadow.streams.contains_key(&stream) {
            let entry = Entry {
                item: Item::Message(n),
                thread: None,
            };
            let bytes = self.next_frame_bytes(&stream, None, n, big);
            self.appended(&stream, entry, bytes, &delivery)
        } else {
            ensure_eq!(delivery.position, None, "a room without members or history");
            Ok(())
        }
    }

    /// The bytes of message `n`'s frame as the next entry of `stream`, the length history
    /// counts it by.
    fn next_frame_bytes(
        &self,
        stream: &StreamId,
        thread: Option<usize>,
        n: u64,
        big: bool,
    ) -> usize {
        let seq = self.shadow.streams.get(stream).map_or(0, Incarnation::head) + 1;
        frame_bytes(stream, seq, thread, n, big)
    }

    /// A reliable live frame goes to every connected device `to` picks: one that stopped
    /// reading has it written (the first since it stopped) or queued.
    fn offer(&mut self, to: impl Fn(&Device) -> bool) {
        for device in self.devices.iter_mut().filter(|d| d.connected && to(d)) {
            if !device.reading {
                device.offered += 1;
            }
        }
    }

    /// A sequenced message went into `stream`, its frame `bytes` long (0: not counted, in
    /// the `runs` cases, whose byte bound is out of reach); the delivery reports its position.
    pub(super) fn appended(
        &mut self,
        stream: &StreamId,
        entry: Entry,
        bytes: usize,
        delivery: &Delivery,
    ) -> Result<(), String> {
        let head = self.shadow.append(stream, entry, bytes);
        let position = delivery
            .position
            .ok_or_else(|| format!("no position for a message to {stream}"))?;
        ensure_eq!(position.seq, head, "sequence number");
        self.shadow.confirm(stream, position)
    }

    /// The next event of run slot `slot` of `user`: a new run when the slot is idle or ended
    /// (or, for some actions, a thought or a message delta for the ended run, or a delta for a
    /// run never started, all refused); otherwise an event picked by `action`, valid or not for
    /// the run's state: a thought, a tool call's start or end, a message delta (at the right
    /// offset or not, ending the message or not, after it ended or not), an ending, or a second
    /// `agent_started`.
    pub(super) fn agent(&mut self, user: usize, slot: usize, action: u8) -> Result<(), String> {
        let action = usize::from(action);
        let tool = TOOLS[(action / 10) % 2];
        let call_id = CALLS[(action / 20) % 3];
        let call = call_id.unwrap_or(tool).to_owned();
        let message = (action / 16) % MESSAGES.len();
        let s = &mut self.slots[user][slot];
        let (event, valid) = match &s.state {
            Producer::Ended if action % 7 == 0 => (thinking(), false),
            Producer::Idle | Producer::Ended if action % 7 == 1 => {
                if s.state == Producer::Idle {
                    s.run = format!("{}-unstarted{slot}", USERS[user]);
                }
                let (delta, _) = messages::delta(&s.messages[message], message, 10);
                (delta, false)
            }
            Producer::Idle | Producer::Ended => {
                s.run = format!("{}-run{}", USERS[user], self.started.len() + 1);
                s.thread = [None, Some(0), Some(1)][action % 3];
                s.state = Producer::Idle;
                s.messages = Default::default();
                self.started.push((user, s.run.clone(), s.thread));
                (AgentEvent::AgentStarted { data: json!(null) }, true)
            }
            Producer::Running(_) if action % 16 >= 10 => {
                messages::delta(&s.messages[message], message, action)
            }
            Producer::Running(open) => match action % 16 {
                0 | 1 => (thinking(), true),
                2 | 3 => {
                    let event = AgentEvent::ToolExecuting {
                        tool: tool.into(),
                        call_id: call_id.map(str::to_owned),
                        input: json!(null),
                    };
                    (event, !open.contains(&call))
                }
                4 | 5 => {
                    let event = AgentEvent::ToolCompleted {
                        tool: tool.into(),
                        call_id: call_id.map(str::to_owned),
                        output: json!(null),
                    };
                    (event, open.contains(&call))
                }
                6 => {
                    let done = AgentEvent::AgentCompleted {
                        result: json!(null),
                    };
                    let settled = s.messages.iter().all(messages::Msg::settled);
                    (done, open.is_empty() && settled)
                }
                7 => (
                    AgentEvent::AgentFailed {
                        error: "boom".into(),
                    },
                    true,
                ),
                8 => (AgentEvent::AgentCancelled { reason: None }, true),
                _ => (AgentEvent::AgentStarted { data: json!(null) }, false),
            },
        };
        let kind = event.kind();
        let tool_of = matches!(kind, EventKind::ToolExecuting | EventKind::ToolCompleted)
            .then_some((tool, call_id));
        let sent_text = match &event {
            AgentEvent::AgentMessageDelta { text, last, .. } => Some((text.clone(), *last)),
            _ => None,
        };
        let update = AgentUpdate {
            run: s.run.as_str().into(),
            agent: "planner".into(),
            thread: s.thread.map(|t| THREADS[t].into()),
            event,
        };
        let (run, thread) = (s.run.clone(), s.thread);
        let user_id: UserId = USERS[user].into();
        let stream = StreamId::User(user_id.clone());
        let head = self.shadow.streams.get(&stream).map(Incarnation::head);
        let result = self
            .h
            .with_hub(|hub, now| hub.send_agent_update(now, &user_id, update));
        match (result, valid) {
            (Ok(delivery), true) => {
                let s = &mut self.slots[user][slot];
                s.state = match (&s.state, kind) {
                    (_, EventKind::AgentStarted) => Producer::Running(Vec::new()),
                    (_, kind) if kind.is_ending() => Producer::Ended,
                    (Producer::Running(open), EventKind::ToolExecuting) => {
                        Producer::Running([open.as_slice(), &[call]].concat())
                    }
                    (Producer::Running(open), EventKind::ToolCompleted) => {
                        Producer::Running(open.iter().filter(|c| **c != call).cloned().collect())
                    }
                    (state, _) => state.clone(),
                };
                let item = match sent_text {
                    Some((text, last)) => {
                        let m = &mut s.messages[message];
                        m.opened = true;
                        m.ended |= last;
                        m.text.push_str(&text);
                        Item::Delta {
                            run,
                            message: MESSAGES[message],
                            text: m.text.clone(),
                            last,
                            at: self.h.now(),
                        }
                    }
                    None => Item::Run {
                        run,
                        kind: kind.as_str(),
                        tool: tool_of,
                    },
                };
                let entry = Entry { item, thread };
                self.appended(&stream, entry, 0, &delivery)?;
                if kind == EventKind::AgentThinking {
                    self.supersede_for_waiting(user, &stream);
                }
                Ok(())
            }
            (Err(PublishError::Run(_)), false) => {
                let now = self.shadow.streams.get(&stream).map(Incarnation::head);
                ensure_eq!(now, head, "a refused event took a sequence number");
                Ok(())
            }
            (result, valid) => Err(format!(
                "{} of {run}: the hub answered {result:?}, the automaton says valid={valid}",
                kind.as_str()
            )),
        }
    }

    /// A thought was just appended to `user`'s `stream`: for each of the user's devices that
    /// is not connected and reading, a full queue may shed it, and the older thoughts of its
    /// run after the device's position may still wait in its queue (or come in one replay
    /// with it), so the new one may replace them.
    fn supersede_for_waiting(&mut self, user: usize, stream: &StreamId) {
        let Some(incarnation) = self.shadow.streams.get(stream) else {
            return;
        };
        let head = incarnation.head();
        for device in &mut self.devices {
            if device.user == user && !(device.connected && device.reading) {
                // What it read is read; only what follows its position can still wait.
                let after = (device.cursor.get(stream))
                    .filter(|p| incarnation.epoch == Some(p.epoch))
                    .map_or(0, |p| p.seq);
                device.supersede(incarnation, after, head);
                device.superseded.insert((incarnation.id, head));
            }
        }
    }

    pub(super) fn producer_lost(&mut self, user: usize, slot: usize) -> Result<(), String> {
        let s = self.slots[user][slot].clone();
        let (user_id, run_id): (UserId, RunId) = (USERS[user].into(), s.run.as_str().into());
        let lost = (self.h).with_hub(|hub, now| hub.producer_lost(now, &user_id, &run_id));
        let running = matches!(s.state, Producer::Running(_));
        ensure!(
            lost.is_some() == running,
            "producer_lost of {user_id:?}'s {run_id:?} reported {lost:?}; in progress: {running}"
        );
        if running {
            self.slots[user][slot].state = Producer::Ended;
            let entry = Entry {
                item: Item::Run {
                    run: s.run,
                    kind: "producer_lost",
                    tool: None,
                },
                thread: s.thread,
            };
            self.shadow.append(&StreamId::User(user_id), entry, 0);
        }
        Ok(())
    }
}

fn thinking() -> AgentEvent {
    AgentEvent::AgentThinking {
        thought: "hm".into(),
    }
}
