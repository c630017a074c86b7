#!/usr/bin/env bash
# Makes the small 8 kHz speech recordings in tests/fixtures/audio/ and their manifest.json.
#
# Run from anywhere (needs espeak-ng, sox, ffmpeg/ffprobe and xxd or od):
#   apt-get install -y espeak-ng sox ffmpeg
#   scripts/make-audio-fixtures.sh            # writes tests/fixtures/audio/
#   scripts/make-audio-fixtures.sh OUT_DIR    # writes elsewhere
#
# The inputs are fixed (texts, espeak-ng voices at 150 words a minute, no dither in sox,
# bit-exact ffmpeg output), so the same tool versions give the same bytes. Made with:
#   eSpeak NG 1.51, SoX v14.4.2, ffmpeg/ffprobe 5.1.9-0+deb12u1 (libmp3lame), Debian 12.
#
# The recordings look like what a telephony provider serves: 8 kHz, mono or one party per
# channel, 16-bit PCM, G.711 mu-law or A-law in WAV, or MP3. manifest.json holds what the
# tools measured: codec, sample rate and channels by ffprobe, duration by soxi of the WAV
# (for the MP3, of the WAV it was encoded from, since MP3 adds encoder delay and padding;
# for truncated.wav, of the whole file before its data chunk was cut).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$root/tests/fixtures/audio}"
mkdir -p "$out"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

for tool in espeak-ng sox soxi ffmpeg ffprobe od; do
    command -v "$tool" >/dev/null || {
        echo "missing $tool: apt-get install -y espeak-ng sox ffmpeg" >&2
        exit 1
    }
done

# speak VOICE TEXT OUT: speech as 8 kHz mono 16-bit PCM WAV.
speak() {
    espeak-ng -v "$1" -s 150 -w "$work/raw.wav" "$2"
    sox -D -V1 "$work/raw.wav" -r 8000 -c 1 -b 16 -e signed-integer "$3"
}

# le32 FILE OFFSET: the little-endian u32 at OFFSET.
le32() {
    od -A n -t u4 --endian=little -j "$2" -N 4 "$1" | tr -d ' '
}

# 1. 16-bit PCM, mono.
speak en-us "Yes, I agree to change my billing address." "$out/speech-8k-pcm16.wav"

# 2. G.711 mu-law in WAV, mono.
speak en-us "Please confirm the change to your account." "$work/ulaw-src.wav"
sox -D -V1 "$work/ulaw-src.wav" -e mu-law -b 8 "$out/speech-8k-ulaw.wav"

# 3. G.711 A-law in WAV, mono.
speak en-us "Press one to confirm, or two to cancel." "$work/alaw-src.wav"
sox -D -V1 "$work/alaw-src.wav" -e a-law -b 8 "$out/speech-8k-alaw.wav"

# 4. Two channels, 16-bit: the caller on the left, the agent on the right (sox pads the
#    shorter side with silence).
speak en-gb "Yes, I agree to change my billing address." "$work/caller.wav"
speak en-us "Hello, this is the account team calling." "$work/agent.wav"
sox -D -V1 -M "$work/caller.wav" "$work/agent.wav" -b 16 "$out/speech-8k-dual.wav"

# 5. MP3 (MPEG-2.5 layer III at 8 kHz), with ffmpeg's LAME tag giving the encoder delay and
#    padding so that a gapless decoder gives back the source's length.
speak en-us "Your new plan starts on the first of May." "$work/mp3-src.wav"
ffmpeg -v error -y -i "$work/mp3-src.wav" -c:a libmp3lame -b:a 24k -ar 8000 -ac 1 \
    -map_metadata -1 -fflags +bitexact -flags:a +bitexact "$out/speech-8k.mp3"

# 6. 16-bit PCM whose header promises twice the frames the file holds: the data chunk is cut
#    in half (on a frame boundary) and the header left as it was.
speak en-us "I consent to the new terms of my phone contract." "$work/whole.wav"
if [ "$(od -A n -c -j 36 -N 4 "$work/whole.wav" | tr -d ' ')" != "data" ]; then
    echo "sox did not write a 44-byte header; cannot cut the data chunk" >&2
    exit 1
fi
data_len="$(le32 "$work/whole.wav" 40)"
head -c "$((44 + data_len / 4 * 2))" "$work/whole.wav" >"$out/truncated.wav"

# manifest.json
entry() { # FILE FORMAT DURATION_SOURCE TRUNCATED
    local codec rate channels dur
    codec="$(ffprobe -v error -select_streams a:0 -show_entries stream=codec_name -of csv=p=0 "$out/$1")"
    rate="$(ffprobe -v error -select_streams a:0 -show_entries stream=sample_rate -of csv=p=0 "$out/$1")"
    channels="$(ffprobe -v error -select_streams a:0 -show_entries stream=channels -of csv=p=0 "$out/$1")"
    dur="$(soxi -D "$3")"
    printf '  "%s": {"format": "%s", "codec": "%s", "sample_rate": %s, "channels": %s, "duration_secs": %s, "truncated": %s}' \
        "$1" "$2" "$codec" "$rate" "$channels" "$dur" "$4"
}
{
    echo "{"
    entry speech-8k-pcm16.wav wav "$out/speech-8k-pcm16.wav" false
    echo ","
    entry speech-8k-ulaw.wav wav "$out/speech-8k-ulaw.wav" false
    echo ","
    entry speech-8k-alaw.wav wav "$out/speech-8k-alaw.wav" false
    echo ","
    entry speech-8k-dual.wav wav "$out/speech-8k-dual.wav" false
    echo ","
    entry speech-8k.mp3 mp3 "$work/mp3-src.wav" false
    echo ","
    entry truncated.wav wav "$work/whole.wav" true
    echo
    echo "}"
} >"$out/manifest.json"

ls -l "$out"
