#!/usr/bin/env node
// verify.js - check one signed webhook with the Standard Webhooks reference
// library (the npm package `standardwebhooks`, pinned in package.json), not
// with our own code.
//
//   node tests/relay/verify.js --secret S --id ID --timestamp TS --signature SIG < BODY
//
// Reads the body from standard input as bytes and calls
// `new Webhook(S).verify(body, headers)`.  Exit 0 when the library accepts;
// 1 when it refuses (its reason on stderr: no matching signature, a
// timestamp more than 5 minutes from now, ...); 2 on bad usage or a secret
// the library cannot use.  The library checks the timestamp against the
// current time, so TS must be a recent one.
"use strict";

const { Webhook } = require("standardwebhooks");

const FLAGS = { "--secret": "secret", "--id": "id", "--timestamp": "timestamp", "--signature": "signature" };

function usage(why) {
  process.stderr.write(`verify.js: ${why}\nusage: node verify.js --secret S --id ID --timestamp TS --signature SIG < BODY\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const args = {};
  for (let i = 0; i < argv.length; i += 2) {
    const name = FLAGS[argv[i]];
    if (name === undefined || i + 1 >= argv.length) usage(`bad argument ${JSON.stringify(argv[i])}`);
    args[name] = argv[i + 1];
  }
  for (const name of Object.values(FLAGS)) if (args[name] === undefined) usage(`missing --${name}`);
  return args;
}

function readStdin() {
  const chunks = [];
  return new Promise((resolve, reject) => {
    process.stdin.on("data", (c) => chunks.push(c));
    process.stdin.on("end", () => resolve(Buffer.concat(chunks)));
    process.stdin.on("error", reject);
  });
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  let wh;
  try {
    wh = new Webhook(args.secret);
  } catch (e) {
    usage(`the library refuses the secret: ${e.message}`);
  }
  const body = await readStdin();
  const headers = {
    "webhook-id": args.id,
    "webhook-timestamp": args.timestamp,
    "webhook-signature": args.signature,
  };
  try {
    wh.verify(body, headers, { jsonParse: false });
  } catch (e) {
    process.stderr.write(`verify.js: rejected: ${e.message}\n`);
    process.exit(1);
  }
  process.stdout.write("verified\n");
}

main();
