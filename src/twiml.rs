//! Typed builder for the TwiML documents callproof answers Twilio's voice webhooks with.
//! Owns verb and noun structure, attribute names and order, and byte-exact XML escaping.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::io;

use quick_xml::escape::partial_escape;
use quick_xml::events::attributes::Attribute;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use quick_xml::Writer;

/// One XML element with its attributes, text and children.
///
/// Every public builder wraps one of these. Attributes live in a `BTreeMap`, so they
/// are written sorted by name in byte order: Twilio's helper library sorts them the
/// same way (all names are ASCII), which keeps the output identical to its `str()`.
/// Setting an attribute twice keeps the last value.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Element {
    name: &'static str,
    attrs: BTreeMap<&'static str, String>,
    text: String,
    children: Vec<Element>,
}

impl Element {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            attrs: BTreeMap::new(),
            text: String::new(),
            children: Vec::new(),
        }
    }

    fn with_text(name: &'static str, text: String) -> Self {
        Self {
            text,
            ..Self::new(name)
        }
    }

    fn attr(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.attrs.insert(name, value.into());
        self
    }

    fn flag(self, name: &'static str, value: bool) -> Self {
        self.attr(name, if value { "true" } else { "false" })
    }

    fn number(self, name: &'static str, value: u32) -> Self {
        self.attr(name, value.to_string())
    }

    fn child(mut self, child: Element) -> Self {
        self.children.push(child);
        self
    }

    /// Writes the element the way Python's `ElementTree` serialises it: an element with
    /// neither text nor children is `<Name attr="v" />`, with a space before the slash;
    /// an empty text counts as no text.
    fn write<W: io::Write>(&self, writer: &mut Writer<W>) -> io::Result<()> {
        let mut start = BytesStart::new(self.name);
        for (name, value) in &self.attrs {
            let value = escape_attribute(value);
            start.push_attribute(Attribute::from((name.as_bytes(), value.as_bytes())));
        }
        if self.text.is_empty() && self.children.is_empty() {
            return writer.write_event(Event::Empty(space_before_slash(&start, self.name)?));
        }
        writer.write_event(Event::Start(start))?;
        if !self.text.is_empty() {
            writer.write_event(Event::Text(BytesText::from_escaped(escape_text(
                &self.text,
            ))))?;
        }
        for child in &self.children {
            child.write(writer)?;
        }
        writer.write_event(Event::End(BytesEnd::new(self.name)))
    }
}

/// Copies a start tag with one trailing space, so quick-xml's `<...` + `/>` comes out
/// as `ElementTree`'s `<... />`.
fn space_before_slash(start: &BytesStart<'_>, name: &str) -> io::Result<BytesStart<'static>> {
    let content = std::str::from_utf8(start)
        .map_err(|err| io::Error::new(io::ErrorKind::InvalidData, err))?;
    Ok(BytesStart::from_content(format!("{content} "), name.len()))
}

/// Escapes element text as `ElementTree` does: only `&`, `<` and `>` are replaced.
/// Quotes, apostrophes, newlines, tabs and non-ASCII characters are written as they are.
fn escape_text(raw: &str) -> Cow<'_, str> {
    partial_escape(raw)
}

/// Escapes an attribute value as `ElementTree` does: `&`, `<`, `>` and `"` become
/// entities, and carriage return, newline and tab become `&#13;`, `&#10;` and `&#09;`
/// (so a parser's attribute normalisation cannot turn them into spaces). The
/// apostrophe and non-ASCII characters are written as they are.
fn escape_attribute(raw: &str) -> Cow<'_, str> {
    fn entity(c: char) -> Option<&'static str> {
        match c {
            '&' => Some("&amp;"),
            '<' => Some("&lt;"),
            '>' => Some("&gt;"),
            '"' => Some("&quot;"),
            '\r' => Some("&#13;"),
            '\n' => Some("&#10;"),
            '\t' => Some("&#09;"),
            _ => None,
        }
    }
    let Some(first) = raw.find(|c| entity(c).is_some()) else {
        return Cow::Borrowed(raw);
    };
    let mut escaped = String::with_capacity(raw.len() + 16);
    escaped.push_str(&raw[..first]);
    for c in raw[first..].chars() {
        match entity(c) {
            Some(replacement) => escaped.push_str(replacement),
            None => escaped.push(c),
        }
    }
    Cow::Owned(escaped)
}

/// A whole TwiML `<Response>`: the verbs Twilio runs, in the order they were added.
///
/// [`Response::to_xml`] gives, byte for byte, what Twilio's Python helper library's
/// `str(response)` gives for the same document:
/// - the declaration `<?xml version="1.0" encoding="UTF-8"?>`, then the document on
///   the same line, with no indentation and no trailing newline;
/// - attributes sorted by name in byte order (for example `action`,
///   `actionOnEmptyResult`, `finishOnKey`, `hints`, `input`, `language`, `method`,
///   `numDigits`, `speechTimeout`, `timeout` on `<Gather>`), whatever order the
///   builder methods were called in;
/// - booleans as `true`/`false`, numbers in decimal;
/// - text escaped for `&`, `<`, `>` only; attribute values also for `"`, CR, LF and
///   tab; everything else, including `'` and non-ASCII, written as UTF-8;
/// - an element with no text and no children as `<Name />`, and an empty text string
///   treated as no text.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Response {
    root: Element,
}

impl Response {
    /// Starts an empty `<Response>`.
    pub fn new() -> Self {
        Self {
            root: Element::new("Response"),
        }
    }

    fn verb(mut self, verb: Element) -> Self {
        self.root.children.push(verb);
        self
    }

    /// Appends a `<Say>` verb.
    pub fn say(self, say: Say) -> Self {
        self.verb(say.element)
    }

    /// Appends a `<Play>` verb.
    pub fn play(self, play: Play) -> Self {
        self.verb(play.element)
    }

    /// Appends a `<Pause>` verb.
    pub fn pause(self, pause: Pause) -> Self {
        self.verb(pause.element)
    }

    /// Appends a `<Gather>` verb.
    pub fn gather(self, gather: Gather) -> Self {
        self.verb(gather.element)
    }

    /// Appends a `<Record>` verb.
    pub fn record(self, record: Record) -> Self {
        self.verb(record.element)
    }

    /// Appends a `<Start>` verb.
    pub fn start(self, start: Start) -> Self {
        self.verb(start.element)
    }

    /// Appends a `<Redirect>` verb.
    pub fn redirect(self, redirect: Redirect) -> Self {
        self.verb(redirect.element)
    }

    /// Appends a `<Dial>` verb.
    pub fn dial(self, dial: Dial) -> Self {
        self.verb(dial.element)
    }

    /// Appends a `<Hangup>` verb.
    pub fn hangup(self) -> Self {
        self.verb(Element::new("Hangup"))
    }

    /// Appends every verb of `other`, in order.
    pub fn append(mut self, other: Response) -> Self {
        self.root.children.extend(other.root.children);
        self
    }

    /// Writes the document, declaration first, into `out` (see [`Response`] for the
    /// exact format).
    ///
    /// # Errors
    ///
    /// Returns the first error `out` returns; the document itself cannot fail.
    pub fn write_to<W: io::Write>(&self, out: W) -> io::Result<()> {
        let mut writer = Writer::new(out);
        writer.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
        self.root.write(&mut writer)
    }

    /// Renders the document as a string, exactly as Twilio's Python helper library's
    /// `str(response)` would (see [`Response`] for the format).
    #[must_use]
    pub fn to_xml(&self) -> String {
        let mut out = Vec::new();
        if let Err(err) = self.write_to(&mut out) {
            // `Vec<u8>` accepts every write, and every byte comes from a `&str`.
            unreachable!("writing TwiML into memory failed: {err}");
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

impl Default for Response {
    fn default() -> Self {
        Self::new()
    }
}

/// The `<Say>` verb (also nested in `<Gather>`): speaks `text` with text-to-speech.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Say {
    element: Element,
}

impl Say {
    /// Speaks `text`; an empty text gives an empty `<Say />`.
    pub fn new(text: impl Into<String>) -> Self {
        Self {
            element: Element::with_text("Say", text.into()),
        }
    }

    /// Sets `voice`, e.g. `Polly.Joanna-Neural`.
    pub fn voice(self, voice: impl Into<String>) -> Self {
        self.with(|e| e.attr("voice", voice))
    }

    /// Sets `language`, e.g. `en-US` or `es-US`.
    pub fn language(self, language: impl Into<String>) -> Self {
        self.with(|e| e.attr("language", language))
    }

    /// Sets `loop`: how many times the text is spoken (0 repeats until the call ends).
    pub fn loop_count(self, count: u32) -> Self {
        self.with(|e| e.number("loop", count))
    }

    fn with(self, f: impl FnOnce(Element) -> Element) -> Self {
        Self {
            element: f(self.element),
        }
    }
}

/// The `<Play>` verb (also nested in `<Gather>`): plays the audio file at a URL.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Play {
    element: Element,
}

impl Play {
    /// Plays the audio at `url`, which goes in the element's text.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            element: Element::with_text("Play", url.into()),
        }
    }

    /// Sets `loop`: how many times the audio plays (0 repeats until the call ends).
    pub fn loop_count(self, count: u32) -> Self {
        Self {
            element: self.element.number("loop", count),
        }
    }
}

/// The `<Pause>` verb (also nested in `<Gather>`): waits in silence.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Pause {
    element: Element,
}

impl Pause {
    /// A pause of Twilio's default length (one second).
    pub fn new() -> Self {
        Self {
            element: Element::new("Pause"),
        }
    }

    /// Sets `length` in seconds.
    pub fn length(self, seconds: u32) -> Self {
        Self {
            element: self.element.number("length", seconds),
        }
    }
}

impl Default for Pause {
    fn default() -> Self {
        Self::new()
    }
}

/// What a `<Gather>` listens for: its `input` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GatherInput {
    /// Keypad digits only: `dtmf`.
    Dtmf,
    /// Speech only: `speech`.
    Speech,
    /// Keypad digits or speech: `dtmf speech`.
    DtmfSpeech,
}

impl GatherInput {
    /// The attribute value Twilio expects.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            GatherInput::Dtmf => "dtmf",
            GatherInput::Speech => "speech",
            GatherInput::DtmfSpeech => "dtmf speech",
        }
    }
}

impl fmt::Display for GatherInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How long a `<Gather>` waits after the caller stops speaking: its `speechTimeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SpeechTimeout {
    /// Let Twilio detect the end of speech: `auto`.
    Auto,
    /// A fixed number of seconds of silence.
    Seconds(u32),
}

impl fmt::Display for SpeechTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpeechTimeout::Auto => f.write_str("auto"),
            SpeechTimeout::Seconds(seconds) => write!(f, "{seconds}"),
        }
    }
}

/// The `<Gather>` verb: collects keypad digits and/or speech while its nested
/// `<Say>`, `<Play>` and `<Pause>` run, then requests `action`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Gather {
    element: Element,
}

impl Gather {
    /// A `<Gather>` with no attributes and nothing nested.
    pub fn new() -> Self {
        Self {
            element: Element::new("Gather"),
        }
    }

    fn with(self, f: impl FnOnce(Element) -> Element) -> Self {
        Self {
            element: f(self.element),
        }
    }

    /// Sets `input`.
    pub fn input(self, input: GatherInput) -> Self {
        self.with(|e| e.attr("input", input.as_str()))
    }

    /// Sets `numDigits`: how many digits end the gather.
    pub fn num_digits(self, digits: u32) -> Self {
        self.with(|e| e.number("numDigits", digits))
    }

    /// Sets `timeout`: seconds to wait for the first digit or word.
    pub fn timeout(self, seconds: u32) -> Self {
        self.with(|e| e.number("timeout", seconds))
    }

    /// Sets `speechTimeout`.
    pub fn speech_timeout(self, timeout: SpeechTimeout) -> Self {
        self.with(|e| e.attr("speechTimeout", timeout.to_string()))
    }

    /// Sets `hints`: words or phrases to expect, joined with `", "`.
    /// Accepts `&[&str]`, `Vec<String>` or any other list of strings.
    pub fn hints<I, S>(self, hints: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut joined = String::new();
        for (i, hint) in hints.into_iter().enumerate() {
            if i > 0 {
                joined.push_str(", ");
            }
            joined.push_str(hint.as_ref());
        }
        self.with(|e| e.attr("hints", joined))
    }

    /// Sets `language` for speech recognition, e.g. `en-US` or `es-US`.
    pub fn language(self, language: impl Into<String>) -> Self {
        self.with(|e| e.attr("language", language))
    }

    /// Sets `action`: the URL Twilio requests with the result.
    pub fn action(self, url: impl Into<String>) -> Self {
        self.with(|e| e.attr("action", url))
    }

    /// Sets `method` for `action`: `GET` or `POST`.
    pub fn method(self, method: impl Into<String>) -> Self {
        self.with(|e| e.attr("method", method))
    }

    /// Sets `actionOnEmptyResult`: request `action` even when nothing was gathered.
    pub fn action_on_empty_result(self, enabled: bool) -> Self {
        self.with(|e| e.flag("actionOnEmptyResult", enabled))
    }

    /// Sets `finishOnKey`: the key that ends digit entry, e.g. `#`.
    pub fn finish_on_key(self, key: impl Into<String>) -> Self {
        self.with(|e| e.attr("finishOnKey", key))
    }

    /// Nests a `<Say>` after the children added so far.
    pub fn say(self, say: Say) -> Self {
        self.with(|e| e.child(say.element))
    }

    /// Nests a `<Play>` after the children added so far.
    pub fn play(self, play: Play) -> Self {
        self.with(|e| e.child(play.element))
    }

    /// Nests a `<Pause>` after the children added so far.
    pub fn pause(self, pause: Pause) -> Self {
        self.with(|e| e.child(pause.element))
    }
}

impl Default for Gather {
    fn default() -> Self {
        Self::new()
    }
}

/// The `<Record>` verb: records the caller's voice until silence, a key or a limit.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Record {
    element: Element,
}

impl Record {
    /// A `<Record>` with no attributes.
    pub fn new() -> Self {
        Self {
            element: Element::new("Record"),
        }
    }

    fn with(self, f: impl FnOnce(Element) -> Element) -> Self {
        Self {
            element: f(self.element),
        }
    }

    /// Sets `action`: the URL Twilio requests when the recording ends.
    pub fn action(self, url: impl Into<String>) -> Self {
        self.with(|e| e.attr("action", url))
    }

    /// Sets `method` for `action`: `GET` or `POST`.
    pub fn method(self, method: impl Into<String>) -> Self {
        self.with(|e| e.attr("method", method))
    }

    /// Sets `maxLength` in seconds.
    pub fn max_length(self, seconds: u32) -> Self {
        self.with(|e| e.number("maxLength", seconds))
    }

    /// Sets `timeout`: seconds of silence that end the recording.
    pub fn timeout(self, seconds: u32) -> Self {
        self.with(|e| e.number("timeout", seconds))
    }

    /// Sets `playBeep`.
    pub fn play_beep(self, enabled: bool) -> Self {
        self.with(|e| e.flag("playBeep", enabled))
    }

    /// Sets `trim`: `trim-silence` or `do-not-trim`.
    pub fn trim(self, trim: impl Into<String>) -> Self {
        self.with(|e| e.attr("trim", trim))
    }

    /// Sets `finishOnKey`: the keys that end the recording, e.g. `#`.
    pub fn finish_on_key(self, keys: impl Into<String>) -> Self {
        self.with(|e| e.attr("finishOnKey", keys))
    }

    /// Sets `recordingStatusCallback`: the URL told about the recording's status.
    pub fn recording_status_callback(self, url: impl Into<String>) -> Self {
        self.with(|e| e.attr("recordingStatusCallback", url))
    }

    /// Sets `recordingStatusCallbackEvent`: space-separated events, e.g.
    /// `in-progress completed absent`.
    pub fn recording_status_callback_event(self, events: impl Into<String>) -> Self {
        self.with(|e| e.attr("recordingStatusCallbackEvent", events))
    }

    /// Sets `recordingStatusCallbackMethod`: `GET` or `POST`.
    pub fn recording_status_callback_method(self, method: impl Into<String>) -> Self {
        self.with(|e| e.attr("recordingStatusCallbackMethod", method))
    }
}

impl Default for Record {
    fn default() -> Self {
        Self::new()
    }
}

/// The `<Start>` verb: starts something that runs alongside the call, here a
/// `<Recording>`, then goes on with the next verb at once.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Start {
    element: Element,
}

impl Start {
    /// A `<Start>` with no attributes and nothing nested.
    pub fn new() -> Self {
        Self {
            element: Element::new("Start"),
        }
    }

    /// Nests a `<Recording>` after the nouns added so far.
    pub fn recording(self, recording: Recording) -> Self {
        Self {
            element: self.element.child(recording.element),
        }
    }

    /// Sets `action`: the URL Twilio requests after starting.
    pub fn action(self, url: impl Into<String>) -> Self {
        Self {
            element: self.element.attr("action", url),
        }
    }

    /// Sets `method` for `action`: `GET` or `POST`.
    pub fn method(self, method: impl Into<String>) -> Self {
        Self {
            element: self.element.attr("method", method),
        }
    }
}

impl Default for Start {
    fn default() -> Self {
        Self::new()
    }
}

/// The `<Recording>` noun, nested in `<Start>`: records the call in the background.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Recording {
    element: Element,
}

impl Recording {
    /// A `<Recording>` with no attributes.
    pub fn new() -> Self {
        Self {
            element: Element::new("Recording"),
        }
    }

    fn with(self, f: impl FnOnce(Element) -> Element) -> Self {
        Self {
            element: f(self.element),
        }
    }

    /// Sets `recordingStatusCallback`: the URL told about the recording's status.
    pub fn recording_status_callback(self, url: impl Into<String>) -> Self {
        self.with(|e| e.attr("recordingStatusCallback", url))
    }

    /// Sets `recordingStatusCallbackMethod`: `GET` or `POST`.
    pub fn recording_status_callback_method(self, method: impl Into<String>) -> Self {
        self.with(|e| e.attr("recordingStatusCallbackMethod", method))
    }

    /// Sets `recordingStatusCallbackEvent`: space-separated events, e.g.
    /// `in-progress completed absent`.
    pub fn recording_status_callback_event(self, events: impl Into<String>) -> Self {
        self.with(|e| e.attr("recordingStatusCallbackEvent", events))
    }

    /// Sets the channel layout, `mono` or `dual`. On `<Recording>` Twilio names this
    /// attribute `channels` (not `recordingChannels`), and that is what is written.
    pub fn recording_channels(self, channels: impl Into<String>) -> Self {
        self.with(|e| e.attr("channels", channels))
    }

    /// Sets `track`: `inbound`, `outbound` or `both`.
    pub fn track(self, track: impl Into<String>) -> Self {
        self.with(|e| e.attr("track", track))
    }

    /// Sets `trim`: `trim-silence` or `do-not-trim`.
    pub fn trim(self, trim: impl Into<String>) -> Self {
        self.with(|e| e.attr("trim", trim))
    }
}

impl Default for Recording {
    fn default() -> Self {
        Self::new()
    }
}

/// The `<Redirect>` verb: hands the call to the TwiML at another URL.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Redirect {
    element: Element,
}

impl Redirect {
    /// Redirects to `url`, which goes in the element's text.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            element: Element::with_text("Redirect", url.into()),
        }
    }

    /// Sets `method`: `GET` or `POST`.
    pub fn method(self, method: impl Into<String>) -> Self {
        Self {
            element: self.element.attr("method", method),
        }
    }
}

/// The `<Dial>` verb: connects the caller to another phone number.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Dial {
    element: Element,
}

impl Dial {
    /// Dials `number` (E.164, e.g. `+15555550123`), which goes in the element's text.
    pub fn new(number: impl Into<String>) -> Self {
        Self {
            element: Element::with_text("Dial", number.into()),
        }
    }

    fn with(self, f: impl FnOnce(Element) -> Element) -> Self {
        Self {
            element: f(self.element),
        }
    }

    /// Sets `callerId`: the number the callee sees.
    pub fn caller_id(self, number: impl Into<String>) -> Self {
        self.with(|e| e.attr("callerId", number))
    }

    /// Sets `timeout`: seconds to let the callee's phone ring.
    pub fn timeout(self, seconds: u32) -> Self {
        self.with(|e| e.number("timeout", seconds))
    }

    /// Sets `action`: the URL Twilio requests when the dialled call ends.
    pub fn action(self, url: impl Into<String>) -> Self {
        self.with(|e| e.attr("action", url))
    }

    /// Sets `method` for `action`: `GET` or `POST`.
    pub fn method(self, method: impl Into<String>) -> Self {
        self.with(|e| e.attr("method", method))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use quick_xml::Reader;

    macro_rules! fixture {
        ($name:literal) => {
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/twiml/",
                $name,
                ".xml"
            ))
        };
    }

    const BASE: &str = "https://callproof.example.com/twilio";
    const TOKEN: &str = "cp1.eyJjYWxsIjoiQ0EwMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Njc4OWFiY2RlZiJ9.Zm9vYmFyYmF6cXV4X3NpZ25hdHVyZV8wMTIzNDU2Nzg5";

    fn consent_recording(call: &str) -> Start {
        Start::new().recording(
            Recording::new()
                .recording_status_callback(format!(
                    "{BASE}/recording-status?call={call}&token={TOKEN}"
                ))
                .recording_status_callback_method("POST")
                .recording_status_callback_event("in-progress completed absent")
                .recording_channels("dual")
                .track("both")
                .trim("do-not-trim"),
        )
    }

    fn escaping_response() -> Response {
        Response::new()
            .say(
                Say::new("Tom & Jerry <b>bold</b> 5 > 3 \"quoted\" 'single'")
                    .voice("a&b <c> \"d\" 'e'")
                    .language("en-US"),
            )
            .say(Say::new("line one\nline two\tafter a tab").voice("tab\there\nnewline\rreturn"))
            .say(
                Say::new("¿Confirma? ¡Sí, confirmo! Señora Muñoz, cumpleaños — €5 😀")
                    .voice("Polly.Lupe-Neural")
                    .language("es-US"),
            )
            .redirect(Redirect::new(format!("{BASE}/voice?a=1&b=<2>&c=\"3\"&d='4'")).method("POST"))
    }

    /// One parsed element: its name, its attributes and its text, all unescaped.
    #[derive(Debug, PartialEq, Eq)]
    struct Parsed {
        name: String,
        attrs: Vec<(String, String)>,
        text: String,
    }

    fn parsed(name: &str, attrs: &[(&str, &str)], text: &str) -> Parsed {
        Parsed {
            name: name.to_owned(),
            attrs: attrs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            text: text.to_owned(),
        }
    }

    fn read_tag(tag: &BytesStart<'_>) -> Parsed {
        Parsed {
            name: String::from_utf8(tag.name().as_ref().to_vec()).unwrap(),
            attrs: tag
                .attributes()
                .map(|attr| {
                    let attr = attr.unwrap();
                    let key = String::from_utf8(attr.key.as_ref().to_vec()).unwrap();
                    (key, attr.unescape_value().unwrap().into_owned())
                })
                .collect(),
            text: String::new(),
        }
    }

    /// Reads a document back with quick-xml: every element in document order, after
    /// checking the declaration comes first.
    fn parse(xml: &str) -> Vec<Parsed> {
        let mut reader = Reader::from_str(xml);
        let mut elements = Vec::new();
        let mut open = Vec::new();
        let mut saw_decl = false;
        loop {
            match reader.read_event().unwrap() {
                Event::Decl(decl) => {
                    assert!(elements.is_empty());
                    assert_eq!(decl.version().unwrap().as_ref(), b"1.0");
                    assert_eq!(decl.encoding().unwrap().unwrap().as_ref(), b"UTF-8");
                    saw_decl = true;
                }
                Event::Start(tag) => {
                    elements.push(read_tag(&tag));
                    open.push(elements.len() - 1);
                }
                Event::Empty(tag) => elements.push(read_tag(&tag)),
                Event::Text(text) => {
                    let index = *open.last().unwrap();
                    elements[index].text.push_str(&text.unescape().unwrap());
                }
                Event::End(_) => {
                    open.pop();
                }
                Event::Eof => break,
                other => panic!("unexpected event {other:?}"),
            }
        }
        assert!(saw_decl, "the XML declaration is missing");
        assert!(open.is_empty());
        elements
    }

    #[test]
    fn consent_question_matches_twilio_library() {
        let hints: &[&str] = &["yes", "no", "I agree", "I do not agree"];
        let response = Response::new().start(consent_recording("c_7Hq2")).gather(
            Gather::new()
                .input(GatherInput::DtmfSpeech)
                .num_digits(1)
                .timeout(6)
                .speech_timeout(SpeechTimeout::Auto)
                .hints(hints)
                .language("en-US")
                .action(format!(
                    "{BASE}/gather?call=c_7Hq2&step=consent&attempt=1&token={TOKEN}"
                ))
                .method("POST")
                .action_on_empty_result(true)
                .say(
                    Say::new("This call is recorded so we can keep proof of your answer.")
                        .voice("Polly.Joanna-Neural")
                        .language("en-US"),
                )
                .say(
                    Say::new("Do you agree to the change? Say yes or press 1. Say no or press 2.")
                        .voice("Polly.Joanna-Neural")
                        .language("en-US"),
                ),
        );
        assert_eq!(response.to_xml(), fixture!("consent_question"));
    }

    #[test]
    fn spanish_consent_question_matches_twilio_library() {
        let hints: Vec<String> = ["sí", "no", "confirmo", "no acepto"]
            .iter()
            .map(|h| h.to_string())
            .collect();
        let response = Response::new().start(consent_recording("c_9Xy4")).gather(
            Gather::new()
                .say(
                    Say::new("Esta llamada se graba para guardar constancia de su respuesta.")
                        .language("es-US")
                        .voice("Polly.Lupe-Neural"),
                )
                .say(
                    Say::new(
                        "¿Confirma el cambio? Diga «sí, confirmo» o marque 1. \
                         Para rechazarlo, marque 2.",
                    )
                    .language("es-US")
                    .voice("Polly.Lupe-Neural"),
                )
                .action_on_empty_result(true)
                .method("POST")
                .action(format!(
                    "{BASE}/gather?call=c_9Xy4&step=consent&attempt=2&token={TOKEN}"
                ))
                .language("es-US")
                .hints(hints)
                .speech_timeout(SpeechTimeout::Auto)
                .timeout(6)
                .num_digits(1)
                .input(GatherInput::DtmfSpeech),
        );
        assert_eq!(response.to_xml(), fixture!("consent_question_es"));
    }

    #[test]
    fn keypad_only_gather_matches_twilio_library() {
        let response = Response::new().gather(
            Gather::new()
                .input(GatherInput::Dtmf)
                .num_digits(1)
                .timeout(8)
                .finish_on_key("#")
                .action(format!(
                    "{BASE}/gather?call=c_7Hq2&step=keypad&token={TOKEN}"
                ))
                .method("POST")
                .action_on_empty_result(false)
                .say(
                    Say::new("Press 1 to confirm or 2 to decline.")
                        .voice("Polly.Joanna-Neural")
                        .language("en-US")
                        .loop_count(2),
                )
                .pause(Pause::new().length(2))
                .play(Play::new(format!("{BASE}/audio/chime.mp3"))),
        );
        assert_eq!(response.to_xml(), fixture!("keypad_only"));
    }

    #[test]
    fn readback_with_pause_and_hangup_matches_twilio_library() {
        let say = |text: &str| {
            Say::new(text)
                .voice("Polly.Joanna-Neural")
                .language("en-US")
        };
        let response = Response::new()
            .say(say("Your confirmation number is"))
            .say(say("1, 2, 3"))
            .pause(Pause::new().length(1))
            .say(say("Thank you. Goodbye."))
            .hangup();
        assert_eq!(response.to_xml(), fixture!("readback"));
    }

    #[test]
    fn redirect_with_method_matches_twilio_library() {
        let response = Response::new().redirect(
            Redirect::new(format!("{BASE}/voice?call=c_7Hq2&step=retry&token={TOKEN}"))
                .method("POST"),
        );
        assert_eq!(response.to_xml(), fixture!("redirect"));
    }

    #[test]
    fn dial_with_caller_id_and_timeout_matches_twilio_library() {
        let response = Response::new().dial(
            Dial::new("+15555550123")
                .caller_id("+15555550199")
                .timeout(20)
                .action(format!("{BASE}/dial-status?call=c_7Hq2&token={TOKEN}"))
                .method("POST"),
        );
        assert_eq!(response.to_xml(), fixture!("dial"));
    }

    #[test]
    fn record_with_every_attribute_matches_twilio_library() {
        let response = Response::new().record(
            Record::new()
                .action(format!("{BASE}/voicemail?call=c_7Hq2&token={TOKEN}"))
                .method("POST")
                .max_length(120)
                .timeout(5)
                .play_beep(true)
                .trim("trim-silence")
                .finish_on_key("*")
                .recording_status_callback(format!(
                    "{BASE}/recording-status?call=c_7Hq2&kind=voicemail"
                ))
                .recording_status_callback_event("in-progress completed absent")
                .recording_status_callback_method("GET"),
        );
        assert_eq!(response.to_xml(), fixture!("record"));
    }

    #[test]
    fn play_with_loop_matches_twilio_library() {
        let response = Response::new()
            .play(Play::new(format!("{BASE}/audio/hold.mp3?v=2&lang=en")).loop_count(3));
        assert_eq!(response.to_xml(), fixture!("play_loop"));
    }

    #[test]
    fn escaping_matches_twilio_library() {
        assert_eq!(escaping_response().to_xml(), fixture!("escaping"));
    }

    #[test]
    fn elements_without_content_match_twilio_library() {
        let response = Response::new()
            .say(Say::new(""))
            .gather(
                Gather::new()
                    .input(GatherInput::Speech)
                    .speech_timeout(SpeechTimeout::Seconds(3)),
            )
            .start(
                Start::new()
                    .action(format!("{BASE}/start?call=c_7Hq2&token={TOKEN}"))
                    .method("GET"),
            )
            .pause(Pause::default());
        assert_eq!(response.to_xml(), fixture!("empty_elements"));
    }

    #[test]
    fn empty_response_matches_twilio_library() {
        assert_eq!(Response::new().to_xml(), fixture!("empty_response"));
        assert_eq!(Response::default(), Response::new());
    }

    #[test]
    fn escaped_text_and_attributes_read_back_to_the_original_strings() {
        let elements = parse(&escaping_response().to_xml());
        let expected = vec![
            parsed("Response", &[], ""),
            parsed(
                "Say",
                &[("language", "en-US"), ("voice", "a&b <c> \"d\" 'e'")],
                "Tom & Jerry <b>bold</b> 5 > 3 \"quoted\" 'single'",
            ),
            parsed(
                "Say",
                &[("voice", "tab\there\nnewline\rreturn")],
                "line one\nline two\tafter a tab",
            ),
            parsed(
                "Say",
                &[("language", "es-US"), ("voice", "Polly.Lupe-Neural")],
                "¿Confirma? ¡Sí, confirmo! Señora Muñoz, cumpleaños — €5 😀",
            ),
            parsed(
                "Redirect",
                &[("method", "POST")],
                &format!("{BASE}/voice?a=1&b=<2>&c=\"3\"&d='4'"),
            ),
        ];
        assert_eq!(elements, expected);
    }

    #[test]
    fn any_text_survives_a_round_trip_through_the_parser() {
        let samples = [
            "plain",
            "&&&<<<>>>",
            "\"'\"'",
            "&amp; is already escaped-looking &lt;",
            "]]> and <!-- not a comment --> and <?pi?>",
            "tabs\t\tand\nnew\nlines",
            "¿Cuál es su número? ¡Gracias! ñ ü é — 中文 🎉",
        ];
        for sample in samples {
            let xml = Response::new()
                .say(Say::new(sample).voice(sample).language(sample))
                .gather(Gather::new().hints([sample, sample]).action(sample))
                .to_xml();
            let elements = parse(&xml);
            assert_eq!(elements.len(), 3, "{xml}");
            assert_eq!(
                elements[1],
                parsed("Say", &[("language", sample), ("voice", sample)], sample)
            );
            let hints = format!("{sample}, {sample}");
            assert_eq!(
                elements[2],
                parsed("Gather", &[("action", sample), ("hints", &hints)], "")
            );
        }
    }

    #[test]
    fn attribute_escaping_follows_element_tree_character_by_character() {
        let cases = [
            ('&', "&amp;"),
            ('<', "&lt;"),
            ('>', "&gt;"),
            ('"', "&quot;"),
            ('\'', "'"),
            ('\r', "&#13;"),
            ('\n', "&#10;"),
            ('\t', "&#09;"),
            ('é', "é"),
        ];
        for (raw, escaped) in cases {
            assert_eq!(escape_attribute(&raw.to_string()), escaped, "{raw:?}");
        }
    }

    #[test]
    fn text_escaping_leaves_quotes_and_whitespace_alone() {
        assert_eq!(
            escape_text("a&b<c>d\"e'f\ng\th\ri"),
            "a&amp;b&lt;c&gt;d\"e'f\ng\th\ri"
        );
        assert!(matches!(escape_text("nothing to do"), Cow::Borrowed(_)));
        assert!(matches!(
            escape_attribute("nothing to do"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn attributes_come_out_sorted_whatever_the_call_order() {
        let forwards = Gather::new()
            .action("a")
            .action_on_empty_result(true)
            .finish_on_key("#")
            .hints(["h"])
            .input(GatherInput::Speech)
            .language("en-US")
            .method("GET")
            .num_digits(4)
            .speech_timeout(SpeechTimeout::Seconds(2))
            .timeout(9);
        let backwards = Gather::new()
            .timeout(9)
            .speech_timeout(SpeechTimeout::Seconds(2))
            .num_digits(4)
            .method("GET")
            .language("en-US")
            .input(GatherInput::Speech)
            .hints(vec!["h".to_string()])
            .finish_on_key("#")
            .action_on_empty_result(true)
            .action("a");
        let xml = Response::new().gather(forwards).to_xml();
        assert_eq!(xml, Response::new().gather(backwards).to_xml());
        assert!(xml.contains(
            "<Gather action=\"a\" actionOnEmptyResult=\"true\" finishOnKey=\"#\" hints=\"h\" \
             input=\"speech\" language=\"en-US\" method=\"GET\" numDigits=\"4\" \
             speechTimeout=\"2\" timeout=\"9\" />"
        ));
    }

    #[test]
    fn setting_an_attribute_twice_keeps_the_last_value() {
        let xml = Response::new()
            .redirect(Redirect::new("/next").method("GET").method("POST"))
            .to_xml();
        assert!(xml.ends_with("<Redirect method=\"POST\">/next</Redirect></Response>"));
    }

    #[test]
    fn write_to_produces_the_same_bytes_as_to_xml() {
        let response = escaping_response();
        let mut out = Vec::new();
        response.write_to(&mut out).unwrap();
        assert_eq!(out, response.to_xml().into_bytes());
    }

    #[test]
    fn enum_values_render_as_twilio_spells_them() {
        assert_eq!(GatherInput::Dtmf.to_string(), "dtmf");
        assert_eq!(GatherInput::Speech.to_string(), "speech");
        assert_eq!(GatherInput::DtmfSpeech.to_string(), "dtmf speech");
        assert_eq!(SpeechTimeout::Auto.to_string(), "auto");
        assert_eq!(SpeechTimeout::Seconds(0).to_string(), "0");
        assert_eq!(SpeechTimeout::Seconds(12).to_string(), "12");
    }

    #[test]
    fn empty_hints_give_an_empty_attribute() {
        let none: [&str; 0] = [];
        let xml = Response::new().gather(Gather::new().hints(none)).to_xml();
        assert!(xml.contains("<Gather hints=\"\" />"));
    }
}
