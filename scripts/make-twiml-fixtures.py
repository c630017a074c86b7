# Run `python3 scripts/make-twiml-fixtures.py` from the repo root (made with twilio==9.13.0 on Python 3.11.7; `--check` compares instead of writing).
"""Write the TwiML fixtures that src/twiml.rs is tested against.

Every fixture is the exact `str(response)` of Twilio's own helper library, written
byte for byte (no trailing newline). The library sorts attributes by name, so the
keyword arguments below are given in that same order to keep the reading simple.
"""

import sys
from pathlib import Path

import twilio
from twilio.twiml.voice_response import (
    Dial,
    Gather,
    Pause,
    Play,
    Record,
    Redirect,
    Say,
    Start,
    VoiceResponse,
)

PINNED_TWILIO = "9.13.0"
OUT_DIR = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "twiml"

BASE = "https://callproof.example.com/twilio"
TOKEN = "cp1.eyJjYWxsIjoiQ0EwMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Njc4OWFiY2RlZiJ9.Zm9vYmFyYmF6cXV4X3NpZ25hdHVyZV8wMTIzNDU2Nzg5"


def consent_start(status_url):
    start = Start()
    start.recording(
        channels="dual",
        recording_status_callback=status_url,
        recording_status_callback_event="in-progress completed absent",
        recording_status_callback_method="POST",
        track="both",
        trim="do-not-trim",
    )
    return start


def consent_question():
    response = VoiceResponse()
    response.append(consent_start(f"{BASE}/recording-status?call=c_7Hq2&token={TOKEN}"))
    gather = Gather(
        action=f"{BASE}/gather?call=c_7Hq2&step=consent&attempt=1&token={TOKEN}",
        action_on_empty_result=True,
        hints="yes, no, I agree, I do not agree",
        input="dtmf speech",
        language="en-US",
        method="POST",
        num_digits=1,
        speech_timeout="auto",
        timeout=6,
    )
    gather.say(
        "This call is recorded so we can keep proof of your answer.",
        language="en-US",
        voice="Polly.Joanna-Neural",
    )
    gather.say(
        "Do you agree to the change? Say yes or press 1. Say no or press 2.",
        language="en-US",
        voice="Polly.Joanna-Neural",
    )
    response.append(gather)
    return response


def consent_question_es():
    response = VoiceResponse()
    response.append(consent_start(f"{BASE}/recording-status?call=c_9Xy4&token={TOKEN}"))
    gather = Gather(
        action=f"{BASE}/gather?call=c_9Xy4&step=consent&attempt=2&token={TOKEN}",
        action_on_empty_result=True,
        hints="sí, no, confirmo, no acepto",
        input="dtmf speech",
        language="es-US",
        method="POST",
        num_digits=1,
        speech_timeout="auto",
        timeout=6,
    )
    gather.say(
        "Esta llamada se graba para guardar constancia de su respuesta.",
        language="es-US",
        voice="Polly.Lupe-Neural",
    )
    gather.say(
        "¿Confirma el cambio? Diga «sí, confirmo» o marque 1. Para rechazarlo, marque 2.",
        language="es-US",
        voice="Polly.Lupe-Neural",
    )
    response.append(gather)
    return response


def keypad_only():
    response = VoiceResponse()
    gather = Gather(
        action=f"{BASE}/gather?call=c_7Hq2&step=keypad&token={TOKEN}",
        action_on_empty_result=False,
        finish_on_key="#",
        input="dtmf",
        method="POST",
        num_digits=1,
        timeout=8,
    )
    gather.say(
        "Press 1 to confirm or 2 to decline.",
        language="en-US",
        loop=2,
        voice="Polly.Joanna-Neural",
    )
    gather.pause(length=2)
    gather.play(f"{BASE}/audio/chime.mp3")
    response.append(gather)
    return response


def readback():
    response = VoiceResponse()
    response.say(
        "Your confirmation number is",
        language="en-US",
        voice="Polly.Joanna-Neural",
    )
    response.say("1, 2, 3", language="en-US", voice="Polly.Joanna-Neural")
    response.pause(length=1)
    response.say("Thank you. Goodbye.", language="en-US", voice="Polly.Joanna-Neural")
    response.hangup()
    return response


def redirect():
    response = VoiceResponse()
    response.append(Redirect(f"{BASE}/voice?call=c_7Hq2&step=retry&token={TOKEN}", method="POST"))
    return response


def dial():
    response = VoiceResponse()
    response.append(
        Dial(
            "+15555550123",
            action=f"{BASE}/dial-status?call=c_7Hq2&token={TOKEN}",
            caller_id="+15555550199",
            method="POST",
            timeout=20,
        )
    )
    return response


def record():
    response = VoiceResponse()
    response.append(
        Record(
            action=f"{BASE}/voicemail?call=c_7Hq2&token={TOKEN}",
            finish_on_key="*",
            max_length=120,
            method="POST",
            play_beep=True,
            recording_status_callback=f"{BASE}/recording-status?call=c_7Hq2&kind=voicemail",
            recording_status_callback_event="in-progress completed absent",
            recording_status_callback_method="GET",
            timeout=5,
            trim="trim-silence",
        )
    )
    return response


def play_loop():
    response = VoiceResponse()
    response.append(Play(f"{BASE}/audio/hold.mp3?v=2&lang=en", loop=3))
    return response


def escaping():
    response = VoiceResponse()
    response.say(
        "Tom & Jerry <b>bold</b> 5 > 3 \"quoted\" 'single'",
        language="en-US",
        voice="a&b <c> \"d\" 'e'",
    )
    response.say("line one\nline two\tafter a tab", voice="tab\there\nnewline\rreturn")
    response.say(
        "¿Confirma? ¡Sí, confirmo! Señora Muñoz, cumpleaños — €5 😀",
        language="es-US",
        voice="Polly.Lupe-Neural",
    )
    response.append(Redirect(f"{BASE}/voice?a=1&b=<2>&c=\"3\"&d='4'", method="POST"))
    return response


def empty_elements():
    response = VoiceResponse()
    response.say("")
    response.append(Gather(input="speech", speech_timeout=3))
    response.append(Start(action=f"{BASE}/start?call=c_7Hq2&token={TOKEN}", method="GET"))
    response.pause()
    return response


def empty_response():
    return VoiceResponse()


FIXTURES = {
    "consent_question": consent_question,
    "consent_question_es": consent_question_es,
    "keypad_only": keypad_only,
    "readback": readback,
    "redirect": redirect,
    "dial": dial,
    "record": record,
    "play_loop": play_loop,
    "escaping": escaping,
    "empty_elements": empty_elements,
    "empty_response": empty_response,
}


def main(argv):
    check = "--check" in argv[1:]
    if twilio.__version__ != PINNED_TWILIO:
        print(
            f"warning: fixtures were made with twilio=={PINNED_TWILIO}, "
            f"this is twilio=={twilio.__version__}",
            file=sys.stderr,
        )
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    stale = []
    for name, build in FIXTURES.items():
        path = OUT_DIR / f"{name}.xml"
        data = str(build()).encode("utf-8")
        if check:
            if not path.exists() or path.read_bytes() != data:
                stale.append(path.name)
        else:
            path.write_bytes(data)
            print(f"wrote {path.relative_to(OUT_DIR.parent.parent.parent)}")
    if stale:
        print("out of date: " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
