//! The simulator plays the telephony provider against a running callproof:
//! it places the call (a transfer, or an inbound call to a number), signs
//! every webhook as Twilio does, interprets the TwiML, answers questions from
//! a script or the terminal, pauses and resumes the recording when the
//! server asks its REST API, serves the call recording and sends the call
//! status callback, then the recording callback.

pub mod doc;
pub mod media;
pub mod provider_api;
pub mod silence;

use std::io::{BufRead, IsTerminal, Write};
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use rand::RngCore;
use time::OffsetDateTime;

use crate::provider::names::*;
use crate::provider::signature::{self, SIGNATURE_HEADER};
use doc::Node;
use media::{MediaFormat, MediaServer};
use provider_api::{ApiFailure, ApiRequest, PausedSpan, PlacedCall, ProviderApi};

/// One answer the simulated caller gives to a `<Gather>`.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// Keypad digits.
    Press(String),
    /// Speech, with the recogniser confidence to report.
    Say {
        /// Transcript.
        text: String,
        /// Confidence, 0 to 1.
        confidence: f32,
    },
    /// Nothing until the timeout.
    Silence,
    /// The caller hangs up instead of answering.
    Hangup,
}

/// How long the media endpoint stays up after the last fetch.
const MEDIA_QUIET: Duration = Duration::from_millis(1500);

/// Confidence reported for speech when none is given.
pub const DEFAULT_CONFIDENCE: f32 = 0.92;

impl FromStr for Answer {
    type Err = String;

    /// `press:1` (or just `1`), `say:yes I confirm` (or just the words),
    /// `say:yes@0.4` for a confidence, `silence`, `hangup`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s == "silence" {
            return Ok(Answer::Silence);
        }
        if s == "hangup" {
            return Ok(Answer::Hangup);
        }
        if let Some(d) = s.strip_prefix("press:") {
            if d.is_empty()
                || !d
                    .chars()
                    .all(|c| c.is_ascii_digit() || c == '*' || c == '#')
            {
                return Err(format!("press:{d}: use digits, * or #"));
            }
            return Ok(Answer::Press(d.to_owned()));
        }
        if !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_digit() || c == '*' || c == '#')
        {
            return Ok(Answer::Press(s.to_owned()));
        }
        let words = s.strip_prefix("say:").unwrap_or(s);
        let (text, confidence) = match words.rsplit_once('@') {
            Some((t, c)) => {
                let c: f32 = c.parse().map_err(|_| {
                    format!("{words}: the part after @ is a confidence from 0 to 1")
                })?;
                if !(0.0..=1.0).contains(&c) {
                    return Err(format!("{words}: confidence must be from 0 to 1"));
                }
                (t, c)
            }
            None => (words, DEFAULT_CONFIDENCE),
        };
        Ok(Answer::Say {
            text: text.to_owned(),
            confidence,
        })
    }
}

/// How the simulated call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallEnd {
    /// The server sent `<Hangup>`.
    ServerHungUp,
    /// The caller hung up (a scripted `hangup`, or no answers left).
    CallerHungUp,
    /// The server sent `<Dial>` to this number.
    Dialed(String),
    /// The TwiML ran out without a hangup; the provider ends the call.
    DocumentEnded,
    /// A webhook was answered with this HTTP status instead of TwiML.
    Refused(u16),
}

/// How the simulated call reaches the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallStart {
    /// The agent's system redirects a live call to this transfer URL (from
    /// `POST /v1/confirmations`); every webhook says `CallStatus=in-progress`.
    Transfer(String),
    /// A caller dials `to`: the provider sends the incoming-call webhook to
    /// `url` (the server's `/voice/incoming`) with `CallStatus=ringing`, then
    /// runs the TwiML it gets back as for a transfer.
    Inbound {
        /// Where the number's "a call comes in" webhook points.
        url: String,
        /// `StirVerstat` of the first webhook (e.g. `TN-Validation-Passed-A`),
        /// as Twilio sends it for a caller ID checked by STIR/SHAKEN.
        stir_verstat: Option<String>,
    },
}

impl CallStart {
    /// The URL of the first webhook.
    pub fn url(&self) -> &str {
        match self {
            CallStart::Transfer(url) | CallStart::Inbound { url, .. } => url,
        }
    }
}

/// A call to simulate.
#[derive(Debug, Clone)]
pub struct Simulation {
    /// How the call reaches the server, and its first URL.
    pub start: CallStart,
    /// Provider account SID (basic-auth user of the media endpoint).
    pub account_sid: String,
    /// Provider auth token: signs webhooks, guards the media endpoint.
    pub auth_token: String,
    /// Call status callback URL; default: the transfer URL's origin + `/voice/status`.
    pub status_callback: Option<String>,
    /// Scripted answers, in order.
    pub answers: Vec<Answer>,
    /// Ask the terminal when the script runs out (hang up otherwise).
    pub interactive: bool,
    /// Recording bytes (WAV or MP3); a generated tone when `None`.
    pub recording: Option<Bytes>,
    /// Caller number.
    pub from: String,
    /// Called number.
    pub to: String,
    /// How long to keep serving the recording after the call, until it is fetched.
    pub linger: Duration,
    /// The provider REST API the server under test calls to pause and resume
    /// the recording (its `CALLPROOF_PROVIDER_API_URL` is [`ProviderApi::url`]).
    /// The call is known to it, in progress, from its first webhook to its
    /// end. `None`: no REST API knows the call, and the recording is served as given.
    pub provider_api: Option<ProviderApi>,
    /// For testing a server's "the pause failed" path: every pause request of
    /// this call fails this way and the recording goes on unpaused
    /// (`ApiFailure::Status(500)` is an outage the server cannot read,
    /// `ApiFailure::Status(400)` a refusal, `ApiFailure::NoAnswer` a timeout).
    /// `None`: pauses work.
    pub pause_failure: Option<ApiFailure>,
    /// As `pause_failure`, for resume requests: the recording stays paused.
    pub resume_failure: Option<ApiFailure>,
    /// How long the caller takes to key in each digit of a keypad answer.
    pub key_press: Duration,
}

impl Simulation {
    /// A call transferred to `transfer_url` from `+15551230001` to `+15557654321`,
    /// with no answers, no terminal, the generated recording, no provider REST
    /// API and 20 seconds to fetch the recording.
    pub fn transfer(transfer_url: &str, account_sid: &str, auth_token: &str) -> Simulation {
        Simulation {
            start: CallStart::Transfer(transfer_url.to_owned()),
            account_sid: account_sid.to_owned(),
            auth_token: auth_token.to_owned(),
            status_callback: None,
            answers: Vec::new(),
            interactive: false,
            recording: None,
            from: DEFAULT_FROM.to_owned(),
            to: DEFAULT_TO.to_owned(),
            linger: Duration::from_secs(20),
            provider_api: None,
            pause_failure: None,
            resume_failure: None,
            key_press: Duration::ZERO,
        }
    }

    /// As [`Simulation::transfer`], for an inbound call whose first webhook goes to `url`.
    pub fn inbound(url: &str, account_sid: &str, auth_token: &str) -> Simulation {
        Simulation {
            start: CallStart::Inbound {
                url: url.to_owned(),
                stir_verstat: None,
            },
            ..Simulation::transfer(url, account_sid, auth_token)
        }
    }
}

/// The caller's number when none is given.
pub const DEFAULT_FROM: &str = "+15551230001";

/// The called number (the inbound number of an inbound call) when none is given.
pub const DEFAULT_TO: &str = "+15557654321";

/// What happened on the call.
#[derive(Debug, Clone)]
pub struct CallReport {
    /// The simulated CallSid.
    pub call_sid: String,
    /// Every `<Say>` the caller heard, in order.
    pub heard: Vec<String>,
    /// The transcript as printed.
    pub transcript: Vec<String>,
    /// How it ended.
    pub end: CallEnd,
    /// The recording's SID, if recording started.
    pub recording_sid: Option<String>,
    /// HTTP status of the recording callback, if sent.
    pub recording_callback_status: Option<u16>,
    /// HTTP status of the call status callback.
    pub status_callback_status: Option<u16>,
    /// How often the server fetched the recording.
    pub media_fetches: usize,
    /// The spans during which the recording was paused through the provider
    /// REST API, as offsets from its start; silent in [`CallReport::recording`].
    pub paused_spans: Vec<PausedSpan>,
    /// The provider REST API requests about this call, in order.
    pub api_requests: Vec<ApiRequest>,
    /// The recording as the media endpoint served it, if recording started.
    pub recording: Option<Bytes>,
    /// Every TwiML document the server answered during the call, as sent,
    /// so its voices and languages can be checked.
    pub documents: Vec<String>,
}

fn sid(prefix: &str) -> String {
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    format!("{prefix}{}", hex::encode(b))
}

/// A short 8 kHz mono 16-bit WAV tone, the recording when none is given.
pub fn sample_recording(seconds: u32) -> Bytes {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut cursor = std::io::Cursor::new(Vec::new());
    if let Ok(mut w) = hound::WavWriter::new(&mut cursor, spec) {
        for n in 0..(8000 * seconds) {
            let t = n as f32 / 8000.0;
            let _ = w.write_sample(((t * 440.0 * std::f32::consts::TAU).sin() * 8000.0) as i16);
        }
        let _ = w.finalize();
    }
    Bytes::from(cursor.into_inner())
}

fn origin(url: &str) -> Option<&str> {
    let scheme_end = url.find("://")? + 3;
    let path_start = url[scheme_end..]
        .find('/')
        .map(|i| i + scheme_end)
        .unwrap_or(url.len());
    Some(&url[..path_start])
}

struct Caller<'a> {
    sim: &'a Simulation,
    client: reqwest::Client,
    call_sid: String,
    answers: std::vec::IntoIter<Answer>,
    report_line: &'a mut dyn FnMut(&str),
    transcript: Vec<String>,
    heard: Vec<String>,
    /// The TwiML documents answered so far.
    documents: Vec<String>,
    /// The call as the provider REST API knows it.
    placed: Option<PlacedCall>,
}

impl Caller<'_> {
    fn line(&mut self, text: String) {
        (self.report_line)(&text);
        self.transcript.push(text);
    }

    fn base_params(&self) -> Vec<(String, String)> {
        [
            (ACCOUNT_SID, self.sim.account_sid.as_str()),
            (API_VERSION, "2010-04-01"),
            (CALL_SID, self.call_sid.as_str()),
            (CALL_STATUS, "in-progress"),
            (DIRECTION, "inbound"),
            (FROM, self.sim.from.as_str()),
            (TO, self.sim.to.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    /// POSTs a signed form webhook; returns status and body.
    async fn post(&self, url: &str, params: &[(String, String)]) -> anyhow::Result<(u16, String)> {
        let sig = signature::compute(&self.sim.auth_token, url, params);
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params)
            .finish();
        let resp = self
            .client
            .post(url)
            .header(SIGNATURE_HEADER, sig)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .with_context(|| format!("cannot reach {url}: is callproof serve running?"))?;
        let status = resp.status().as_u16();
        Ok((status, resp.text().await.unwrap_or_default()))
    }

    async fn next_answer(&mut self) -> Answer {
        if let Some(a) = self.answers.next() {
            return a;
        }
        if !self.sim.interactive {
            return Answer::Hangup;
        }
        let line = tokio::task::spawn_blocking(|| {
            print!("your answer (1/2/9/0, words, empty for silence, 'hangup'): ");
            let _ = std::io::stdout().flush();
            let mut s = String::new();
            std::io::stdin().lock().read_line(&mut s).map(|n| (n, s))
        })
        .await;
        match line {
            Ok(Ok((0, _))) | Err(_) | Ok(Err(_)) => Answer::Hangup,
            Ok(Ok((_, s))) if s.trim().is_empty() => Answer::Silence,
            Ok(Ok((_, s))) => s.parse().unwrap_or(Answer::Silence),
        }
    }
}

/// What the caller does after one TwiML document.
enum Step {
    /// Request this URL with these extra parameters.
    Fetch(String, Vec<(String, String)>),
    /// The call is over.
    End(CallEnd),
}

struct RecordingStart {
    callback: String,
    sid: String,
    started: Instant,
    started_at: OffsetDateTime,
}

/// Places the call and plays it to the end; `on_line` sees each transcript line as it happens.
pub async fn run(sim: &Simulation, on_line: &mut dyn FnMut(&str)) -> anyhow::Result<CallReport> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .context("cannot build the HTTP client")?;
    let call_sid = sid("CA");
    let placed = sim
        .provider_api
        .as_ref()
        .map(|api| api.place(&call_sid, sim.pause_failure, sim.resume_failure));
    let mut caller = Caller {
        sim,
        client,
        call_sid: call_sid.clone(),
        answers: sim.answers.clone().into_iter(),
        report_line: on_line,
        transcript: Vec::new(),
        heard: Vec::new(),
        documents: Vec::new(),
        placed,
    };
    let started = Instant::now();
    let mut recording: Option<RecordingStart> = None;
    let first_url = sim.start.url().to_owned();
    let mut first_extra = Vec::new();
    match &sim.start {
        CallStart::Transfer(url) => caller.line(format!("call {call_sid} transferred to {url}")),
        CallStart::Inbound { url, stir_verstat } => {
            caller.line(format!(
                "inbound call {call_sid} from {} to {} rings {url}",
                sim.from, sim.to
            ));
            first_extra.push((CALL_STATUS.to_owned(), "ringing".to_owned()));
            if let Some(v) = stir_verstat {
                first_extra.push((STIR_VERSTAT.to_owned(), v.clone()));
            }
        }
    }
    let mut step = Step::Fetch(first_url.clone(), first_extra);
    let end = loop {
        let (url, extra) = match step {
            Step::Fetch(u, e) => (u, e),
            Step::End(end) => break end,
        };
        let mut params = caller.base_params();
        for (k, v) in extra {
            match params.iter_mut().find(|(name, _)| *name == k) {
                Some(slot) => slot.1 = v,
                None => params.push((k, v)),
            }
        }
        let (status, body) = caller.post(&url, &params).await?;
        if status != 200 {
            caller.line(format!("server answered HTTP {status}: {}", body.trim()));
            break CallEnd::Refused(status);
        }
        let doc =
            doc::parse(&body).map_err(|e| anyhow::anyhow!("{e}; the document was: {body}"))?;
        caller.documents.push(body);
        step = play(&mut caller, &doc, &url, &mut recording).await;
    };
    let ended_at = Instant::now();
    let (paused_spans, api_requests) = match caller.placed.take() {
        Some(placed) => placed.end(ended_at),
        None => (Vec::new(), Vec::new()),
    };
    let ended = match &end {
        CallEnd::ServerHungUp => "the server hung up".to_owned(),
        CallEnd::CallerHungUp => "the caller hung up".to_owned(),
        CallEnd::Dialed(n) => format!("transferred to {n}"),
        CallEnd::DocumentEnded => "the TwiML ended; the call ends".to_owned(),
        CallEnd::Refused(s) => format!("ended after HTTP {s}"),
    };
    caller.line(format!("call ended: {ended}"));
    for span in &paused_spans {
        caller.line(format!(
            "recording paused from {:.3} s to {:.3} s",
            span.from.as_secs_f64(),
            span.to.as_secs_f64()
        ));
    }
    let duration = started.elapsed().as_secs().max(1);

    let mut report = CallReport {
        call_sid: call_sid.clone(),
        heard: Vec::new(),
        transcript: Vec::new(),
        end,
        recording_sid: None,
        recording_callback_status: None,
        status_callback_status: None,
        media_fetches: 0,
        paused_spans,
        api_requests,
        recording: None,
        documents: Vec::new(),
    };
    // As the provider does, the call's end is reported first; the recording
    // is ready (and its callback sent) only after the call has ended.
    let status_url = match &sim.status_callback {
        Some(u) => u.clone(),
        None => format!(
            "{}/voice/status",
            origin(&first_url).context("the call's first URL has no origin")?
        ),
    };
    let mut params = caller.base_params();
    for (k, v) in params.iter_mut() {
        if k == CALL_STATUS {
            *v = "completed".into();
        }
    }
    params.push((CALL_DURATION.into(), duration.to_string()));
    params.push((CALLBACK_SOURCE.into(), "call-progress-events".into()));
    params.push((SEQUENCE_NUMBER.into(), "0".into()));
    params.push((
        TIMESTAMP.into(),
        OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc2822)
            .unwrap_or_default(),
    ));
    let (status, _) = caller.post(&status_url, &params).await?;
    caller.line(format!("call status callback: HTTP {status}"));
    report.status_callback_status = Some(status);
    let mut media = None;
    if let Some(rec) = recording {
        // The generated tone lasts as long as the recording ran, three seconds at least.
        let ran = ended_at.saturating_duration_since(rec.started);
        let bytes = match &sim.recording {
            Some(b) => b.clone(),
            None => sample_recording(ran.as_secs_f64().ceil().max(3.0) as u32),
        };
        let spans = report.paused_spans.clone();
        let bytes = tokio::task::spawn_blocking(move || silence::silence(bytes, &spans))
            .await
            .context("silencing the paused spans stopped")?
            .map_err(|e| {
                anyhow::anyhow!("cannot silence the paused spans of the recording: {e}")
            })?;
        let format = MediaFormat::sniff(&bytes).context("the recording is neither WAV nor MP3")?;
        let recording_sid = rec.sid.clone();
        let server = MediaServer::start(
            &sim.account_sid,
            &sim.auth_token,
            &recording_sid,
            bytes.clone(),
            format,
        )
        .await
        .context("cannot start the media endpoint")?;
        let (channels, secs) = wav_shape(&bytes).unwrap_or((1, duration));
        let start_time = rec
            .started_at
            .format(&time::format_description::well_known::Rfc2822)
            .unwrap_or_default();
        let mut params: Vec<(String, String)> = [
            (ACCOUNT_SID, sim.account_sid.clone()),
            (CALL_SID, call_sid.clone()),
            (RECORDING_SID, recording_sid.clone()),
            (RECORDING_URL, server.recording_url.clone()),
            (RECORDING_STATUS, "completed".to_owned()),
            (RECORDING_DURATION, secs.to_string()),
            (RECORDING_CHANNELS, channels.to_string()),
            (RECORDING_START_TIME, start_time),
            (RECORDING_SOURCE, "StartCallRecordingTwiML".to_owned()),
            (RECORDING_TRACK, "both".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        params.sort();
        let (status, _) = caller.post(&rec.callback, &params).await?;
        caller.line(format!("recording {recording_sid} callback: HTTP {status}"));
        report.recording_callback_status = Some(status);
        report.recording_sid = Some(recording_sid);
        report.recording = Some(bytes);
        media = Some(server);
    }
    if let Some(server) = media {
        // Serve until the server has fetched the recording and then asked for
        // nothing more for a moment (it may fetch again), or until `linger` ends.
        let until = Instant::now() + sim.linger;
        let (mut seen, mut quiet_since) = (0, Instant::now());
        while Instant::now() < until {
            let requests = server.requests();
            if requests != seen {
                (seen, quiet_since) = (requests, Instant::now());
            } else if server.fetches() > 0 && quiet_since.elapsed() >= MEDIA_QUIET {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        report.media_fetches = server.fetches();
        if report.media_fetches > 0 {
            caller.line(format!(
                "recording fetched by the server ({} time(s))",
                report.media_fetches
            ));
        } else if !sim.linger.is_zero() {
            caller.line(format!(
                "the server did not fetch the recording within {} s",
                sim.linger.as_secs()
            ));
        }
        server.close().await;
    }
    report.heard = std::mem::take(&mut caller.heard);
    report.documents = std::mem::take(&mut caller.documents);
    report.transcript = std::mem::take(&mut caller.transcript);
    Ok(report)
}

/// Channels and whole seconds of a WAV, if it is one.
fn wav_shape(bytes: &[u8]) -> Option<(u16, u64)> {
    let reader = hound::WavReader::new(std::io::Cursor::new(bytes)).ok()?;
    let spec = reader.spec();
    let secs = u64::from(reader.duration()) / u64::from(spec.sample_rate.max(1));
    Some((spec.channels, secs.max(1)))
}

/// Plays one TwiML document; returns what the caller does next.
async fn play(
    caller: &mut Caller<'_>,
    doc: &Node,
    url: &str,
    recording: &mut Option<RecordingStart>,
) -> Step {
    for verb in &doc.children {
        match verb.name.as_str() {
            "Say" => hear(caller, verb),
            "Play" => caller.line(format!("caller hears audio {}", verb.text.trim())),
            "Pause" => {}
            "Start" | "Record" => {
                let source = if verb.name == "Start" {
                    verb.children.iter().find(|c| c.name == "Recording")
                } else {
                    Some(verb)
                };
                if let Some(r) = source {
                    match r.attr("recordingStatusCallback") {
                        Some(cb) => {
                            caller.line("recording started".into());
                            match recording {
                                // One recording per call: a repeated start
                                // only moves where its callback goes.
                                Some(rec) => rec.callback = cb.to_owned(),
                                None => {
                                    let rec = RecordingStart {
                                        callback: cb.to_owned(),
                                        sid: sid("RE"),
                                        started: Instant::now(),
                                        started_at: OffsetDateTime::now_utc(),
                                    };
                                    if let Some(placed) = &caller.placed {
                                        placed.recording_started(
                                            &rec.sid,
                                            rec.started,
                                            rec.started_at,
                                        );
                                    }
                                    *recording = Some(rec);
                                }
                            }
                        }
                        None => caller.line("recording started, with no status callback".into()),
                    }
                }
            }
            "Gather" => {
                for child in &verb.children {
                    if child.name == "Say" {
                        hear(caller, child);
                    }
                }
                let action = verb.attr("action").unwrap_or(url).to_owned();
                let answer = caller.next_answer().await;
                match answer {
                    Answer::Hangup => {
                        caller.line("caller hangs up".into());
                        return Step::End(CallEnd::CallerHungUp);
                    }
                    Answer::Silence => {
                        caller.line("caller says nothing".into());
                        if verb.attr("actionOnEmptyResult") == Some("true") {
                            return Step::Fetch(action, Vec::new());
                        }
                    }
                    Answer::Press(d) => {
                        caller.line(format!("caller presses {d}"));
                        // Keying in takes time, as it does for a caller; the
                        // recording goes on (or stays paused) meanwhile.
                        let keys = u32::try_from(d.len()).unwrap_or(u32::MAX);
                        tokio::time::sleep(caller.sim.key_press.saturating_mul(keys)).await;
                        return Step::Fetch(action, vec![(DIGITS.into(), d)]);
                    }
                    Answer::Say { text, confidence } => {
                        caller.line(format!("caller says \"{text}\" (confidence {confidence})"));
                        return Step::Fetch(
                            action,
                            vec![
                                (SPEECH_RESULT.into(), text),
                                (CONFIDENCE.into(), confidence.to_string()),
                            ],
                        );
                    }
                }
            }
            "Redirect" => return Step::Fetch(verb.text.trim().to_owned(), Vec::new()),
            "Hangup" | "Reject" => return Step::End(CallEnd::ServerHungUp),
            "Dial" => {
                let number = verb
                    .children
                    .iter()
                    .find(|c| c.name == "Number")
                    .map(|c| c.text.trim().to_owned())
                    .unwrap_or_else(|| verb.text.trim().to_owned());
                return Step::End(CallEnd::Dialed(number));
            }
            other => caller.line(format!("(simulator ignores <{other}>)")),
        }
    }
    Step::End(CallEnd::DocumentEnded)
}

fn hear(caller: &mut Caller<'_>, say: &Node) {
    let text = say.text.trim().to_owned();
    caller.line(format!("caller hears: {text}"));
    caller.heard.push(text);
}

/// Builds a [`Simulation`] for the CLI from its flags; `stdin` decides interactivity.
pub fn interactive_default() -> bool {
    std::io::stdin().is_terminal()
}

/// Fails with a clear message when a URL is not one the simulator can call.
pub fn check_url(url: &str) -> anyhow::Result<()> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        bail!("{url} is not an http(s) URL: pass the transfer_url from POST /v1/confirmations, or the server's /voice/incoming URL with --inbound");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_parse_from_the_command_line_forms() {
        assert_eq!(
            "press:1".parse::<Answer>().unwrap(),
            Answer::Press("1".into())
        );
        assert_eq!("2".parse::<Answer>().unwrap(), Answer::Press("2".into()));
        assert_eq!("silence".parse::<Answer>().unwrap(), Answer::Silence);
        assert_eq!("hangup".parse::<Answer>().unwrap(), Answer::Hangup);
        assert_eq!(
            "say:yes@0.3".parse::<Answer>().unwrap(),
            Answer::Say {
                text: "yes".into(),
                confidence: 0.3
            }
        );
        assert_eq!(
            "yes I confirm".parse::<Answer>().unwrap(),
            Answer::Say {
                text: "yes I confirm".into(),
                confidence: DEFAULT_CONFIDENCE
            }
        );
        assert!("say:yes@7".parse::<Answer>().is_err());
        assert!("press:x".parse::<Answer>().is_err());
    }

    #[test]
    fn the_sample_recording_is_a_wav_of_the_asked_length() {
        let wav = sample_recording(2);
        assert_eq!(MediaFormat::sniff(&wav), Some(MediaFormat::Wav));
        assert_eq!(wav_shape(&wav), Some((1, 2)));
    }

    #[test]
    fn the_origin_of_a_url_drops_path_and_query() {
        assert_eq!(
            origin("http://127.0.0.1:8080/voice/start?t=x"),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(origin("nonsense"), None);
    }
}
