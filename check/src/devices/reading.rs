//! After every operation: the hub's closes noticed, the streams compared with the shadow,
//! every frame a device received checked against the client algorithm, and the end of a case.

use super::*;

impl World {
    /// After every operation: notice the hub's closes, compare streams, read what devices
    /// received, and check that each connected reader has everything.
    pub(super) fn after(&mut self) -> Result<(), String> {
        for d in 0..self.devices.len() {
            let device = &self.devices[d];
            if !device.connected {
                continue;
            }
            let closed = self.h.closed(device.conn());
            if self.profile == Profile::Resume {
                // Section 6, "Slow consumers": the frame that finds the queue full closes it.
                let overflowed = !device.reading && device.offered > 1 + QUEUE;
                ensure_eq!(
                    closed.is_some(),
                    overflowed,
                    "device {} closed ({:?}) having stopped reading {} live frames ago, \
                     with one written and a queue of {}",
                    d,
                    closed,
                    device.offered,
                    QUEUE
                );
            }
            if let Some(closed) = closed {
                ensure_eq!(
                    closed,
                    (4008, Reason::SlowConsumer),
                    "close of device {}",
                    d
                );
                ensure!(!device.reading, "a reading client was closed as slow");
                self.disconnected(d);
            }
        }
        self.sync()?;
        for d in 0..self.devices.len() {
            self.absorb(d)?;
            self.check_complete(d)?;
        }
        self.replaying = None;
        Ok(())
    }

    /// The hub keeps exactly the shadow's streams, with the same heads and history sizes, in
    /// epochs that fit those learned from frames.
    pub(super) fn sync(&mut self) -> Result<(), String> {
        let all = USERS
            .iter()
            .map(|u| StreamId::User((*u).into()))
            .chain(ROOMS.iter().map(|r| StreamId::Room((*r).into())));
        for stream in all {
            match self.h.hub().stream_position(&stream) {
                Some(position) => self.shadow.confirm(&stream, position)?,
                None => ensure!(
                    !self.shadow.streams.contains_key(&stream),
                    "the shadow keeps {}, the hub not",
                    stream
                ),
            }
        }
        let kept: u64 = self
            .shadow
            .streams
            .values()
            .map(|s| s.kept.len() as u64)
            .sum();
        let stats = self.h.hub().stats();
        ensure_eq!(stats.history_messages as u64, kept, "messages in history");
        let recounted = self.h.hub().recounted_stats();
        ensure_eq!(stats, recounted, "gauges kept against a recount");
        Ok(())
    }

    /// Check every frame device `d` read since the last call, in the order read.
    pub(super) fn absorb(&mut self, d: usize) -> Result<(), String> {
        for conn in self.devices[d].conns.clone() {
            let frames = self.h.frames(conn);
            let view = self.views.entry(conn).or_default();
            let start = view.read;
            let new = frames[start..].to_vec();
            view.read = frames.len();
            for frame in &new {
                self.observe(d, conn, frame)
                    .map_err(|e| format!("{conn:?} of device {d}, {frame}: {e}"))?;
            }
        }
        Ok(())
    }

    /// Check one frame device `d` read on `conn` and move the device's position.
    pub(super) fn observe(&mut self, d: usize, conn: ConnId, f: &Value) -> Result<(), String> {
        let kind = f["type"].as_str().unwrap_or_default();
        let replay = self.replaying == Some(conn);
        match kind {
            // They report the head of a stream the connection is on: its epoch is learned here.
            "welcome" | "joined" | "resumed" => {
                let stream: StreamId = f["stream"].as_str().unwrap_or_default().parse()?;
                let epoch = f["epoch"].as_u64().ok_or("no epoch")?;
                return self.shadow.learn(&stream, epoch);
            }
            "error" if f["code"] == "already_live" => return Ok(()),
            "gap" if !replay => return Err("a gap outside a replay".into()),
            "gap" | "message" => {}
            _ if f["run"].is_string() => {}
            _ => return Err(format!("unexpected {kind} frame")),
        }
        let stream: StreamId = f["stream"].as_str().unwrap_or_default().parse()?;
        let device = &mut self.devices[d];
        let cursor = *device
            .cursor
            .get(&stream)
            .ok_or_else(|| format!("device {d} is not on {stream}"))?;
        let epoch = f["epoch"].as_u64().unwrap_or_default();
        let view = self.views.entry(conn).or_default();
        if kind == "gap" {
            let (from, to) = (
                f["from"].as_u64().unwrap_or(0),
                f["to"].as_u64().unwrap_or(0),
            );
            let current = self
                .shadow
                .streams
                .get(&stream)
                .ok_or_else(|| format!("a gap on {stream}, which the hub does not keep"))?;
            ensure_eq!(Some(epoch), current.epoch, "a gap in the current epoch");
            match f["reason"].as_str() {
                Some("history") => {
                    ensure_eq!(epoch, cursor.epoch, "a history gap in another epoch");
                    ensure_eq!(
                        from,
                        cursor.seq + 1,
                        "a history gap starts after the position"
                    );
                    ensure_eq!(
                        to,
                        current.oldest() - 1,
                        "a history gap ends before the oldest kept"
                    );
                    ensure!(from <= to, "an empty history gap");
                }
                Some("epoch") => {
                    let stale = epoch != cursor.epoch || cursor.seq > current.head();
                    ensure!(stale, "an epoch gap for a position of this epoch");
                    ensure_eq!(from, 1, "an epoch gap starts at 1");
                    ensure_eq!(
                        to,
                        current.oldest() - 1,
                        "an epoch gap ends before the oldest kept"
                    );
                }
                _ => return Err("unknown gap reason".into()),
            }
            device
                .cursor
                .insert(stream.clone(), Position { epoch, seq: to });
            if matches!(stream, StreamId::User(_)) {
                // Anything of the runs so far may be lost: they are no longer followed strictly.
                let user = device.user;
                device.runs.clear();
                view.runs.clear();
                let runs = self.started.iter().filter(|(u, _, _)| *u == user);
                device.cut.extend(runs.map(|(_, r, _)| r.clone()));
            }
            let last = view.last.entry(stream).or_default();
            *last = (*last).max((epoch, to));
            return Ok(());
        }
        let seq = f["seq"]
            .as_u64()
            .ok_or_else(|| format!("unexpected {kind} frame without seq"))?;
        let last = view.last.entry(stream.clone()).or_default();
        ensure!(
            (epoch, seq) > *last,
            "this connection already had {:?}",
            last
        );
        *last = (epoch, seq);
        let incarnation = self
            .shadow
            .lookup(&stream, epoch)
            .ok_or_else(|| format!("no epoch {epoch} of {stream}"))?;
        ensure!(
            seq >= 1 && seq <= incarnation.head(),
            "no message {} in {}",
            seq,
            stream
        );
        let entry = incarnation.entry(seq);
        ensure!(entry.is(f), "is not {:?}", entry);
        ensure!(device.selects(entry), "not for this device's thread");
        ensure_eq!(epoch, cursor.epoch, "the epoch changed without a gap");
        ensure!(
            seq > cursor.seq,
            "received twice or out of order (position {:?})",
            cursor
        );
        for q in cursor.seq + 1..seq {
            ensure!(
                !device.owes(incarnation, q),
                "{} of {} ({:?}) was skipped without a gap",
                q,
                stream,
                incarnation.entry(q)
            );
        }
        device.cursor.insert(stream, Position { epoch, seq });
        let (run, kind, call) = match &entry.item {
            Item::Message(_) => return Ok(()),
            Item::Run { run, kind, tool } => {
                let call = tool.map(|(tool, call)| call.unwrap_or(tool).to_owned());
                (run, *kind, call)
            }
            Item::Delta { run, message, .. } => {
                messages::assemble(device, view, replay, f, run, message)?;
                (run, "agent_message_delta", None)
            }
        };
        let strict = !device.cut.contains(run);
        if is_ending(kind) {
            *device.endings.entry(run.clone()).or_default() += 1;
        }
        let across = device
            .runs
            .entry(run.clone())
            .or_default()
            .see(kind, call.clone(), strict);
        // A connection that resumed from a position may start in the middle of a run.
        let here = view
            .runs
            .entry(run.clone())
            .or_default()
            .see(kind, call, false);
        across.map_err(|e| format!("across resumes: {e}"))?;
        here.map_err(|e| format!("on one connection: {e}"))
    }

    /// A connected device that reads has every message of its streams that it selects (only
    /// thoughts superseded while they waited for it may be missing), and the text of every
    /// message so far (only a flush window may still hold the newest deltas).
    pub(super) fn check_complete(&self, d: usize) -> Result<(), String> {
        let device = &self.devices[d];
        if !device.connected || !device.reading {
            return Ok(());
        }
        for stream in device.streams() {
            let s = self
                .shadow
                .streams
                .get(&stream)
                .ok_or_else(|| format!("{stream} dropped while device {d} is on it"))?;
            let cursor = device.cursor[&stream];
            ensure_eq!(Some(cursor.epoch), s.epoch, "device {} on {}", d, stream);
            for q in cursor.seq + 1..=s.head() {
                ensure!(
                    !device.owes(s, q),
                    "device {} never received {} of {} ({:?})",
                    d,
                    q,
                    stream,
                    s.entry(q)
                );
            }
        }
        self.check_texts(d)
    }

    /// Everyone comes back and reads: every device ends up with every message, and with every
    /// ended run's ending exactly once unless a gap announced its loss.
    pub(super) fn finish(&mut self) -> Result<(), String> {
        for d in 0..self.devices.len() {
            if self.devices[d].connected {
                self.h.set_reading(self.devices[d].conn(), true);
                self.devices[d].reading = true;
            } else {
                self.reconnect(d, true, d % 2 == 0)?;
            }
            self.after()?;
        }
        for (user, run, thread) in &self.started {
            let slot = self.slots[*user].iter().find(|s| s.run == *run);
            let ended = !matches!(slot, Some(s) if s.state != Producer::Ended);
            for (d, device) in self.devices.iter().enumerate() {
                let selects = thread.is_none() || *thread == device.thread;
                if device.user != *user || !selects {
                    continue;
                }
                let endings = device.endings.get(run).copied().unwrap_or(0);
                ensure!(
                    endings <= 1,
                    "device {d} received {endings} endings of {run}"
                );
                if ended && !device.cut.contains(run) {
                    ensure_eq!(endings, 1, "device {} and the ending of {}", d, run);
                }
            }
        }
        Ok(())
    }
}
