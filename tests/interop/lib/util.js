// Small helpers shared by the interop tests.
'use strict';

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

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

// Child processes (MediaMTX, publishers, probes) still running and temporary folders: killed and
// removed when this process exits, even on a signal (meson's timeout), so none outlives the test.
const children = new Set();
const tempDirs = new Set();

// A fresh folder under the system's temporary folder; removeTempDir() or exit removes it.
function makeTempDir(prefix) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

function removeTempDir(dir) {
  fs.rmSync(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}

function track(proc) {
  children.add(proc);
  proc.once('exit', () => children.delete(proc));
  return proc;
}

// Sends `signal` to a child process and waits for it to exit, with SIGKILL after 3 s.
async function stopProcess(proc, signal) {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise((resolve) => proc.once('exit', resolve));
  proc.kill(signal);
  const timer = setTimeout(() => proc.kill('SIGKILL'), 3000);
  await exited;
  clearTimeout(timer);
}

function cleanUpOnExit() {
  process.once('exit', () => {
    for (const proc of children) proc.kill('SIGKILL');
    for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
  });
  for (const signal of ['SIGINT', 'SIGTERM']) process.once(signal, () => process.exit(1));
}

module.exports = { sleep, waitFor, assert, track, stopProcess, makeTempDir, removeTempDir, cleanUpOnExit };
