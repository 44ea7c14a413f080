// Small helpers shared by the interop tests.
'use strict';

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Polls cond() (sync or async) every intervalMs until it returns a truthy value, which is
// returned; throws with `what` after timeoutMs.
async function waitFor(what, cond, timeoutMs, intervalMs = 200) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await cond();
    if (last) return last;
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

function assert(cond, message) {
  if (!cond) throw new Error(message);
}

module.exports = { sleep, waitFor, assert };
