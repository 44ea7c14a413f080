/* gst-mediamtx fuzzing: one entry point per parser in gst/. Each checks the parser's promises
 * (bounded output, no secret in a message, no line injection) and aborts when one is broken, so a
 * broken promise is a crash for libFuzzer and a failure for the replay test.
 *
 * Used by fuzz_main.cpp (one libFuzzer binary per target, built by tests/fuzz/build.sh with clang)
 * and by replay.cpp (the committed corpora and crashers, a plain unit test without clang).
 */
#pragma once

#include <cstddef>
#include <cstdint>

namespace fuzz {

using TargetFunction = int (*)(const uint8_t *data, size_t size);

struct Target {
  const char *name;        /* also the corpus folder: tests/fuzz/corpus/<name>/ */
  TargetFunction run;
};

int link_header(const uint8_t *data, size_t size);
int location(const uint8_t *data, size_t size);
int retry_after(const uint8_t *data, size_t size);
int classify(const uint8_t *data, size_t size);
int sdpfrag(const uint8_t *data, size_t size);
int sdp_answer(const uint8_t *data, size_t size);
int api_answer(const uint8_t *data, size_t size);
int http_response(const uint8_t *data, size_t size);

/* Every target, terminated by {nullptr, nullptr}. */
extern const Target kTargets[];

/* gst_init() once (GstSDP needs no more). */
void init();

}  // namespace fuzz
