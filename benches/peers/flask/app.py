# The Flask peer of the webhook load benchmark (scripts/bench-webhooks): the transfer URL
# as a Flask app would answer it, signature checked by twilio's RequestValidator.
"""Answers POST /voice/start like callproof's transfer URL: checks X-Twilio-Signature
with Twilio's own validator, then builds the same TwiML (recording started, a Gather
of four Says) with twilio's VoiceResponse. It keeps no state and writes nothing.

The script runs it as: gunicorn -k gthread -w 2 --threads 4 app:app, with
BENCH_AUTH_TOKEN set to the auth token the requests are signed with.
"""

import os

from flask import Flask, Response, abort, request
from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import Gather, Start, VoiceResponse

app = Flask(__name__)
validator = RequestValidator(os.environ["BENCH_AUTH_TOKEN"])

VOICE = {"language": "en-US", "voice": "Polly.Joanna"}
SAYS = [
    "Hello Dana Reyes. This call is recorded to keep a record of your decision.",
    "You asked us to terminate service on the account ending in 1, 0, 0, 1. Home internet: "
    "from active, to terminated. Once the service is terminated, it cannot be restored on this account.",
    "Are you the account holder, or someone the account holder has authorized to make changes on this account?",
    "Say yes or press 1 for yes. Say no or press 2 for no. To hear it again, say repeat or press 9. "
    "To speak with an agent, say agent or press 0.",
]


@app.post("/voice/start")
def start():
    signature = request.headers.get("X-Twilio-Signature", "")
    if not validator.validate(request.url, request.form, signature):
        abort(403)
    token = request.args.get("t", "")
    base = request.host_url.rstrip("/")
    response = VoiceResponse()
    recording = Start()
    recording.recording(
        channels="dual",
        recording_status_callback=f"{base}/voice/recording?t={token}",
        recording_status_callback_event="completed",
        recording_status_callback_method="POST",
        track="both",
        trim="do-not-trim",
    )
    response.append(recording)
    gather = Gather(
        action=f"{base}/voice/answer?t={token}",
        action_on_empty_result=True,
        hints="yes, no, I confirm, decline, repeat, agent",
        input="dtmf speech",
        language="en-US",
        method="POST",
        num_digits=1,
        speech_timeout="auto",
        timeout=6,
    )
    for text in SAYS:
        gather.say(text, **VOICE)
    response.append(gather)
    return Response(str(response), content_type="text/xml; charset=utf-8")
