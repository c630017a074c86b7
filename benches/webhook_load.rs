//! The webhook load benchmark's request maker (scripts/bench-webhooks): creates confirmation
//! requests through the API, drives calls into the flow, and pre-signs the webhooks wrk sends.

// Commands (run by the script; with none it says so and exits):
//
//   create BASE AGENT_KEY COUNT OUT
//       POST /v1/confirmations COUNT times (a termination request, four
//       questions); appends `transfer_url<TAB>CallSid` lines to OUT, each with a
//       CallSid of its own.
//   send transfer|answer AUTH_TOKEN IN OUT [BODY_FILE]
//       for every `url<TAB>CallSid` line of IN, sends the signed webhook (the
//       transfer URL's, or the answer Digits=1), requires 200 and a <Gather>,
//       and appends the `<Gather>` action URL and the CallSid to OUT; with
//       BODY_FILE, one of the answers is saved there.
//   sign transfer|answer AUTH_TOKEN IN OUT [BASE]
//       writes one pre-signed request per line for the wrk script:
//       `path?query<TAB>X-Twilio-Signature<TAB>form body`; with BASE the URL's
//       scheme, host and port are replaced by BASE before signing (a peer).
//
// Signatures follow Twilio's scheme, written here from its documentation and
// not taken from callproof's code: base64 of HMAC-SHA1, keyed with the auth
// token, over the full URL followed by each POST parameter's name and value,
// sorted by name. The peers check the same signatures with Twilio's library.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::process::ExitCode;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use futures_util::stream::{self, StreamExt};
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// Requests sent at once by `create` and `send`.
const CONCURRENCY: usize = 32;
const ACCOUNT_SID: &str = "AC00000000000000000000000000000000";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["create", base, key, count, out] => run(create(base, key, count, out)),
        ["send", kind, token, input, out] => {
            Kind::parse(kind).and_then(|k| run(send(k, token, input, out, None)))
        }
        ["send", kind, token, input, out, body] => {
            Kind::parse(kind).and_then(|k| run(send(k, token, input, out, Some(body))))
        }
        ["sign", kind, token, input, out] => {
            Kind::parse(kind).and_then(|k| sign(k, token, input, out, None))
        }
        ["sign", kind, token, input, out, base] => {
            Kind::parse(kind).and_then(|k| sign(k, token, input, out, Some(base)))
        }
        _ => {
            eprintln!("webhook_load: run by scripts/bench-webhooks (commands: create, send, sign)");
            return ExitCode::SUCCESS;
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("webhook_load: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(work: impl std::future::Future<Output = Result<(), String>>) -> Result<(), String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?
        .block_on(work)
}

#[derive(Clone, Copy)]
enum Kind {
    Transfer,
    Answer,
}

impl Kind {
    fn parse(s: &str) -> Result<Kind, String> {
        match s {
            "transfer" => Ok(Kind::Transfer),
            "answer" => Ok(Kind::Answer),
            other => Err(format!("{other:?}: use transfer or answer")),
        }
    }

    /// The POST parameters the provider sends with this webhook of `call`.
    fn params(self, call: &str) -> Vec<(&'static str, String)> {
        let mut p = vec![
            ("AccountSid", ACCOUNT_SID.to_owned()),
            ("ApiVersion", "2010-04-01".to_owned()),
            ("CallSid", call.to_owned()),
            ("CallStatus", "in-progress".to_owned()),
            ("Called", "+15550001111".to_owned()),
            ("Caller", "+15551230001".to_owned()),
            ("Direction", "inbound".to_owned()),
            ("From", "+15551230001".to_owned()),
            ("To", "+15550001111".to_owned()),
        ];
        if let Kind::Answer = self {
            p.push(("Digits", "1".to_owned()));
            p.push(("FinishedOnKey", String::new()));
        }
        p
    }
}

/// Twilio's signature of a form webhook.
fn signature(token: &str, url: &str, params: &[(&str, String)]) -> String {
    let mut sorted: Vec<_> = params.iter().collect();
    sorted.sort();
    let mut mac = Hmac::<Sha1>::new_from_slice(token.as_bytes()).expect("any key length");
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    BASE64.encode(mac.finalize().into_bytes())
}

fn form_body(params: &[(&str, String)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())))
        .finish()
}

/// `url<TAB>CallSid` lines of a file.
fn read_pairs(path: &str) -> Result<Vec<(String, String)>, String> {
    let file = File::open(path).map_err(|e| format!("{path}: {e}"))?;
    BufReader::new(file)
        .lines()
        .filter(|l| l.as_ref().map_or(true, |l| !l.is_empty()))
        .map(|line| {
            let line = line.map_err(|e| format!("{path}: {e}"))?;
            let (url, call) = line
                .split_once('\t')
                .ok_or_else(|| format!("{path}: {line:?} is not url<TAB>CallSid"))?;
            Ok((url.to_owned(), call.to_owned()))
        })
        .collect()
}

fn append(path: &str) -> Result<BufWriter<File>, String> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map(BufWriter::new)
        .map_err(|e| format!("{path}: {e}"))
}

fn client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .pool_max_idle_per_host(CONCURRENCY)
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| e.to_string())
}

/// The request body of every created confirmation: the README's example as a termination.
fn request_body(i: usize) -> serde_json::Value {
    serde_json::json!({
        "account_id": format!("ACC-{:06}", i % 1_000_000),
        "kind": "termination",
        "change": [{"field": "service", "label": "home internet", "before": "active", "after": "terminated"}],
        "customer": {"name": "Dana Reyes", "phone": "+15551230001"},
        "agent_id": "agent-7",
        "locale": "en-US"
    })
}

async fn create(base: &str, key: &str, count: &str, out: &str) -> Result<(), String> {
    let count: usize = count.parse().map_err(|e| format!("count {count:?}: {e}"))?;
    let client = client()?;
    let url = format!("{}/v1/confirmations", base.trim_end_matches('/'));
    // CallSids unique across invocations: a random prefix, then the index.
    let prefix: u64 = rand::random::<u64>() >> 8;
    let mut writer = append(out)?;
    let mut results = stream::iter(0..count)
        .map(|i| {
            let client = client.clone();
            let url = url.clone();
            async move {
                let resp = client
                    .post(&url)
                    .bearer_auth(key)
                    .json(&request_body(i))
                    .send()
                    .await
                    .map_err(|e| format!("POST {url}: {e}"))?;
                let status = resp.status();
                let text = resp.text().await.map_err(|e| e.to_string())?;
                if status.as_u16() != 201 {
                    return Err(format!("POST {url} answered {status}: {text}"));
                }
                let v: serde_json::Value =
                    serde_json::from_str(&text).map_err(|e| e.to_string())?;
                let transfer = v["transfer_url"]
                    .as_str()
                    .ok_or_else(|| format!("no transfer_url in {text}"))?
                    .to_owned();
                Ok::<_, String>((transfer, format!("CA{prefix:014x}{i:018x}")))
            }
        })
        .buffer_unordered(CONCURRENCY);
    while let Some(r) = results.next().await {
        let (transfer, call) = r?;
        writeln!(writer, "{transfer}\t{call}").map_err(|e| e.to_string())?;
    }
    writer.flush().map_err(|e| e.to_string())
}

async fn send(
    kind: Kind,
    token: &str,
    input: &str,
    out: &str,
    body_file: Option<&str>,
) -> Result<(), String> {
    let pairs = read_pairs(input)?;
    let client = client()?;
    let mut writer = append(out)?;
    let mut results = stream::iter(pairs)
        .map(|(url, call)| {
            let client = client.clone();
            async move {
                let params = kind.params(&call);
                let resp = client
                    .post(&url)
                    .header("X-Twilio-Signature", signature(token, &url, &params))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(form_body(&params))
                    .send()
                    .await
                    .map_err(|e| format!("POST {url}: {e}"))?;
                let status = resp.status();
                let text = resp.text().await.map_err(|e| e.to_string())?;
                let action = gather_action(&text).filter(|_| status.as_u16() == 200);
                match action {
                    Some(a) => Ok::<_, String>((a, call, text)),
                    None => Err(format!(
                        "{url} (CallSid {call}) answered {status} without a <Gather>: {text}"
                    )),
                }
            }
        })
        .buffer_unordered(CONCURRENCY);
    let mut body_file = body_file;
    while let Some(r) = results.next().await {
        let (action, call, text) = r?;
        writeln!(writer, "{action}\t{call}").map_err(|e| e.to_string())?;
        if let Some(path) = body_file.take() {
            std::fs::write(path, text).map_err(|e| format!("{path}: {e}"))?;
        }
    }
    writer.flush().map_err(|e| e.to_string())
}

/// The `action` of the first `<Gather>`, with XML's escapes undone.
fn gather_action(xml: &str) -> Option<String> {
    let at = xml.find("<Gather ")?;
    let rest = &xml[at..];
    let start = rest.find(" action=\"")? + " action=\"".len();
    let end = rest[start..].find('"')?;
    Some(
        rest[start..start + end]
            .replace("&amp;", "&")
            .replace("&quot;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">"),
    )
}

fn sign(kind: Kind, token: &str, input: &str, out: &str, base: Option<&str>) -> Result<(), String> {
    let pairs = read_pairs(input)?;
    let file = File::create(out).map_err(|e| format!("{out}: {e}"))?;
    let mut writer = BufWriter::new(file);
    for (url, call) in pairs {
        let parsed = url::Url::parse(&url).map_err(|e| format!("{url}: {e}"))?;
        let path = match parsed.query() {
            Some(q) => format!("{}?{q}", parsed.path()),
            None => parsed.path().to_owned(),
        };
        let signed_url = match base {
            Some(b) => format!("{}{path}", b.trim_end_matches('/')),
            None => url.clone(),
        };
        let params = kind.params(&call);
        writeln!(
            writer,
            "{path}\t{}\t{}",
            signature(token, &signed_url, &params),
            form_body(&params)
        )
        .map_err(|e| e.to_string())?;
    }
    writer.flush().map_err(|e| e.to_string())
}
