# Run `python3 scripts/make-signature-vectors.py` from the repo root (made with twilio==9.13.0 on Python 3.11.7; `--check` compares instead of writing).
"""Write the webhook signature vectors that src/provider/signature.rs is tested against.

Every vector is answered by Twilio's own helper library: `computed` is
`RequestValidator.compute_signature(url, params)` for exactly the vector's URL and
parameters, and `valid` is what `RequestValidator.validate(url, params, signature)`
answers for the vector's signature header. Form parameters are handed to the library
as a multi-valued mapping (the same shape as Django's QueryDict), so repeated names
keep all their values. JSON vectors hand it the raw body as a string, which is how the
library recognises the bodySHA256 case. `form_body` is the URL-encoded body a
webhook would carry for the parameters.

The output is deterministic: the same bytes on every run.
"""

import json
import sys
from pathlib import Path
from urllib.parse import urlencode

import twilio
from twilio.request_validator import RequestValidator

PINNED_TWILIO = "9.13.0"
OUT_FILE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "twilio-signatures.json"

# Fixed, made-up auth tokens (32 hex digits, the shape of a real one).
TOKEN_A = "3f8a2c1d9e7b4a60b5c2d1e0f9a8b7c6"
TOKEN_B = "0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f"
TOKEN_WRONG = "3f8a2c1d9e7b4a60b5c2d1e0f9a8b7c7"
BASE = "https://callproof.example.com"


class MultiParams(dict):
    """Maps each name to the list of its values and answers `getlist` like QueryDict."""

    def __init__(self, pairs):
        super().__init__()
        for name, value in pairs:
            self.setdefault(name, []).append(value)

    def getlist(self, name):
        return self[name]


def sign_form(token, url, pairs):
    return RequestValidator(token).compute_signature(url, MultiParams(pairs))


def sign_url(token, url):
    return RequestValidator(token).compute_signature(url, {})


def form_vector(name, token, url, pairs, signature, note):
    validator = RequestValidator(token)
    return {
        "name": name,
        "kind": "form",
        "note": note,
        "auth_token": token,
        "url": url,
        "params": [list(pair) for pair in pairs],
        "form_body": urlencode(pairs),
        "signature": signature,
        "computed": validator.compute_signature(url, MultiParams(pairs)),
        "valid": validator.validate(url, MultiParams(pairs), signature),
    }


def json_vector(name, token, url, body, signature, note):
    validator = RequestValidator(token)
    return {
        "name": name,
        "kind": "json",
        "note": note,
        "auth_token": token,
        "url": url,
        "body": body,
        "signature": signature,
        "computed": validator.compute_signature(url, {}),
        "valid": validator.validate(url, body, signature),
    }


def form_group(name, token, url, pairs, note, tamper):
    """A correctly signed form webhook plus the usual ways of getting it wrong."""
    good = sign_form(token, url, pairs)
    tampered = [tamper(pair) for pair in pairs]
    other_url = url.replace("/twilio/", "/twilio/other/", 1)
    return [
        form_vector(name, token, url, pairs, good, note),
        form_vector(name + " / wrong token", token, url, pairs, sign_form(TOKEN_WRONG, url, pairs),
                    "signed with a different auth token"),
        form_vector(name + " / tampered param", token, url, tampered, good,
                    "a parameter was changed after signing"),
        form_vector(name + " / extra param", token, url, pairs + [("Injected", "1")], good,
                    "a parameter was added after signing"),
        form_vector(name + " / other url", token, url, pairs, sign_form(token, other_url, pairs),
                    "signature made for a different URL"),
    ]


def change_first_value(pairs):
    """Returns a `tamper` function that alters the value of the first pair only."""
    first = pairs[0]

    def tamper(pair):
        return (pair[0], pair[1] + "0") if pair is first else pair

    return tamper


def vectors():
    out = []

    voice = [
        ("AccountSid", "AC0123456789abcdef0123456789abcdef"),
        ("CallSid", "CA0123456789abcdef0123456789abcdef"),
        ("CallStatus", "ringing"),
        ("From", "+14155550100"),
        ("To", "+14155550199"),
    ]
    out += form_group("plain form params", TOKEN_A, BASE + "/twilio/voice", voice,
                      "a voice webhook with parameters already in order", change_first_value(voice))

    unsorted = [
        ("To", "+14155550199"),
        ("digits", "1"),
        ("From", "+14155550100"),
        ("Digits", "42"),
        ("CallSid", "CA0123456789abcdef0123456789abcdef"),
        ("_extra", "x"),
        ("AccountSid", "AC0123456789abcdef0123456789abcdef"),
    ]
    out += form_group("params needing sort", TOKEN_A, BASE + "/twilio/gather", unsorted,
                      "names are sorted case-sensitively by code point", change_first_value(unsorted))

    repeated = [
        ("StatusCallbackEvent", "ringing"),
        ("CallSid", "CA0123456789abcdef0123456789abcdef"),
        ("StatusCallbackEvent", "answered"),
        ("StatusCallbackEvent", "completed"),
        ("StatusCallbackEvent", "answered"),
    ]
    out += form_group("repeated parameter names", TOKEN_A, BASE + "/twilio/status", repeated,
                      "values of one name are sorted and duplicates count once", change_first_value(repeated))

    empty = [
        ("CallSid", "CA0123456789abcdef0123456789abcdef"),
        ("Digits", ""),
        ("SpeechResult", ""),
        ("", "orphan"),
    ]
    out += form_group("empty values", TOKEN_A, BASE + "/twilio/gather", empty,
                      "empty values and an empty name still contribute their name", change_first_value(empty))

    unicode_pairs = [
        ("SpeechResult", "sí"),
        ("Body", "Confirmado 👍 — gracias"),
        ("Confidence", "0.93"),
        ("Ñandú", "ünïcödé"),
    ]
    out += form_group("unicode values", TOKEN_A, BASE + "/twilio/gather", unicode_pairs,
                      "non-ASCII names and values are signed as UTF-8", change_first_value(unicode_pairs))

    query_url = BASE + "/twilio/voice?flow=consent&step=2&lang=es-MX&note=s%C3%AD+ok"
    out += form_group("url with query string", TOKEN_B, query_url, voice,
                      "the query string is part of the signed URL, exactly as sent", change_first_value(voice))

    out += form_group("http url", TOKEN_B, "http://callproof.example.com/twilio/voice", voice,
                      "plain http is signed like https", change_first_value(voice))

    # Ports: the library checks the URL both without its port and with the default one.
    no_port = BASE + "/twilio/voice?step=1"
    with_443 = "https://callproof.example.com:443/twilio/voice?step=1"
    out.append(form_vector("explicit :443, signed with port", TOKEN_A, with_443, voice,
                           sign_form(TOKEN_A, with_443, voice), "URL as received carries :443"))
    out.append(form_vector("explicit :443, signed without port", TOKEN_A, with_443, voice,
                           sign_form(TOKEN_A, no_port, voice), "the port is removed before comparing"))
    out.append(form_vector("no port, signed with :443", TOKEN_A, no_port, voice,
                           sign_form(TOKEN_A, with_443, voice), "https gets :443 added before comparing"))
    out.append(form_vector("no port, signed with :80", TOKEN_A, no_port, voice,
                           sign_form(TOKEN_A, "https://callproof.example.com:80/twilio/voice?step=1", voice),
                           "https only ever gets :443, never :80"))
    http_no_port = "http://callproof.example.com/twilio/voice"
    http_80 = "http://callproof.example.com:80/twilio/voice"
    out.append(form_vector("http no port, signed with :80", TOKEN_A, http_no_port, voice,
                           sign_form(TOKEN_A, http_80, voice), "http gets :80 added before comparing"))
    out.append(form_vector("http :80, signed without port", TOKEN_A, http_80, voice,
                           sign_form(TOKEN_A, http_no_port, voice), "the port is removed before comparing"))
    out.append(form_vector("http no port, signed with :443", TOKEN_A, http_no_port, voice,
                           sign_form(TOKEN_A, "http://callproof.example.com:443/twilio/voice", voice),
                           "http only ever gets :80, never :443"))
    port_8443 = "https://callproof.example.com:8443/twilio/voice"
    out.append(form_vector("port 8443, signed with port", TOKEN_A, port_8443, voice,
                           sign_form(TOKEN_A, port_8443, voice), "a non-default port is kept as received"))
    out.append(form_vector("port 8443, signed without port", TOKEN_A, port_8443, voice,
                           sign_form(TOKEN_A, BASE + "/twilio/voice", voice), "any port is removed for the second try"))
    out.append(form_vector("port 8443, signed with :443", TOKEN_A, port_8443, voice,
                           sign_form(TOKEN_A, "https://callproof.example.com:443/twilio/voice", voice),
                           "an existing port is never replaced by the default one"))

    # The library compares against the URL as urllib re-assembles it.
    out.append(form_vector("empty query mark, signed without it", TOKEN_A, BASE + "/twilio/voice?", voice,
                           sign_form(TOKEN_A, BASE + "/twilio/voice", voice), "a bare trailing ? is dropped"))
    out.append(form_vector("empty query mark, signed with it", TOKEN_A, BASE + "/twilio/voice?", voice,
                           sign_form(TOKEN_A, BASE + "/twilio/voice?", voice), "so a signature over the bare ? fails"))
    out.append(form_vector("upper-case scheme", TOKEN_A, "HTTPS://callproof.example.com/twilio/voice", voice,
                           sign_form(TOKEN_A, BASE + "/twilio/voice", voice), "the scheme is lower-cased"))
    out.append(form_vector("no params", TOKEN_B, BASE + "/twilio/fallback?reason=timeout", [],
                           sign_url(TOKEN_B, BASE + "/twilio/fallback?reason=timeout"), "only the URL is signed"))
    out.append(form_vector("documented example", "12345", "https://mycompany.com/myapp.php?foo=1&bar=2",
                           [("CallSid", "CA1234567890ABCDE"), ("Caller", "+12349013030"), ("Digits", "1234"),
                            ("From", "+12349013030"), ("To", "+18005551212")],
                           "0/KCTR6DLpKmkAf8muzZqo1nDgQ=", "the example from Twilio's security documentation"))

    # JSON bodies: the URL carries bodySHA256 and the signature covers the URL only.
    body = '{"event":"call.completed","call_sid":"CA0123456789abcdef0123456789abcdef","answer":"sí 👍"}'
    rv = RequestValidator(TOKEN_B)
    json_url = BASE + "/twilio/events?bodySHA256=" + rv.compute_hash(body)
    json_url_443 = json_url.replace("example.com/", "example.com:443/", 1)
    good = sign_url(TOKEN_B, json_url)
    out.append(json_vector("json body", TOKEN_B, json_url, body, good, "bodySHA256 matches and the URL is signed"))
    out.append(json_vector("json body / signed with :443", TOKEN_B, json_url, body, sign_url(TOKEN_B, json_url_443),
                           "the port rules apply here too"))
    out.append(json_vector("json body / wrong token", TOKEN_B, json_url, body, sign_url(TOKEN_A, json_url),
                           "signed with a different auth token"))
    out.append(json_vector("json body / tampered body", TOKEN_B, json_url, body.replace("completed", "canceled"), good,
                           "the body no longer matches bodySHA256"))
    out.append(json_vector("json body / trailing newline", TOKEN_B, json_url, body + "\n", good,
                           "every byte of the body counts"))
    other_hash_url = BASE + "/twilio/events?bodySHA256=" + rv.compute_hash(body + " ")
    out.append(json_vector("json body / hash of another body", TOKEN_B, other_hash_url, body,
                           sign_url(TOKEN_B, other_hash_url), "a well-signed URL whose hash is for another body"))
    upper_url = BASE + "/twilio/events?bodySHA256=" + rv.compute_hash(body).upper()
    out.append(json_vector("json body / upper-case hash", TOKEN_B, upper_url, body, sign_url(TOKEN_B, upper_url),
                           "the hash is compared as lower-case hex text"))
    out.append(json_vector("json body / other url", TOKEN_B, json_url, body,
                           sign_url(TOKEN_B, json_url.replace("/events", "/other")), "signature made for a different URL"))
    two_params = BASE + "/twilio/events?source=sw&bodySHA256=" + rv.compute_hash(body) + "&bodySHA256=0"
    out.append(json_vector("json body / first of repeated bodySHA256", TOKEN_B, two_params, body,
                           sign_url(TOKEN_B, two_params), "only the first bodySHA256 value is compared"))
    empty_body_url = BASE + "/twilio/events?bodySHA256=" + rv.compute_hash("")
    out.append(json_vector("json empty body", TOKEN_B, empty_body_url, "", sign_url(TOKEN_B, empty_body_url),
                           "an empty body has a hash too"))
    return out


def render():
    document = {
        "made_by": "scripts/make-signature-vectors.py with twilio==" + PINNED_TWILIO,
        "vectors": vectors(),
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def main():
    if twilio.__version__ != PINNED_TWILIO:
        sys.exit(f"expected twilio=={PINNED_TWILIO}, found {twilio.__version__}")
    text = render()
    if "--check" in sys.argv[1:]:
        if OUT_FILE.read_text(encoding="utf-8") != text:
            sys.exit(f"{OUT_FILE} is out of date: run scripts/make-signature-vectors.py")
        print(f"{OUT_FILE} is up to date")
        return
    OUT_FILE.parent.mkdir(parents=True, exist_ok=True)
    OUT_FILE.write_text(text, encoding="utf-8")
    print(f"wrote {OUT_FILE}")


if __name__ == "__main__":
    main()
