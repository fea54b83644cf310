//! The devices' side of a case: connecting, the operations on devices (drops, reconnects
//! with positions, slow reading, resumes on a live connection) and the passing of time.

use super::*;

impl World {
    pub(super) fn new(
        history: u8,
        flush: Duration,
        specs: &[DeviceSpec],
        profile: Profile,
    ) -> Option<Self> {
        let devices: Vec<Device> = specs
            .iter()
            .take(MAX_DEVICES)
            .map(|d| Device {
                user: usize::from(d.user) % USERS.len(),
                thread: thread_of(d.thread),
                rooms: (0..ROOMS.len())
                    .filter(|r| d.rooms & (1 << r) != 0)
                    .collect(),
                conns: Vec::new(),
                connected: false,
                reading: true,
                offered: 0,
                cursor: BTreeMap::new(),
                runs: HashMap::new(),
                cut: HashSet::new(),
                endings: HashMap::new(),
                superseded: BTreeSet::new(),
                texts: HashMap::new(),
            })
            .collect();
        if devices.is_empty() {
            return None;
        }
        let mut config = config(history, profile);
        config.limits.message_flush = flush;
        let slot = Slot {
            run: String::new(),
            thread: None,
            state: Producer::Idle,
            messages: Default::default(),
        };
        Some(Self {
            shadow: Shadow {
                history: config.history.max_messages as u64,
                max_bytes: config.history.max_bytes,
                counts_bytes: profile == Profile::Resume,
                ..Shadow::default()
            },
            h: Harness::new(config),
            devices,
            views: HashMap::new(),
            slots: vec![vec![slot; 2]; USERS.len()],
            started: Vec::new(),
            published: 0,
            replaying: None,
            flush,
            profile,
        })
    }

    pub(super) fn open_for(&self, d: usize) -> Open {
        let device = &self.devices[d];
        let mut open = Open::new(USERS[device.user]);
        if let Some(t) = device.thread {
            open = open.thread(THREADS[t]);
        }
        open
    }

    /// Every device connects and joins its rooms before anything is published: the `welcome`
    /// and `joined` positions (seq 0) are where each starts on its streams.
    pub(super) fn connect_all(&mut self) -> Result<(), String> {
        for d in 0..self.devices.len() {
            let conn = self
                .h
                .open(self.open_for(d))
                .map_err(|e| format!("open refused: {e}"))?;
            self.shadow.ensure(&self.devices[d].user_stream());
            let device = &mut self.devices[d];
            device.conns.push(conn);
            device.connected = true;
            for r in device.rooms.clone() {
                self.h
                    .send(conn, &json!({"type": "join", "room": ROOMS[r]}).to_string());
                self.shadow.ensure(&StreamId::Room(ROOMS[r].into()));
            }
            self.sync()?;
            let frames = self.h.frames(conn).to_vec();
            let kinds: Vec<&str> = frames
                .iter()
                .map(|f| f["type"].as_str().unwrap_or(""))
                .collect();
            let mut expected = vec!["welcome"];
            expected.extend(self.devices[d].rooms.iter().map(|_| "joined"));
            ensure_eq!(kinds, expected, "frames on connecting");
            for f in &frames {
                let stream: StreamId = f["stream"].as_str().unwrap_or("").parse()?;
                ensure_eq!(f["seq"].as_u64(), Some(0), "nothing published yet");
                let epoch = f["epoch"].as_u64().unwrap_or(0);
                self.shadow.learn(&stream, epoch)?;
                self.devices[d]
                    .cursor
                    .insert(stream, Position { epoch, seq: 0 });
            }
            self.views.entry(conn).or_default().read = frames.len();
        }
        Ok(())
    }

    pub(super) fn device_op(&mut self, op: &DeviceOp) -> Result<(), String> {
        let n = self.devices.len();
        match *op {
            DeviceOp::Drop { device } => {
                let d = usize::from(device) % n;
                if self.devices[d].connected {
                    self.h.drop_connection(self.devices[d].conn());
                    self.disconnected(d);
                }
            }
            DeviceOp::Reconnect {
                device,
                drain,
                by_join,
            } => {
                let d = usize::from(device) % n;
                if !self.devices[d].connected {
                    self.reconnect(d, drain, by_join)?;
                }
            }
            DeviceOp::Reading { device, reading } => {
                let d = usize::from(device) % n;
                if self.devices[d].connected {
                    self.h.set_reading(self.devices[d].conn(), reading);
                    self.devices[d].reading = reading;
                    if reading {
                        // It read everything written and queued.
                        self.devices[d].offered = 0;
                    }
                }
            }
            DeviceOp::Tick { ms } => self.advance(self.profile.tick(ms))?,
            DeviceOp::LongTick => {
                self.advance(self.profile.long_tick())?;
                for s in self.shadow.streams.values_mut() {
                    s.kept.clear();
                }
                self.forget_idle_streams();
            }
        }
        Ok(())
    }

    /// Move the clock; runs that idled out meanwhile ended with `producer_lost`, in the order
    /// their reports give.
    pub(super) fn advance(&mut self, by: Duration) -> Result<(), String> {
        self.h.advance(by);
        self.shadow.clock += by;
        if let Some(max_age) = self.profile.max_age() {
            self.shadow.expire(max_age);
            self.forget_idle_streams();
        }
        let mut lost = Vec::new();
        for (user, name) in USERS.iter().enumerate() {
            for (slot, s) in self.slots[user].iter().enumerate() {
                if !matches!(s.state, Producer::Running(_)) {
                    continue;
                }
                let user_id: UserId = (*name).into();
                let report = self.h.hub().run_report(&user_id, &s.run.as_str().into());
                let report = report.ok_or_else(|| format!("no report of running {}", s.run))?;
                if let Some(ending) = report.ended {
                    ensure_eq!(ending, EventKind::ProducerLost, "{} idled out", s.run);
                    let seq = report.events.last().map_or(0, |e| e.seq);
                    lost.push((user, seq, slot));
                }
            }
        }
        lost.sort_unstable();
        for (user, seq, slot) in lost {
            let s = &mut self.slots[user][slot];
            s.state = Producer::Ended;
            let entry = Entry {
                item: Item::Run {
                    run: s.run.clone(),
                    kind: "producer_lost",
                    tool: None,
                },
                thread: s.thread,
            };
            let head = self
                .shadow
                .append(&StreamId::User(USERS[user].into()), entry, 0);
            ensure_eq!(
                head,
                seq,
                "sequence number of {}'s idle producer_lost",
                USERS[user]
            );
        }
        Ok(())
    }

    /// A connected, reading device asks to resume one of its streams from its position: the
    /// answer is `resumed` (after whatever was missing) or `already_live`.
    pub(super) fn resume_live(&mut self, d: usize, room: Option<usize>) -> Result<(), String> {
        let device = &self.devices[d];
        if !device.connected || !device.reading {
            return Ok(());
        }
        let stream = match room {
            None => device.user_stream(),
            Some(r) if device.rooms.contains(&r) => StreamId::Room(ROOMS[r].into()),
            Some(_) => return Ok(()),
        };
        let p = device.cursor[&stream];
        let conn = device.conn();
        let frame = json!({"type": "resume", "streams": [
            {"stream": stream, "epoch": p.epoch, "seq": p.seq}
        ]});
        let before = self.h.frames(conn).len();
        self.h.send(conn, &frame.to_string());
        self.replaying = Some(conn);
        let answer: Vec<String> = self.h.frames(conn)[before..]
            .iter()
            .filter(|f| matches!(f["type"].as_str(), Some("resumed" | "error")))
            .map(|f| format!("{}{}", f["type"], f["code"]))
            .collect();
        let ok = answer == [r#""resumed"null"#] || answer == [r#""error""already_live""#];
        ensure!(ok, "resume of {stream} answered {answer:?}");
        Ok(())
    }

    /// The sweep forgets the streams nobody is on that hold nothing.
    fn forget_idle_streams(&mut self) {
        let idle: Vec<StreamId> = (self.shadow.streams.iter())
            .filter(|(stream, s)| s.is_empty() && !self.interest(stream))
            .map(|(stream, _)| stream.clone())
            .collect();
        for s in idle {
            self.shadow.remove(&s);
        }
    }

    /// True if the hub keeps `stream` for someone on it.
    pub(super) fn interest(&self, stream: &StreamId) -> bool {
        self.devices.iter().any(|d| {
            d.connected
                && match stream {
                    StreamId::User(u) => USERS[d.user] == u.as_str(),
                    StreamId::Room(r) => d.rooms.iter().any(|&i| ROOMS[i] == r.as_str()),
                }
        })
    }

    /// Device `d`'s connection closed: streams nobody is on any more and with nothing in
    /// history are dropped.
    pub(super) fn disconnected(&mut self, d: usize) {
        self.devices[d].connected = false;
        for stream in self.devices[d].streams() {
            let empty = self
                .shadow
                .streams
                .get(&stream)
                .is_some_and(Incarnation::is_empty);
            if empty && !self.interest(&stream) {
                self.shadow.remove(&stream);
            }
        }
    }

    /// Reconnect device `d` with the client algorithm: optionally read what the old socket
    /// still held, open with the user-stream position, then resume the rooms.
    pub(super) fn reconnect(&mut self, d: usize, drain: bool, by_join: bool) -> Result<(), String> {
        let old = self.devices[d].conn();
        if drain {
            self.h.set_reading(old, true);
            self.absorb(d)?;
        }
        let device = &self.devices[d];
        let open = self
            .open_for(d)
            .resume(device.cursor[&device.user_stream()]);
        let rooms: Vec<(usize, Position)> = device
            .rooms
            .iter()
            .map(|&r| (r, device.cursor[&StreamId::Room(ROOMS[r].into())]))
            .collect();
        // The replay offers every thought after the position at once: a newer one of the
        // same run may replace an older one in the queue.
        let stream = device.user_stream();
        let after = device.cursor[&stream];
        if let Some(incarnation) = self.shadow.streams.get(&stream) {
            if incarnation.epoch == Some(after.epoch) {
                let head = incarnation.head();
                self.devices[d].supersede(incarnation, after.seq, head);
            } else {
                self.devices[d].supersede(incarnation, 0, incarnation.head());
            }
        }
        let conn = self
            .h
            .open(open)
            .map_err(|e| format!("reconnect refused: {e}"))?;
        self.replaying = Some(conn);
        let device = &mut self.devices[d];
        device.conns.push(conn);
        device.connected = true;
        device.reading = true;
        device.offered = 0;
        for stream in device.streams() {
            self.shadow.ensure(&stream);
        }
        if by_join {
            for (r, p) in rooms {
                let since = json!({"epoch": p.epoch, "seq": p.seq});
                let frame = json!({"type": "join", "room": ROOMS[r], "since": since});
                self.h.send(conn, &frame.to_string());
            }
        } else if !rooms.is_empty() {
            let streams: Vec<Value> = rooms
                .iter()
                .map(|(r, p)| {
                    let stream = StreamId::Room(ROOMS[*r].into());
                    json!({"stream": stream, "epoch": p.epoch, "seq": p.seq})
                })
                .collect();
            let frame = json!({"type": "resume", "streams": streams});
            self.h.send(conn, &frame.to_string());
        }
        Ok(())
    }
}
