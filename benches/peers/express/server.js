// The Express peer of the webhook load benchmark (scripts/bench-webhooks): the transfer URL
// as an Express app would answer it, signature checked by twilio's validateRequest.
//
// Answers POST /voice/start like callproof's transfer URL: checks X-Twilio-Signature
// with Twilio's own library, then builds the same TwiML (recording started, a Gather
// of four Says) with twilio's VoiceResponse. It keeps no state and writes nothing.
// Run as `node server.js PORT` with BENCH_AUTH_TOKEN set; BENCH_WORKERS (2) node
// cluster workers share the port.
"use strict";

const cluster = require("node:cluster");
const express = require("express");
const twilio = require("twilio");

const port = Number(process.argv[2]);
const workers = Number(process.env.BENCH_WORKERS || 2);
const authToken = process.env.BENCH_AUTH_TOKEN;
if (!port || !authToken) {
  console.error("usage: BENCH_AUTH_TOKEN=... node server.js PORT");
  process.exit(2);
}

const VOICE = { language: "en-US", voice: "Polly.Joanna" };
const SAYS = [
  "Hello Dana Reyes. This call is recorded to keep a record of your decision.",
  "You asked us to terminate service on the account ending in 1, 0, 0, 1. Home internet: " +
    "from active, to terminated. Once the service is terminated, it cannot be restored on this account.",
  "Are you the account holder, or someone the account holder has authorized to make changes on this account?",
  "Say yes or press 1 for yes. Say no or press 2 for no. To hear it again, say repeat or press 9. " +
    "To speak with an agent, say agent or press 0.",
];

if (cluster.isPrimary) {
  for (let i = 0; i < workers; i++) cluster.fork();
  let stopping = false;
  cluster.on("exit", (worker, code) => {
    if (stopping) return;
    console.error(`worker ${worker.process.pid} exited with ${code}`);
    process.exit(1);
  });
  process.on("SIGTERM", () => {
    stopping = true;
    for (const worker of Object.values(cluster.workers)) worker.kill();
    process.exit(0);
  });
} else {
  // A worker whose primary is gone stops too.
  process.on("disconnect", () => process.exit(0));
  const app = express();
  app.use(express.urlencoded({ extended: false }));
  app.post("/voice/start", (req, res) => {
    const base = `${req.protocol}://${req.get("host")}`;
    const signature = req.get("X-Twilio-Signature") || "";
    if (!twilio.validateRequest(authToken, signature, base + req.originalUrl, req.body)) {
      return res.status(403).send("signature does not match");
    }
    const token = req.query.t || "";
    const response = new twilio.twiml.VoiceResponse();
    response.start().recording({
      channels: "dual",
      recordingStatusCallback: `${base}/voice/recording?t=${token}`,
      recordingStatusCallbackEvent: "completed",
      recordingStatusCallbackMethod: "POST",
      track: "both",
      trim: "do-not-trim",
    });
    const gather = response.gather({
      action: `${base}/voice/answer?t=${token}`,
      actionOnEmptyResult: true,
      hints: "yes, no, I confirm, decline, repeat, agent",
      input: "dtmf speech",
      language: "en-US",
      method: "POST",
      numDigits: 1,
      speechTimeout: "auto",
      timeout: 6,
    });
    for (const text of SAYS) gather.say(VOICE, text);
    res.type("text/xml; charset=utf-8").send(response.toString());
  });
  app.listen(port, "127.0.0.1");
}
