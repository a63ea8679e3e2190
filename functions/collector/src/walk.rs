//! The walk: the same for every source. A source's plan says which requests to make and
//! what each answer means; the walk owns the rest: holds, the host's circuit breaker and
//! rate limiter, retries, the deadline, the raw archive (before parsing), the quarantine,
//! de-duplication, the flush to the stream, and the cursor that lets the next invocation
//! resume where this one stopped.
//!
//! - [`Walk::Single`]: one request.
//! - [`Walk::Pages`]: pages requested concurrently (the gate bounds requests per host);
//!   the first short page ends the walk and the pages not yet started are skipped.
//! - [`Walk::Chain`]: one request after another, each answer naming the next (a cursor
//!   token, or the next time window). Sequential; an interrupted chain resumes from the
//!   step it stopped at, and a walk whose last answer names a mark (a time window's
//!   high-water mark) leaves it for the next walk to start from.

use crate::breaker::{Breaker, BreakerPolicy};
use crate::deadline::Deadline;
use crate::fetch::{fetch, FetchError, FetchStats, Guards, Upstream};
use crate::ratelimit::HostGate;
use crate::sink::StreamRecord;
use crate::state::{edge_of, hold_key, Cursor, HoldState};
use crate::{CollectError, Collector, Summary};
use chrono::Utc;
use futures_util::StreamExt;
use pricewire_pipeline::adapters::s3::Object;
use pricewire_pipeline::archive::{self, meta};
use pricewire_pipeline::job::Job;
use pricewire_pipeline::limits::KINESIS_RECORD_MAX_BYTES;
use pricewire_pipeline::sources::settings::SourceSettings;
use pricewire_pipeline::sources::{
    cap_text, Hold, HoldScope, Page, Plan, Quarantined, Response, Step, Walk,
    UPSTREAM_TEXT_MAX_CHARS,
};
use pricewire_pipeline::table;
use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// A walk not finished within a day starts over: its pages have moved on.
const CURSOR_MAX_AGE_MS: i64 = 24 * 3600 * 1000;
/// Quarantined records and dropped values logged one by one per run; the rest are counted
/// (they are all in the quarantine file): an upstream full of garbage cannot flood the log.
const LOGGED_PER_RUN: usize = 10;

enum StepResult {
    NotStarted,
    Done(Page),
    Failed(CollectError),
}

/// What a collected step says about the walk.
struct Collected {
    next: Option<Step>,
    resume_at: Option<Step>,
    /// The step's records' ids, for the cursor's edge.
    ids: Vec<String>,
}

struct StepRun {
    step: Step,
    result: StepResult,
    stats: FetchStats,
    archived: usize,
    archive_errors: Vec<String>,
    hold_after: Option<Hold>,
}

impl StepRun {
    fn not_started(step: Step) -> StepRun {
        StepRun {
            step,
            result: StepResult::NotStarted,
            stats: FetchStats::default(),
            archived: 0,
            archive_errors: vec![],
            hold_after: None,
        }
    }
}

/// One job's walk, with what it needs at hand.
pub(crate) struct Run<'a> {
    pub collector: &'a Collector,
    pub job: &'a Job,
    pub source: &'a SourceSettings,
    pub plan: &'a dyn Plan,
    pub upstream: &'a dyn Upstream,
    pub deadline: Option<Deadline>,
    /// One instrument of a job that names many: its cursor is its own
    /// (`CURSOR#<job>#<part>`); the host's gate and breaker, the hold check and the run
    /// record are the job's ([`Parts`]).
    pub part: Option<&'a str>,
}

/// What opening a walk found: a hold in force, or the host's gate and breaker (and the
/// cursor, read in the same round trip).
// One value per walk, moved once: boxing either variant buys nothing.
#[allow(clippy::large_enum_variant)]
enum Opened<'a> {
    Held(Summary),
    Ready {
        gate: HostGate,
        breaker: Breaker<'a>,
        prior: Option<Cursor>,
    },
}

/// What the steps of a walk came to, before the flush.
#[derive(Default)]
struct Gathered {
    records: Vec<pricewire_pipeline::envelope::Envelope>,
    quarantined: Vec<Quarantined>,
    dropped_values: Vec<String>,
    failure: Option<CollectError>,
    archive_errors: Vec<String>,
    hold: Option<Hold>,
    /// Ids the previous invocation put last (the resumed cursor's edge): met again, they
    /// are repeats, not records.
    known: Vec<String>,
}

impl Run<'_> {
    async fn archive_response(&self, response: &Response, attempt: u32) -> Result<(), String> {
        let key = archive::raw_key(
            &self.source.name,
            &self.job.name,
            response.fetched_at,
            &uuid::Uuid::new_v4().simple().to_string(),
        );
        let object = Object {
            key,
            body: archive::gzip(&response.body),
            content_type: "application/json",
            content_encoding: Some("gzip"),
            metadata: vec![
                (meta::URL, response.url.clone()),
                (meta::STATUS, response.status.to_string()),
                (
                    meta::FETCHED_AT,
                    response
                        .fetched_at
                        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                ),
                (meta::JOB, self.job.name.clone()),
                (meta::ATTEMPT, attempt.to_string()),
            ],
        };
        self.collector
            .archive
            .put(object)
            .await
            .map_err(|e| e.to_string())
    }

    async fn archive_quarantine(&self, items: &[Quarantined]) -> Result<(), String> {
        let key = archive::quarantine_key(
            &self.source.name,
            &self.job.name,
            Utc::now(),
            &uuid::Uuid::new_v4().simple().to_string(),
        );
        let object = Object {
            key,
            body: archive::gzip(&archive::json_lines(items)),
            content_type: "application/x-ndjson",
            content_encoding: Some("gzip"),
            metadata: vec![(meta::JOB, self.job.name.clone())],
        };
        self.collector
            .archive
            .put(object)
            .await
            .map_err(|e| e.to_string())
    }

    /// Fetches and normalises one step.
    async fn step(&self, step: Step, guards: Guards<'_>) -> StepRun {
        let spec = self.plan.request(&step);
        let mut stats = FetchStats::default();
        let mut archive_errors: Vec<String> = Vec::new();
        let mut archived = 0usize;
        let mut attempt = 0u32;
        let result = fetch(
            self.upstream,
            self.plan,
            &spec,
            &self.job.name,
            self.collector.http_policy,
            self.deadline,
            Some(guards),
            &mut stats,
            async |response: &Response| {
                attempt += 1;
                match self.archive_response(response, attempt).await {
                    Ok(()) => archived += 1,
                    Err(e) => archive_errors.push(e),
                }
            },
        )
        .await;
        let (result, hold_after) = match result {
            Ok(f) => (StepResult::Done(f.page), f.hold_after),
            Err(e) => (StepResult::Failed(e.into()), None),
        };
        StepRun {
            step,
            result,
            stats,
            archived,
            archive_errors,
            hold_after,
        }
    }

    fn cap_reached(&self) -> String {
        let cap = self.source.max_records_per_run;
        tracing::warn!(job = %self.job.name, cap, "record cap of the run reached; the next run resumes");
        format!(
            "job {}: stopped at the source's cap of {cap} records per run (max_records_per_run); the next run resumes",
            self.job.name
        )
    }

    /// A hold in force for this source or its host, if any (both read at once).
    async fn hold_in_force(&self) -> Option<(String, HoldState)> {
        let now = Utc::now().timestamp_millis();
        let keys = [
            hold_key(HoldScope::Source, &self.source.name),
            hold_key(HoldScope::Host, &self.source.host()),
        ];
        let store = &self.collector.state;
        let (source, host) = tokio::join!(store.load_hold(&keys[0]), store.load_hold(&keys[1]));
        for (key, read) in keys.into_iter().zip([source, host]) {
            match read {
                Ok(Some(h)) if h.until_ms > now => return Some((key, h)),
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(key, error = %e, "hold not readable; going ahead");
                }
            }
        }
        None
    }

    async fn save_hold(&self, hold: &Hold) -> String {
        // A configured quota hold replaces the module's guess of when credits return.
        let wait = match (hold.scope, self.source.quota_hold) {
            (HoldScope::Source, Some(configured)) => configured,
            _ => hold.wait,
        };
        let until_ms =
            Utc::now().timestamp_millis() + i64::try_from(wait.as_millis()).unwrap_or(i64::MAX / 2);
        let name = match hold.scope {
            HoldScope::Source => self.source.name.clone(),
            HoldScope::Host => self.source.host(),
        };
        let key = hold_key(hold.scope, &name);
        let state = HoldState {
            until_ms,
            reason: hold.reason.clone(),
        };
        let until = chrono::DateTime::from_timestamp_millis(until_ms)
            .map(|t| t.to_rfc3339())
            .unwrap_or_default();
        tracing::error!(job = %self.job.name, key, reason = %hold.reason, until, "upstream says stay away; held");
        if let Err(e) = self.collector.state.save_hold(&key, &state).await {
            tracing::error!(key, error = %e, "hold not stored; the next run will ask again");
        }
        format!("{} (held until {until})", hold.reason)
    }

    /// The saved cursor, if it belongs to this plan and is recent enough.
    async fn prior_cursor(&self) -> Option<Cursor> {
        let fingerprint = self.plan.fingerprint();
        self.collector
            .state
            .load_cursor(&self.cursor_key())
            .await
            .unwrap_or_else(|e| {
                tracing::error!(job = %self.job.name, error = %e, "cursor not readable; starting over");
                None
            })
            .filter(|c| {
                let age = Utc::now().timestamp_millis() - c.started_ms;
                // A mark is where the data was collected up to: it does not go stale.
                let usable = c.plan == fingerprint && (c.mark || age < CURSOR_MAX_AGE_MS);
                if !usable {
                    tracing::warn!(job = %self.job.name, age_ms = age,
                        "cursor of another plan, or too old; starting over");
                }
                usable
            })
    }

    /// Takes a step's outcome into the walk's totals. Returns the page's size and next
    /// step when it was collected.
    fn gather(&self, run: StepRun, g: &mut Gathered, summary: &mut Summary) -> Option<Collected> {
        summary.requests += run.stats.attempts;
        summary.retries += run.stats.retries;
        summary.throttled += run.stats.throttled;
        summary.skipped += run.stats.skipped;
        summary.archived += run.archived;
        g.archive_errors.extend(run.archive_errors);
        if g.hold.is_none() {
            g.hold = run.hold_after;
        }
        match run.result {
            StepResult::NotStarted => None,
            StepResult::Done(page) => {
                let n = page.normalised;
                let ids: Vec<String> = n.records.iter().map(|e| e.id.clone()).collect();
                g.records.extend(n.records);
                g.quarantined.extend(n.quarantined);
                g.dropped_values.extend(n.dropped_values);
                Some(Collected {
                    next: page.next,
                    resume_at: page.resume_at,
                    ids,
                })
            }
            StepResult::Failed(e) => {
                if let CollectError::Fetch(FetchError::Held { hold, .. }) = &e {
                    if g.hold.is_none() {
                        g.hold = Some(hold.clone());
                    }
                }
                let stop = matches!(&e, CollectError::Fetch(f) if f.is_stop());
                if stop && summary.stopped.is_none() && g.failure.is_none() {
                    tracing::warn!(job = %self.job.name, step = ?run.step, reason = %e, "stopping early; a later run resumes");
                    summary.stopped = Some(e.to_string());
                } else if !stop && g.failure.is_none() {
                    g.failure = Some(e);
                }
                None
            }
        }
    }

    fn cursor_key(&self) -> String {
        match self.part {
            Some(part) => format!("{}#{part}", self.job.name),
            None => self.job.name.clone(),
        }
    }

    fn summary(&self) -> Summary {
        Summary {
            job: self.job.name.clone(),
            source: self.source.name.clone(),
            ..Summary::default()
        }
    }

    /// Reads what earlier runs left: holds, the learned limit, the breaker and (with
    /// `cursor`) the cursor, at once: independent reads, one round trip.
    async fn open(&self, cursor: bool) -> Opened<'_> {
        let mut summary = self.summary();
        let host = self.source.host();
        let path = self.plan.request(&Step::Start).path;
        let limit_key = format!("{host}{}", self.source.rate_key(&path));
        let state = self.collector.state.as_ref();
        let policy = BreakerPolicy {
            threshold: self.source.breaker_threshold,
            open_for: self.source.breaker_open,
            // A probe holds its claim for as long as a request and its retries take.
            probe_lease: self.collector.http_timeout * 2,
        };
        let prior = async {
            if cursor {
                self.prior_cursor().await
            } else {
                None
            }
        };
        let (hold, learned, breaker, prior) = tokio::join!(
            self.hold_in_force(),
            state.load_limit(&limit_key),
            Breaker::load(state, &host, policy),
            prior,
        );
        if let Some((key, h)) = hold {
            let until = chrono::DateTime::from_timestamp_millis(h.until_ms)
                .map(|t| t.to_rfc3339())
                .unwrap_or_default();
            tracing::warn!(job = %self.job.name, key, reason = %h.reason, until, "held: no request this run");
            summary.held = Some(format!("{} (held until {until})", h.reason));
            summary.stopped = summary.held.clone();
            summary.skipped = 1;
            return Opened::Held(summary);
        }
        let learned = learned.unwrap_or_else(|e| {
            tracing::error!(key = %limit_key, error = %e, "learned rate limit not readable; starting from the ceiling");
            None
        });
        let gate = HostGate::new(
            limit_key.clone(),
            self.source.ceiling(&path),
            learned.as_ref(),
            self.source.concurrency,
        );
        Opened::Ready {
            gate,
            breaker,
            prior,
        }
    }

    pub async fn go(&self) -> Result<Summary, CollectError> {
        match self.open(true).await {
            Opened::Held(summary) => Ok(summary),
            Opened::Ready {
                gate,
                breaker,
                prior,
            } => self.walk(&gate, &breaker, prior).await,
        }
    }

    /// The walk itself, through the host's `gate` and `breaker`, from `prior`.
    async fn walk(
        &self,
        gate: &HostGate,
        breaker: &Breaker<'_>,
        prior: Option<Cursor>,
    ) -> Result<Summary, CollectError> {
        let mut summary = self.summary();
        let guards = Guards { gate, breaker };
        if let Some(c) = &prior {
            tracing::info!(job = %self.job.name, part = ?self.part, next = ?c.next, done = ?c.done, "resuming from cursor");
        }
        let started_ms = prior
            .as_ref()
            .map_or_else(|| Utc::now().timestamp_millis(), |c| c.started_ms);

        let mut g = Gathered {
            known: prior.as_ref().map(|c| c.edge.clone()).unwrap_or_default(),
            ..Gathered::default()
        };
        let cursor = match self.plan.walk() {
            Walk::Single => {
                let run = self.step(Step::Start, guards).await;
                if self.gather(run, &mut g, &mut summary).is_some() {
                    summary.pages = 1;
                    summary.complete = true;
                }
                None
            }
            Walk::Pages {
                page_size,
                max_pages,
            } => {
                self.pages(
                    page_size,
                    max_pages,
                    prior.as_ref(),
                    started_ms,
                    guards,
                    &mut g,
                    &mut summary,
                )
                .await
            }
            Walk::Chain { max_steps } => {
                self.chain(
                    max_steps,
                    prior.as_ref(),
                    started_ms,
                    guards,
                    &mut g,
                    &mut summary,
                )
                .await
            }
        };
        if let Some(hold) = g.hold.clone() {
            let said = self.save_hold(&hold).await;
            summary.held = Some(said.clone());
            if summary.stopped.is_none() && !summary.complete {
                summary.stopped = Some(said);
            }
        }
        self.finish(g, cursor, prior.is_some(), gate, breaker, summary)
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn pages(
        &self,
        page_size: u32,
        max_pages: u32,
        prior: Option<&Cursor>,
        started_ms: i64,
        guards: Guards<'_>,
        g: &mut Gathered,
        summary: &mut Summary,
    ) -> Option<Cursor> {
        let first = match prior.map(|c| &c.next) {
            Some(Step::Page { page }) => (*page).max(1),
            _ => 1,
        };
        let done_before: BTreeSet<u32> = prior.map(|c| c.done.clone()).unwrap_or_default();
        let pages: Vec<u32> = (first..=max_pages)
            .filter(|n| !done_before.contains(n))
            .collect();
        let halt = AtomicBool::new(false);
        // Records gathered so far: at the source's cap the pages not yet started wait for
        // the next run (what a run holds is bounded by configuration, not the upstream).
        let gathered = AtomicUsize::new(0);
        let capped = AtomicBool::new(false);
        let cap = self.source.max_records_per_run;
        let runs: Vec<StepRun> = futures_util::stream::iter(pages)
            .map(|page| {
                let (halt, gathered, capped) = (&halt, &gathered, &capped);
                async move {
                    let step = Step::Page { page };
                    if halt.load(Ordering::Relaxed) {
                        return StepRun::not_started(step);
                    }
                    let run = self.step(step, guards).await;
                    let ends = match &run.result {
                        StepResult::Done(p) => {
                            let n = p.normalised.records.len() + p.normalised.quarantined.len();
                            if gathered.fetch_add(n, Ordering::Relaxed) + n >= cap {
                                capped.store(true, Ordering::Relaxed);
                                true
                            } else {
                                p.size < page_size as usize
                            }
                        }
                        _ => true,
                    } || run.hold_after.is_some();
                    if ends {
                        halt.store(true, Ordering::Relaxed);
                    }
                    run
                }
            })
            .buffered(self.source.concurrency.max(1))
            .collect()
            .await;

        // The walk ends at the first short page; pages asked past it (concurrency) are not
        // used: in a consistent API they are empty, and if the data moved meanwhile the
        // next run sees it from page 1.
        let page_of = |s: &Step| match s {
            Step::Page { page } => *page,
            _ => 0,
        };
        let end_page = runs
            .iter()
            .filter_map(|r| match &r.result {
                StepResult::Done(p) if p.size < page_size as usize => Some(page_of(&r.step)),
                _ => None,
            })
            .min();
        let mut collected: BTreeSet<u32> = BTreeSet::new();
        let mut ids_of: std::collections::BTreeMap<u32, Vec<String>> = Default::default();
        for run in runs {
            let page = page_of(&run.step);
            if end_page.is_some_and(|end| page > end) {
                // Past the end: not used, whatever came of them (their requests count).
                let mut unused = run;
                unused.result = StepResult::NotStarted;
                unused.hold_after = None;
                self.gather(unused, g, summary);
                continue;
            }
            if let Some(c) = self.gather(run, g, summary) {
                collected.insert(page);
                ids_of.insert(page, c.ids);
            }
        }
        if capped.load(Ordering::Relaxed) && summary.stopped.is_none() {
            summary.stopped = Some(self.cap_reached());
        }
        let last = end_page.unwrap_or(max_pages);
        summary.pages = collected.iter().filter(|n| **n <= last).count() as u32;
        let have = |n: u32| collected.contains(&n) || n < first || done_before.contains(&n);
        match (1..=last).find(|n| !have(*n)) {
            None => {
                summary.complete = true;
                None
            }
            Some(next_page) => Some(Cursor {
                plan: self.plan.fingerprint(),
                next: Step::Page { page: next_page },
                done: (next_page + 1..=last).filter(|n| have(*n)).collect(),
                steps: 0,
                started_ms,
                mark: false,
                // The page before the one to resume at: taken now, or (no progress) the
                // edge this run resumed with.
                edge: match ids_of.get(&(next_page - 1)) {
                    Some(ids) => edge_of(ids),
                    None if next_page == first => prior.map(|c| c.edge.clone()).unwrap_or_default(),
                    None => Vec::new(),
                },
            }),
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn chain(
        &self,
        max_steps: u32,
        prior: Option<&Cursor>,
        started_ms: i64,
        guards: Guards<'_>,
        g: &mut Gathered,
        summary: &mut Summary,
    ) -> Option<Cursor> {
        // A mark left by a completed walk starts a new walk from there; an interrupted
        // walk goes on where it stopped.
        let (mut step, mut steps, started_ms) = match prior {
            Some(c) if c.mark => (c.next.clone(), 0, Utc::now().timestamp_millis()),
            Some(c) => (c.next.clone(), c.steps, started_ms),
            None => (Step::Start, 0, started_ms),
        };
        let mut edge = prior.map(|c| c.edge.clone()).unwrap_or_default();
        let mark = |next: Step, edge: Vec<String>| Cursor {
            plan: self.plan.fingerprint(),
            next,
            done: BTreeSet::new(),
            steps: 0,
            started_ms: Utc::now().timestamp_millis(),
            mark: true,
            edge,
        };
        loop {
            if steps >= max_steps {
                tracing::warn!(job = %self.job.name, max_steps, "walk ended at its step limit; the rest waits for the next walk");
                summary.complete = true;
                // A time window is a place in time: the next walk goes on from it. A
                // token belongs to its walk: the next one starts over.
                return matches!(step, Step::Window { .. }).then(|| mark(step, edge));
            }
            let run = self.step(step.clone(), guards).await;
            let held_after = run.hold_after.is_some();
            match self.gather(run, g, summary) {
                Some(collected) => {
                    steps += 1;
                    summary.pages += 1;
                    edge = edge_of(&collected.ids);
                    match collected.next {
                        None => {
                            summary.complete = true;
                            return collected.resume_at.map(|at| mark(at, edge));
                        }
                        Some(n) => step = n,
                    }
                    if held_after {
                        break;
                    }
                    if g.records.len() + g.quarantined.len() >= self.source.max_records_per_run {
                        summary.stopped = Some(self.cap_reached());
                        break;
                    }
                }
                None => break,
            }
        }
        // Stopped or failed before the chain ended: resume at the step not collected.
        (steps > 0 || prior.is_some()).then(|| Cursor {
            plan: self.plan.fingerprint(),
            next: step,
            done: BTreeSet::new(),
            steps,
            started_ms,
            mark: false,
            edge,
        })
    }

    /// De-duplicates, checks sizes, quarantines, puts, stores what was learned, saves or
    /// clears the cursor and records the run.
    async fn finish(
        &self,
        g: Gathered,
        cursor: Option<Cursor>,
        had_cursor: bool,
        gate: &HostGate,
        breaker: &Breaker<'_>,
        mut summary: Summary,
    ) -> Result<Summary, CollectError> {
        let Gathered {
            records,
            mut quarantined,
            dropped_values,
            failure,
            mut archive_errors,
            hold: _,
            known,
        } = g;
        summary.fetched = records.len() + quarantined.len();
        summary.dropped_values = dropped_values.len();
        if !dropped_values.is_empty() {
            let shown: Vec<String> = dropped_values
                .iter()
                .take(LOGGED_PER_RUN)
                .map(|d| cap_text(d, UPSTREAM_TEXT_MAX_CHARS))
                .collect();
            tracing::info!(job = %self.job.name, count = dropped_values.len(), first = ?shown, "optional values dropped as unusable");
        }
        // What the last invocation put last counts as seen: a page boundary that repeats a
        // row across invocations is a duplicate like one within a run.
        let mut seen: HashSet<String> = known.into_iter().collect();
        let mut out = Vec::with_capacity(records.len());
        for e in records {
            if !seen.insert(e.id.clone()) {
                summary.duplicates += 1;
                continue;
            }
            let record = StreamRecord::of(&e);
            let too_big = (record.size() > KINESIS_RECORD_MAX_BYTES).then(|| {
                format!(
                    "record of {} bytes exceeds the Kinesis record limit",
                    record.size()
                )
            });
            match too_big.or_else(|| table::fits(&e, record.data.len()).err()) {
                Some(reason) => quarantined.push(Quarantined {
                    source: e.source.clone(),
                    job: self.job.name.clone(),
                    index: None,
                    reason,
                    record: serde_json::from_slice(&record.data).unwrap_or_default(),
                }),
                None => out.push(record),
            }
        }
        summary.normalised = out.len();
        summary.quarantined = quarantined.len();
        if !quarantined.is_empty() {
            // Reasons embed upstream values: kept short in the file and the log alike.
            for q in &mut quarantined {
                q.reason = cap_text(&q.reason, UPSTREAM_TEXT_MAX_CHARS);
            }
            for q in quarantined.iter().take(LOGGED_PER_RUN) {
                tracing::warn!(job = %self.job.name, index = ?q.index, reason = %q.reason, "record quarantined");
            }
            if quarantined.len() > LOGGED_PER_RUN {
                tracing::warn!(job = %self.job.name, more = quarantined.len() - LOGGED_PER_RUN, "more records quarantined (reasons in the quarantine file)");
            }
            match self.archive_quarantine(&quarantined).await {
                Ok(()) => summary.archived += 1,
                Err(e) => archive_errors.push(e),
            }
        }
        // What was learned about the host is stored while the records go out: independent
        // writes, one round trip.
        let (put, ()) = tokio::join!(self.collector.sink.put_records(out), async {
            if self.part.is_none() {
                self.collector.remember(gate, breaker, &mut summary).await;
            }
        });
        match put {
            Ok(report) => summary.put = report.put,
            Err(e) => {
                // The cursor is not advanced: the next run fetches these steps again.
                summary.put = e.report.put;
                tracing::error!(summary = ?summary, "records not delivered");
                return Err(CollectError::Put {
                    job: self.job.name.clone(),
                    source: e,
                });
            }
        }
        let state = self.collector.state.as_ref();
        let succeeded = failure.is_none() && archive_errors.is_empty();
        // The cursor and (after a successful run) the run record: independent writes, at once.
        let (saved, ()) = tokio::join!(
            async {
                match &cursor {
                    Some(c) => state.save_cursor(&self.cursor_key(), c).await,
                    None if had_cursor => state.clear_cursor(&self.cursor_key()).await,
                    None => Ok(()),
                }
            },
            async {
                if succeeded && self.part.is_none() {
                    self.collector.record_run(&mut summary).await;
                }
            }
        );
        if let Err(e) = saved {
            tracing::error!(job = %self.job.name, error = %e, "cursor not saved; the next run starts over");
        }
        summary.resume = cursor.as_ref().map(|c| c.next.clone());
        summary.resume_page = match &summary.resume {
            Some(Step::Page { page }) => Some(*page),
            _ => None,
        };
        if let Some(e) = failure {
            tracing::error!(summary = ?summary, "collection failed after flushing what it had");
            return Err(e);
        }
        if !archive_errors.is_empty() {
            return Err(CollectError::Archive {
                job: self.job.name.clone(),
                detail: archive_errors.join("; "),
            });
        }
        Ok(summary)
    }
}

/// The most part failures kept in a summary (the rest are counted in the log).
const FAILED_PARTS_KEPT: usize = 20;

/// A job that names many instruments (`symbols = BTCUSDT,ETHUSDT,…`): one walk per
/// instrument, each with its own cursor, run concurrently up to the source's
/// `concurrency`, all through one gate and one breaker for the host, so together they
/// keep the host's limit as one walk would. A part that fails does not stop the others.
pub(crate) struct Parts<'a> {
    pub collector: &'a Collector,
    pub job: &'a Job,
    pub source: &'a SourceSettings,
    /// Each part's name (its symbol) and plan.
    pub plans: &'a [(String, Box<dyn Plan>)],
    pub upstream: &'a dyn Upstream,
    pub deadline: Option<Deadline>,
}

impl Parts<'_> {
    fn run<'p>(&'p self, name: &'p str, plan: &'p dyn Plan) -> Run<'p> {
        Run {
            collector: self.collector,
            job: self.job,
            source: self.source,
            plan,
            upstream: self.upstream,
            deadline: self.deadline,
            part: Some(name),
        }
    }

    pub async fn go(&self) -> Result<Summary, CollectError> {
        let Some((first_name, first_plan)) = self.plans.first() else {
            return Ok(Summary {
                job: self.job.name.clone(),
                source: self.source.name.clone(),
                complete: true,
                ..Summary::default()
            });
        };
        let opener = self.run(first_name, first_plan.as_ref());
        let (gate, breaker) = match opener.open(false).await {
            Opened::Held(mut summary) => {
                summary.skipped = self.plans.len() as u32;
                return Ok(summary);
            }
            Opened::Ready { gate, breaker, .. } => (gate, breaker),
        };
        let (gate, breaker) = (&gate, &breaker);
        let results: Vec<(String, Result<Summary, CollectError>)> =
            futures_util::stream::iter(self.plans.iter())
                .map(|(name, plan)| async move {
                    let run = self.run(name, plan.as_ref());
                    let prior = run.prior_cursor().await;
                    (name.clone(), run.walk(gate, breaker, prior).await)
                })
                .buffer_unordered(self.source.concurrency.max(1))
                .collect()
                .await;
        let mut summary = Summary {
            complete: true,
            ..opener.summary()
        };
        let mut failed = 0usize;
        for (name, result) in results {
            match result {
                Ok(part) => summary.absorb(part),
                Err(e) => {
                    failed += 1;
                    summary.complete = false;
                    tracing::error!(job = %self.job.name, part = %name, error = %e, "part failed; the other parts went on");
                    if summary.failed_parts.len() < FAILED_PARTS_KEPT {
                        summary.failed_parts.push(format!("{name}: {e}"));
                    }
                }
            }
        }
        summary.parts = self.plans.len() as u32;
        summary.failed_part_count = failed as u32;
        self.collector.remember(gate, breaker, &mut summary).await;
        self.collector.record_run(&mut summary).await;
        Ok(summary)
    }
}
